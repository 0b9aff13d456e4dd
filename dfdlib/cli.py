"""`dfd` command line: one sub-command per pipeline stage.

Each stage's cli.py defines `add_cli(subparsers)`, which registers its commands' parsers and sets `func` to
the small function that turns the arguments into a call of the stage's API; this file only wires them
together, so `dfd preprocess` and `dfdlib.preprocess_dataset` stay one code path.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from dfdlib.utils import env_report

# each stage's cli module, whose add_cli() registers its sub-commands, in the order `dfd --help` lists them.
_STAGE_MODULES = ["sample.cli", "preprocess.cli", "labels.cli", "training.cli", "predict.cli", "app.cli"]


def _cmd_env(args: argparse.Namespace) -> int:
    rep = env_report()
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        for k, v in rep.items():
            print(f"{k:>24}: {v}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dfd", description="Retrain and use a ResNeXt50-LSTM deepfake detector.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("env", help="print torch/CUDA/GPU memory, TensorFlow/mtcnn/OpenCV versions")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_env)
    for name in _STAGE_MODULES:
        try:
            mod = importlib.import_module(f".{name}", __package__)
        except ModuleNotFoundError as e:  # a stage not installed in this checkout
            if e.name != f"{__package__}.{name}":
                raise
            continue
        if hasattr(mod, "add_cli"):
            mod.add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; finished outputs are kept, rerun the same command to resume", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, RuntimeError, PermissionError, OSError) as e:
        # Clear one-line errors for user mistakes; DFD_DEBUG=1 shows the traceback.
        if os.environ.get("DFD_DEBUG"):
            raise
        print(f"dfd {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
