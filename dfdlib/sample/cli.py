"""`dfd sample`, `dfd demo`: the sample set and the whole pipeline on it."""
from __future__ import annotations

from dfdlib.sample import dataset, demo


def add_cli(subparsers) -> None:
    """Register this stage's sub-commands."""
    for module in (dataset, demo):
        module.add_cli(subparsers)
