"""The house rules that a test can check: dependency minimums that match the APIs the code uses."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {p: p.read_text() for p in sorted((ROOT / "dfdlib").glob("*.py"))}

# API the code calls → (distribution, first release that has it).
NEEDS = {
    "torch.OutOfMemoryError": ("torch", (2, 5)),
    'torch.amp.GradScaler("cuda"': ("torch", (2, 3)),
    "v2.JPEG(": ("torchvision", (0, 19)),
}


def _minimums() -> dict[str, tuple[int, ...]]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {}
    for dep in deps:
        m = re.match(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)", dep)
        if m:
            out[m[1].lower()] = tuple(int(x) for x in m[2].split("."))
    return out


@pytest.mark.parametrize("api", sorted(NEEDS))
def test_pyproject_minimums_are_at_least_what_the_code_uses(api):
    dist, first = NEEDS[api]
    users = [p.name for p, text in SOURCES.items() if api.replace('"cuda"', "") in text]
    assert users, f"{api} is no longer used: drop it from NEEDS"
    declared = _minimums()[dist]
    assert declared >= first, (f"{', '.join(users)} use {api}, which needs {dist} >= "
                               f"{'.'.join(map(str, first))}, but pyproject.toml allows {dist} >= "
                               f"{'.'.join(map(str, declared))}: older installs would fail at run time")


def test_the_installed_torch_has_the_apis_the_minimums_promise():
    import torch
    from torchvision.transforms import v2

    assert issubclass(torch.OutOfMemoryError, RuntimeError)
    assert torch.amp.GradScaler("cpu", enabled=False) is not None and hasattr(v2, "JPEG")
