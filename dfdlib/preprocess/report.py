"""The preprocess report: its columns, its order, the closing summary, and the log of bugs beside it."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dfdlib.datasets.scan import CLASSES
from dfdlib.utils import atomic_write

if TYPE_CHECKING:
    import pandas as pd

REPORT_COLUMNS = ["video", "label", "status", "reason", "frames", "filled", "seconds", "group", "method",
                  "detect_side", "faces", "replaced", "boxes_from"]
ERRORS_LOG = "preprocess_errors.log"  # tracebacks of the videos with status "error" (bugs), beside the report


def write_errors(out: Path, rows: list[dict], shard) -> None:
    """The tracebacks of this run's "error" rows, to ERRORS_LOG (per shard) beside the report."""
    bad = [r for r in rows if r.get("traceback")]
    name = ERRORS_LOG if shard is None else ERRORS_LOG.replace(".log", f"_shard-{shard[0]}-of-{shard[1]}.log")
    if bad:
        with atomic_write(out / name) as f:
            f.write("".join(f"=== {r['video']}\n{r['traceback']}\n" for r in bad))


def sort_report(report: pd.DataFrame) -> pd.DataFrame:
    """Report rows in the order every report is written: real, then fake, then by video; index reset."""
    report = report.sort_values(["label", "video"], key=lambda s: s.map(_label_order) if s.name == "label" else s)
    return report.reset_index(drop=True)


def _label_order(label: str) -> int:
    return CLASSES.index(label) if label in CLASSES else len(CLASSES)


def print_summary(report: pd.DataFrame, path: Path, n_all: int, shard) -> None:
    counts = report["status"].value_counts()
    parts = [f"{counts.get(s, 0)} {s}" for s in ("ok", "skipped_done", "no_face", "too_short", "unreadable")]
    if counts.get("error", 0):
        parts.append(f"{counts['error']} ERROR (bugs in dfdlib: tracebacks in {path.parent / ERRORS_LOG})")
    where = f" (shard {shard[0]}/{shard[1]} of {n_all})" if shard else ""
    print(f"preprocess: {len(report)} videos{where}: {', '.join(parts)}; report: {path}")
    bad = report[~report["status"].isin(["ok", "skipped_done"])]
    for _, r in bad.head(5).iterrows():
        print(f"  {r['status']}: {r['reason']}")
    if len(bad) > 5:
        print(f"  ... and {len(bad) - 5} more (see the report's reason column)")
