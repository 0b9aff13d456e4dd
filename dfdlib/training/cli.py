"""`dfd train`, `dfd sweep` and `dfd cache` (the clip stores training keeps).

`dfd train`: one flag per TrainConfig field (help from the field metadata), a JSON config file, and the short
names of the guide (--csv, --data, --out, --epochs, --lr). `dfd sweep` runs a notebook over a grid
(training/sweep.py); `dfd cache` lists and clears the clip stores (dfdlib/clipstore.py).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from dfdlib.clipstore import DEFAULT_MAX_GB, default_dir, list_stores, max_bytes
from dfdlib.config import add_dataclass_args, config_help
from dfdlib.training.loop import TrainConfig, train
from dfdlib.training.sweep import (
    markdown_table,
    notebook_parameters,
    parse_grid_args,
    parse_value,
    run_sweep,
    summary_view,
)

_FLAG_ALIASES = {"csv_file": ["--csv"], "dataset_path": ["--data"], "out_dir": ["--out"], "num_epochs": ["--epochs"],
                 "learning_rate": ["--lr"]}


def add_cli(subparsers) -> None:
    """Register `dfd train`, `dfd sweep` and `dfd cache`."""
    _add_train(subparsers)
    _add_sweep(subparsers)
    _add_cache(subparsers)


# --- dfd train -----------------------------------------------------------------------------------
def _add_train(subparsers) -> None:
    """Register `dfd train`: one flag per TrainConfig field (help from the field metadata) + short names."""
    p = subparsers.add_parser(
        "train", help="train the ResNeXt-LSTM detector on a labels CSV + processed faces",
        description="Example: dfd train --csv labels/labels.csv --data data/processed --out runs/x "
                    "--sequence-length 20 --epochs 50. Under torchrun it trains with DDP.")
    p.add_argument("--config", metavar="JSON", default=None, help="TrainConfig fields as a JSON file; flags override it")
    add_dataclass_args(p, TrainConfig, aliases=_FLAG_ALIASES)
    p.set_defaults(func=_cli_train)


def _cli_train(args) -> int:
    given = {k: v for k, v in vars(args).items() if k in config_help(TrainConfig)}
    base = json.loads(Path(args.config).read_text()) if getattr(args, "config", None) else {}
    result = train(TrainConfig.from_dict(base | given))
    if result.run_dir and int(os.environ.get("RANK", "0")) == 0:
        print(f"run folder: {result.run_dir}")
    return 0


# --- dfd sweep -----------------------------------------------------------------------------------
def _add_sweep(subparsers) -> None:
    """Register `dfd sweep NOTEBOOK -p NAME V1,V2 ...`."""
    p = subparsers.add_parser(
        "sweep", help="run a notebook over a parameter grid (papermill) and tabulate the metrics",
        description="Example: dfd sweep notebooks/Model_and_train_csv.ipynb -p sequence_length 10,20,40 "
                    "-p learning_rate 1e-4,3e-4 --name seq_lr --smoke",
    )
    p.add_argument("notebook", help="the notebook to run (its cell tagged 'parameters' declares the names)")
    p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "V1,V2"),
                   help="a grid parameter and its comma-separated values (repeat for more parameters)")
    p.add_argument("-s", "--set", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a parameter fixed for every run")
    p.add_argument("--name", default=None, help="sweep name (default: <notebook>-<parameters>)")
    p.add_argument("--out", default=None, help="sweep folder (default: runs/sweep/<name>)")
    p.add_argument("--smoke", action="store_true", help="pass smoke=True: tiny sizes, for a quick check")
    p.add_argument("--overwrite", action="store_true", help="rerun runs that already finished")
    p.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's)")
    p.add_argument("--list", action="store_true", help="list the notebook's parameters and exit")
    p.set_defaults(func=_cli_sweep)


def _cli_sweep(args: argparse.Namespace) -> int:
    declared = notebook_parameters(args.notebook)
    if args.list:
        for k, v in declared.items():
            print(f"{k:>22}: {v['type']:<6} = {v['default']:<26} {v['help']}")
        return 0
    if not args.param:
        raise ValueError("give at least one grid parameter: -p NAME V1,V2 (see --list for the names)")
    grid = parse_grid_args(args.param, declared)
    base = {k: parse_value(v, declared.get(k, {}).get("type", "None")) for k, v in args.set}
    if args.smoke:
        base["smoke"] = True
    df = run_sweep(args.notebook, grid, out=args.out, base_params=base, name=args.name,
                   overwrite=args.overwrite, kernel_name=args.kernel)
    print(markdown_table(summary_view(df, list(grid))))
    return 0 if df["status"].isin(["ok", "skipped_done"]).all() else 1


# --- dfd cache -----------------------------------------------------------------------------------
def _add_cache(subparsers) -> None:
    """Register `dfd cache [list|clear [KEY ...]] [--dir DIR]`."""
    p = subparsers.add_parser("cache", help="list or clear the clip stores (decoded training clips on disk)",
                              description=f"The clip stores that training with cache='disk' keeps under "
                                          f"$DFD_CLIP_STORE or ~/.cache/dfdlib/clips, one per setting; together "
                                          f"at most $DFD_CLIP_STORE_MAX_GB (default {DEFAULT_MAX_GB:g} GB), "
                                          "the least recently used removed first.")
    p.add_argument("action", nargs="?", choices=("list", "clear"), default="list", help="default: list")
    p.add_argument("keys", nargs="*", help="with clear: only these stores (default: all not in use)")
    p.add_argument("--dir", default=None, help="store folder (default: $DFD_CLIP_STORE or ~/.cache/dfdlib/clips)")
    p.set_defaults(func=_cli_cache)


def _cli_cache(args) -> int:
    root = Path(args.dir) if args.dir else default_dir()
    stores = list_stores(root)
    if args.action == "clear":
        picked = [r for r in stores if not args.keys or r["path"].name in args.keys]
        unknown = sorted(set(args.keys) - {r["path"].name for r in stores})
        if unknown:
            raise FileNotFoundError(f"no clip store {', '.join(unknown)} under {root} (see `dfd cache list`)")
        freed = 0
        for r in picked:
            if r["in_use"]:
                print(f"kept {r['path'].name}: a training run is using it")
                continue
            shutil.rmtree(r["path"], ignore_errors=True)
            freed += r["on_disk"]
        print(f"removed {sum(not r['in_use'] for r in picked)} clip store(s) under {root}, {freed / 1e9:.2f} GB freed")
        return 0
    print(f"clip stores under {root} (cap {max_bytes() / 1e9:.1f} GB, DFD_CLIP_STORE_MAX_GB; least recently used "
          "first):")
    for r in stores:
        shape = "x".join(map(str, r["shape"] or [])) or "?"
        print(f"  {r['path'].name}  {r['on_disk'] / 1e9:7.2f} GB of {r['bytes'] / 1e9:.2f} GB  {r['done']}/"
              f"{r['items'] or '?'} clips  {shape}  last used "
              f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(r['last_used']))}" + ("  (in use)" if r["in_use"] else ""))
    print(f"{len(stores)} store(s), {sum(r['on_disk'] for r in stores) / 1e9:.2f} GB on disk"
          + ("; `dfd cache clear` removes them" if stores else ""))
    return 0
