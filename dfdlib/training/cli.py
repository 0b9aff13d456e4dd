"""`dfd train`, `dfd sweep` and `dfd cache` (the clip stores training keeps). `dfd train`: one flag per TrainConfig field (help from the field metadata), a JSON config file, and the
short names of the guide (--csv, --data, --out, --epochs, --lr)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from dfdlib import clipstore
from dfdlib.config import add_dataclass_args, config_help
from dfdlib.training import sweep
from dfdlib.training.loop import TrainConfig, train

_FLAG_ALIASES = {"csv_file": ["--csv"], "dataset_path": ["--data"], "out_dir": ["--out"], "num_epochs": ["--epochs"],
                 "learning_rate": ["--lr"]}


def add_cli(subparsers) -> None:
    """Register `dfd train`: one flag per TrainConfig field (help from the field metadata) + short names."""
    p = subparsers.add_parser(
        "train", help="train the ResNeXt-LSTM detector on a labels CSV + processed faces",
        description="Example: dfd train --csv labels/labels.csv --data data/processed --out runs/x "
                    "--sequence-length 20 --epochs 50. Under torchrun it trains with DDP.")
    p.add_argument("--config", metavar="JSON", default=None, help="TrainConfig fields as a JSON file; flags override it")
    add_dataclass_args(p, TrainConfig, aliases=_FLAG_ALIASES)
    p.set_defaults(func=_cli)
    sweep.add_cli(subparsers)
    clipstore.add_cli(subparsers)


def _cli(args) -> int:
    given = {k: v for k, v in vars(args).items() if k in config_help(TrainConfig)}
    base = json.loads(Path(args.config).read_text()) if getattr(args, "config", None) else {}
    result = train(TrainConfig.from_dict(base | given))
    if result.run_dir and int(os.environ.get("RANK", "0")) == 0:
        print(f"run folder: {result.run_dir}")
    return 0
