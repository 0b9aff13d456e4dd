"""`dfd app`: the web app (Gradio is imported when the app is built, not here)."""
from __future__ import annotations

from dfdlib.app import web


def add_cli(subparsers) -> None:
    """Register this stage's sub-commands."""
    for module in (web,):
        module.add_cli(subparsers)
