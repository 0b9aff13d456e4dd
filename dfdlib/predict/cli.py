"""`dfd predict`, `dfd evaluate`, `dfd models`: verdicts, metrics on a labelled split, the models folder."""
from __future__ import annotations

from dfdlib.predict import evaluate, registry, verdict


def add_cli(subparsers) -> None:
    """Register this stage's sub-commands."""
    for module in (verdict, evaluate, registry):
        module.add_cli(subparsers)
