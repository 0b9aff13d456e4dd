"""Lazy module attributes (PEP 562): names a module serves from a sibling module on first use.

Used by the flat API in `__init__` (so `import dfdlib` starts neither torch nor TensorFlow) and by modules
whose names moved to a sibling that imports them back (an eager re-export there would be an import cycle).
"""
from __future__ import annotations

import importlib
import sys


def lazy_getattr(module_name: str, sources: dict[str, str], modules: dict[str, str] | None = None):
    """A module-level `__getattr__` for `module_name` serving each name in `sources` ({name: sibling module})
    from that sibling, imported on first use and then cached on the module, and each name in `modules`
    ({name: submodule}) as that submodule itself. Other names raise AttributeError.
    """

    def __getattr__(name: str):
        module = sys.modules[module_name]
        if name in sources or name in (modules or {}):
            if name in sources:
                value = getattr(importlib.import_module(f".{sources[name]}", module.__package__), name)
            else:
                value = importlib.import_module(f".{modules[name]}", module.__package__)
            setattr(module, name, value)
            return value
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    return __getattr__
