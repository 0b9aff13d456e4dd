"""`dfd preprocess-merge OUT`: the shard reports of `dfd preprocess --shard K/N` (a SLURM array, several
machines sharing OUT) → one `OUT/preprocess_report.csv`, and which shards are missing or incomplete.

A shard writes `preprocess_report_shard-K-of-N.csv` only when it has finished, so a missing file is a shard
that has not run, is still running or died. To tell an incomplete shard (its report lacks some of its
videos, or names ok videos whose folder is gone), the dataset is listed again (the SRC that
`OUT/layout.json` records, or `src`) and split with the shards' own rule (preprocess.in_shard).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dfdlib.preprocess.report import REPORT_COLUMNS, sort_report
from dfdlib.preprocess.run import in_shard, scan_dataset
from dfdlib.utils import write_csv

if TYPE_CHECKING:
    import pandas as pd

SHARD_REPORT = re.compile(r"preprocess_report_shard-(\d+)-of-(\d+)\.csv")
SHOWN = 3  # videos named per problem; the rest are counted


@dataclass
class MergeResult:
    report: pd.DataFrame  # every row of the shard reports found, in report order
    shards: int  # N: the number of shards of the run
    missing: list[int] = field(default_factory=list)  # shards without a report
    incomplete: dict[int, str] = field(default_factory=dict)  # shard → what is wrong with its report
    checked: str = ""  # what the completeness check compared against ('' when the dataset could not be listed)
    path: Path | None = None  # the merged report, when written

    @property
    def complete(self) -> bool:
        return not self.missing and not self.incomplete


def shard_reports(out: str | Path) -> dict[int, dict[int, Path]]:
    """N → {K: path} of every `preprocess_report_shard-K-of-N.csv` in `out`."""
    found: dict[int, dict[int, Path]] = {}
    for p in sorted(Path(out).glob("preprocess_report_shard-*-of-*.csv")):
        m = SHARD_REPORT.fullmatch(p.name)
        if m:
            found.setdefault(int(m[2]), {})[int(m[1])] = p
    return found


def merge_shard_reports(out: str | Path, src: str | Path | None = None, shards: int | None = None,
                        allow_missing: bool = False) -> MergeResult:
    """Merge `out`'s shard reports into `out/preprocess_report.csv`.

    Takes the output root of the shards, the dataset root (default: the one `out/layout.json` records),
    the shard count N (default: the N of the reports found; needed when reports of several runs are there)
    and `allow_missing` (write the merged report even when shards are missing or incomplete). Returns a
    MergeResult; the merged report is written only when complete (or allowed). Raises FileNotFoundError
    when `out` holds no shard report (of N shards), ValueError when several N are there and none is chosen.
    """
    import pandas as pd

    out = Path(out)
    found = shard_reports(out)
    if shards is None:
        if len(found) > 1:
            raise ValueError(f"{out} holds shard reports of several runs (N = {', '.join(map(str, found))}): "
                             "choose one with --shards N")
        shards = next(iter(found), None)
    if not shards or shards not in found:
        raise FileNotFoundError(f"no preprocess_report_shard-K-of-{shards or 'N'}.csv in {out}: run the shards "
                                "(dfd preprocess SRC OUT --shard K/N) first")
    paths = found[shards]
    reports = {k: pd.read_csv(p) for k, p in sorted(paths.items())}
    for k, r in reports.items():
        if list(r.columns) != REPORT_COLUMNS:
            raise ValueError(f"{paths[k]} is not a preprocess report of this dfdlib (columns {list(r.columns)})")
    res = MergeResult(sort_report(pd.concat(reports.values(), ignore_index=True)), shards,
                      missing=[k for k in range(shards) if k not in paths])
    tasks, res.checked = _dataset(out, src)
    for k, r in reports.items():
        why = _problems(out, r, None if tasks is None else [t for t in tasks if in_shard(t, (k, shards))])
        if why:
            res.incomplete[k] = why
    if res.complete or allow_missing:
        res.path = write_csv(res.report, out / "preprocess_report.csv")
    return res


def _dataset(out: Path, src) -> tuple[list | None, str]:
    """(the dataset's videos, 'SRC (layout)') listed again as the shards listed them; (None, '') if it can't be."""
    try:
        layout = json.loads((out / "layout.json").read_text())
    except (OSError, ValueError):
        layout = {}
    root = src or layout.get("root")
    if not root:
        return None, ""
    forced = layout.get("layout") if layout.get("chosen") == "--layout" else None
    try:
        name, tasks, _, _ = scan_dataset(root, forced)
    except (OSError, ValueError):
        return None, ""
    return tasks, f"{root} ({name}, {len(tasks)} videos)"


def _problems(out: Path, report: pd.DataFrame, expected: list | None) -> str:
    """What makes one shard's report incomplete ('' when nothing does)."""
    problems = []
    videos = set(report["video"])
    if expected is not None:
        lost = [t.video for t in expected if t.video not in videos]
        if lost:
            problems.append(f"{len(lost)} of its {len(expected)} videos are not in its report ({_names(lost)}): "
                            "rerun the shard")
    ok = report[report["status"] == "ok"]
    gone = [v for v, label, name in zip(ok["video"], ok["label"], _names_of(ok, expected), strict=True)
            if name and not (out / label / name).is_dir()]
    if gone:
        problems.append(f"{len(gone)} ok videos have no folder in {out} ({_names(gone)}): rerun the shard")
    return "; ".join(problems)


def _names_of(ok: pd.DataFrame, expected: list | None) -> list[str]:
    """Output folder names of ok rows (from the dataset listing; unknown without it → '' = not checked)."""
    names = {t.video: t.name for t in expected or []}
    return [names.get(v, "") for v in ok["video"]]


def _names(videos: list[str]) -> str:
    more = f" and {len(videos) - SHOWN} more" if len(videos) > SHOWN else ""
    return ", ".join(videos[:SHOWN]) + more


def print_merge(res: MergeResult) -> None:
    """The summary `dfd preprocess-merge` prints: counts, then every missing or incomplete shard."""
    counts = res.report["status"].value_counts()
    parts = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("ok", "skipped_done", "no_face", "too_short",
                                                          "unreadable"))
    have = res.shards - len(res.missing)
    print(f"preprocess-merge: {have} of {res.shards} shard reports, {len(res.report)} videos: {parts}")
    if not res.checked:
        print("  (the dataset could not be listed again, so only missing reports were checked: pass --src SRC)")
    for k in res.missing:
        print(f"  shard {k}/{res.shards}: no report (not run, still running, or failed: see its log), rerun "
              f"dfd preprocess SRC OUT --shard {k}/{res.shards}")
    for k, why in sorted(res.incomplete.items()):
        print(f"  shard {k}/{res.shards}: incomplete: {why}")
    if res.path:
        print(f"report: {res.path}" + ("" if res.complete else " (partial: --allow-missing)"))
    else:
        print("no merged report written: rerun the shards above, or pass --allow-missing for a partial one")
