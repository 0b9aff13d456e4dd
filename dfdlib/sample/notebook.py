"""What every notebook does right after its parameters cell: the smoke flag, the root its relative paths start
from (the repository, or Google Drive on Colab), and whether a missing input is built from the sample set.

    from dfdlib import notebook
    smoke = notebook.smoke_mode(smoke)
    root = notebook.notebook_root(project_root, colab_root, smoke)
"""
from __future__ import annotations

import os
import sys
from pathlib import Path


def must_make(path, make_inputs: bool, what: str, how: str) -> bool:
    """Whether a notebook should build its missing input `path` from the sample set. False when `path`
    exists; True when it is missing and `make_inputs` is on (the default only in smoke/CI runs); otherwise
    FileNotFoundError saying how to make it (`how`) or how to opt in to the synthetic sample instead."""
    if Path(path).exists():
        return False
    if make_inputs:
        print(f"{what} {path} is missing: building it from the generated sample set (make_inputs=True)")
        return True
    raise FileNotFoundError(f"{what} {path} does not exist: {how}. Or set make_inputs=True to build it from "
                            "the generated sample set (synthetic videos: only for trying the notebook out)")


def smoke_mode(smoke: bool) -> bool:
    """A notebook's smoke flag: its parameter, or the environment (DFD_SMOKE, or CI as set by CI services)."""
    return bool(smoke or os.environ.get("DFD_SMOKE") or os.environ.get("CI"))


def notebook_root(project_root: str, colab_root: str = "", smoke: bool = False) -> Path:
    """Where a notebook's relative paths start: the repository root, on Colab `colab_root` (on Drive, so a
    disconnect keeps the files); a smoke run keeps its files under runs/smoke/ there. Prints it."""
    on_colab = "google.colab" in sys.modules
    root = Path(colab_root if on_colab and colab_root else project_root).resolve() / ("runs/smoke" if smoke else "")
    print(f"root  : {root}" + (" (on Google Drive: kept after a disconnect)" if "/drive/" in str(root) else ""))
    return root
