"""Config dataclass helpers: each field's help text lives in its metadata, read by the CLI and the docs.

    @dataclass
    class TrainConfig:
        sequence_length: int = opt(20, "frames per clip (the guide: 10, 20 or 100)")

`field_help(TrainConfig)` gives {name: help}; `add_dataclass_flags` turns the fields into argparse flags.
"""
from __future__ import annotations

import argparse
import dataclasses


def opt(default, help: str, **kw):  # noqa: A002 - `help` as argparse spells it
    """A dataclass field with a default and its help text (`dataclasses.field(metadata={"help": ...})`)."""
    return dataclasses.field(default=default, metadata={"help": help}, **kw)


def field_help(cls) -> dict[str, str]:
    """{field name: help text} of a config dataclass (empty text for a field without one)."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def add_dataclass_flags(parser, cls, choices: dict | None = None, aliases: dict | None = None,
                        skip: tuple = (), int_fields: tuple = ()) -> None:
    """One `--field-name` flag per field of `cls`, its help from the field, its type from the default.

    Flags default to argparse.SUPPRESS, so only what the user gave overrides a config. Booleans get
    --x/--no-x; `choices` restricts values; `aliases` adds flag spellings; `int_fields` are ints whose
    default is None.
    """
    choices, aliases = choices or {}, aliases or {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = f.default
        text = f"{f.metadata.get('help', '')} (default: {default})".replace("%", "%%")
        kw: dict = {"dest": f.name, "help": text, "default": argparse.SUPPRESS}
        if isinstance(default, bool):
            kw["action"] = argparse.BooleanOptionalAction
        elif f.name in choices:
            kw["choices"] = choices[f.name]
        elif isinstance(default, int) or f.name in int_fields:
            kw["type"] = int
        elif isinstance(default, float):
            kw["type"] = float
        parser.add_argument(*aliases.get(f.name, []), f"--{f.name.replace('_', '-')}", **kw)
