"""`dfd preprocess SRC OUT`: one flag per PreprocessConfig field, then preprocess.preprocess_dataset."""
from __future__ import annotations

import argparse
import sys

from dfdlib.config import add_dataclass_args, config_help
from dfdlib.datasets.layouts import LAYOUTS
from dfdlib.preprocess.config import PreprocessConfig
from dfdlib.preprocess.run import preprocess_dataset
from dfdlib.preprocess.shards import merge_shard_reports, print_merge


def add_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "preprocess", help="videos → face crops: SRC (any known layout) → OUT/{real,fake}/<video>/frame_<i>.jpg",
        description="Sample frames, detect and track one face per video (MTCNN), save square crops. Rerunning "
                    "skips finished videos.",
        epilog="Exit status: 0 when every video was done (or had no usable face: no_face, too_short), 1 when a "
               "video failed (could not be read or its crops written: see the report) or on an error. The "
               "summary is printed even with --no-progress.")
    p.add_argument("src", help="dataset root as downloaded: real/+fake/ folders, FaceForensics++, Celeb-DF, DFDC, "
                               "or a manifest CSV (path,label[,group][,method])")
    p.add_argument("out", help="output root for the face crops")
    add_dataclass_args(p, PreprocessConfig)  # one flag per field, help from the field metadata
    p.add_argument("--workers", type=int, default=1, help="processes (one MTCNN and one core each); on a CUDA GPU, "
                   "threads sharing one MTCNN, batched over their videos (default: 1)")
    p.add_argument("--shard", default=None, metavar="K/N", help="do only shard K of N (0-based), e.g. 0/4 "
                                                               "(default: none = every video)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run on Ray (pip install 'dfdlib[ray]'): alone, a local Ray instance; 'auto' or "
                        "ray://HOST:10001 joins a cluster (every node needs dfdlib and the same SRC/OUT paths); "
                        "put it after SRC OUT or write --ray=ADDRESS")
    p.add_argument("--overwrite", action="store_true", help="redo videos that are already done")
    p.add_argument("--layout", default=None, choices=list(LAYOUTS),
                   help="dataset layout (default: detected from the folder tree)")
    p.add_argument("--split-file", default=None, metavar="PATH",
                   help="official split: FF++ train/val/test.json (or their folder), Celeb-DF "
                        "List_of_testing_videos.txt (default: used when found in SRC)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the summary is still printed)")
    p.set_defaults(func=_cli)

    m = subparsers.add_parser(
        "preprocess-merge", help="shard reports (dfd preprocess --shard K/N) → OUT/preprocess_report.csv",
        description="Merge the shard reports of OUT into preprocess_report.csv and name the shards that are missing "
                    "or incomplete (exit 1 then, and no merged report unless --allow-missing).")
    m.add_argument("out", help="the output root the shards wrote to")
    m.add_argument("--src", default=None, help="dataset root (default: the one OUT/layout.json records)")
    m.add_argument("--shards", type=int, default=None, metavar="N", help="shard count (default: from the reports)")
    m.add_argument("--allow-missing", action="store_true", help="write the merged report even if shards are missing")
    m.set_defaults(func=_merge_cli)


def _cli(args: argparse.Namespace) -> int:
    cfg = PreprocessConfig(**{k: v for k, v in vars(args).items() if k in config_help(PreprocessConfig)})
    report = preprocess_dataset(args.src, args.out, cfg, workers=args.workers, shard=args.shard,
                                overwrite=args.overwrite, progress=not args.no_progress, layout=args.layout,
                                split_file=args.split_file, ray=args.ray, summary=True)
    # no_face / too_short describe the video; any other status (unreadable, error) is work that was lost.
    failed = report[~report["status"].isin(["ok", "skipped_done", "no_face", "too_short"])]
    usable = report["status"].isin(["ok", "skipped_done"]).sum()
    if len(failed):
        print(f"dfd preprocess: {len(failed)} of {len(report)} videos failed "
              f"({', '.join(f'{n} {k}' for k, n in failed['status'].value_counts().items())}); their reasons are "
              "in the report; rerun the same command once the cause is fixed (finished videos are kept)",
              file=sys.stderr)
    return 0 if (usable or report.empty) and failed.empty else 1


def _merge_cli(args: argparse.Namespace) -> int:
    res = merge_shard_reports(args.out, src=args.src, shards=args.shards, allow_missing=args.allow_missing)
    print_merge(res)
    return 0 if res.complete else 1
