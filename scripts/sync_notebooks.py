"""Keep the notebooks tidy: `python scripts/sync_notebooks.py [--check]`.

The notebooks in notebooks/ are their own source: edit them in Jupyter (or any editor) and commit them.
This script only does the two things a person should not do by hand: it strips outputs and execution
counts (notebooks are committed without outputs), and it writes the shared first cell,
`notebooks/colab_cell.py`, into every notebook with the repository URL of pyproject.toml's
`[project.urls] Repository` (the one place the URL is written). `--check` changes nothing and exits 1 when
a notebook is out of date (tests/test_notebooks.py runs it).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
COLAB_CELL = NB_DIR / "colab_cell.py"
URL_LINE = re.compile(r'(os\.environ\.get\("DFD_REPO_URL", )"[^"]*"')


def repository_url(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """pyproject.toml's [project.urls] Repository; ValueError naming the file when it has none."""
    import tomllib

    urls = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"].get("urls", {})
    if not urls.get("Repository"):
        raise ValueError(f'{pyproject}: add Repository = "https://..." under [project.urls] (the Colab cell clones it)')
    return urls["Repository"]


def colab_cell() -> str:
    """notebooks/colab_cell.py with the repository URL from pyproject.toml."""
    text, n = URL_LINE.subn(lambda m: f'{m.group(1)}"{repository_url()}"', COLAB_CELL.read_text().rstrip("\n"))
    if n != 1:
        raise ValueError(f"{COLAB_CELL}: expected one line reading os.environ.get(\"DFD_REPO_URL\", \"<url>\")")
    return text


def tidy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """No outputs, no execution counts, the shared Colab cell first among the code cells."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or "google.colab" not in code[0].source:
        raise ValueError("the first code cell must be the Colab cell (notebooks/colab_cell.py)")
    code[0].source = colab_cell()
    for c in code:
        c.outputs, c.execution_count = [], None
        c.metadata.pop("execution", None)
    return nb


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (sys.argv[1:] if argv is None else argv)
    stale = []
    for path in sorted(NB_DIR.glob("*.ipynb")):
        before = path.read_text(encoding="utf-8")
        after = nbformat.writes(tidy(nbformat.reads(before, as_version=4))) + "\n"
        if after != before:
            stale.append(path.name)
            if not check:
                path.write_text(after, encoding="utf-8")
    if stale:
        print(("out of date (run python scripts/sync_notebooks.py): " if check else "tidied: ") + ", ".join(stale),
              file=sys.stderr if check else sys.stdout)
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
