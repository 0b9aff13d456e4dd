"""Stage configs as dataclasses: each field's help (and allowed values) lives in its metadata, once.

A stage declares `name: type = option(default, "help text", choices=(...))`; the CLI builds one flag per
field with `add_dataclass_args(parser, Config)`, docs and notebooks read `config_help(Config)`, and
`check_choices(config)` validates the fields that have choices and `config_from_dict(Config, d)` builds one
from a dict, rejecting unknown keys. This module imports nothing from dfdlib,
so every stage (trainer, preprocess, ...) can build on it.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing


def option(default, help: str, choices: tuple | None = None, **field_kwargs):  # noqa: A002 - argparse's word
    """A dataclasses.field with metadata {"help": help[, "choices": choices]}.

    Takes the default, one line of help and optional allowed values. Returns the field.
    """
    meta = {"help": str(help)}
    if choices is not None:
        meta["choices"] = tuple(choices)
    return dataclasses.field(default=default, metadata=meta, **field_kwargs)


def config_help(cls) -> dict[str, str]:
    """Field name → help text (from field metadata) of a dataclass (class or instance), in field order."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def config_choices(cls) -> dict[str, tuple]:
    """Field name → allowed values, for the fields that declare `choices` in their metadata."""
    return {f.name: f.metadata["choices"] for f in dataclasses.fields(cls) if "choices" in f.metadata}


def check_choices(config) -> None:
    """Raise ValueError naming the field and the allowed values if a field with choices holds another value."""
    name = type(config).__name__
    for k, allowed in config_choices(config).items():
        if getattr(config, k) not in allowed:
            raise ValueError(f"{name}.{k}={getattr(config, k)!r}: choose one of {', '.join(map(str, allowed))}")


def config_from_dict(cls, d: dict | None):
    """Build dataclass `cls` from a dict (e.g. a model file's metadata); None gives the defaults.

    Raises ValueError naming the unknown keys (typos, or a newer dfdlib's fields) and the valid ones.
    """
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(d or {}) - set(names))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; valid fields: {', '.join(sorted(names))}")
    return cls(**(d or {}))


def _scalar_type(f: dataclasses.Field, hints: dict):
    """bool / int / float / str for a field's annotation (Optional[X] → X); None if not a scalar."""
    hint = hints.get(f.name, f.type)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if args:  # X | None, Optional[X]
        hint = args[0] if len(args) == 1 else str
    return hint if hint in (bool, int, float, str) else None


def add_dataclass_args(parser: argparse.ArgumentParser, cls, aliases: dict[str, list[str]] | None = None,
                       exclude: tuple[str, ...] = ()) -> list[str]:
    """Add one `--field-name` flag per field of dataclass `cls` to `parser`; returns the field names added.

    Help text and choices come from the field metadata (see `option`); bools get --x/--no-x; ints and
    floats are typed (an Optional int field accepts "none"). `aliases` maps a field to extra flags
    (e.g. {"num_epochs": ["--epochs"]}). Flags default to argparse.SUPPRESS, so `vars(args)` holds only
    the fields given on the command line: merge them over a config with `Config(**(base | given))`.
    """
    hints = typing.get_type_hints(cls)
    aliases = aliases or {}
    added = []
    for f in dataclasses.fields(cls):
        if f.name in exclude or not f.init:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        flags = list(aliases.get(f.name, [])) + [f"--{f.name.replace('_', '-')}"]
        help_text = f"{f.metadata.get('help', '')} (default: {default})".replace("%", "%%")
        kw: dict = {"dest": f.name, "help": help_text, "default": argparse.SUPPRESS}
        kind = _scalar_type(f, hints)
        optional = type(None) in typing.get_args(hints.get(f.name, f.type))
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        elif kind is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif kind in (int, float):
            kw["type"] = _optional(kind) if optional else kind
        parser.add_argument(*flags, **kw)
        added.append(f.name)
    return added


def _optional(kind):
    def parse(text: str):
        return None if text.strip().lower() in ("none", "null", "") else kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in its error message
    return parse
