"""`dfd sample`, `dfd demo`: the sample set and the whole pipeline on it."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from dfdlib.config import add_dataclass_args, config_help
from dfdlib.sample import dataset
from dfdlib.sample.dataset import MANIFEST, SampleConfig, make_sample_dataset
from dfdlib.sample.demo import DemoConfig, run_demo


def add_cli(subparsers) -> None:
    """Register `dfd sample` and `dfd demo`."""
    _add_sample(subparsers)
    _add_demo(subparsers)


# --- dfd sample ----------------------------------------------------------------------------------
def _add_sample(subparsers) -> None:
    """Register `dfd sample OUT [--n-real N --n-fake N --seconds S ...]`: one flag per SampleConfig field."""
    d = SampleConfig()
    p = subparsers.add_parser("sample", help="generate the embedded sample set (real + self-blend/swap fakes)",
                              description=dataset.__doc__.split("\n\n")[0])
    p.add_argument("out", help="output folder; gets real/, fake/ and sample_manifest.json")
    add_dataclass_args(p, SampleConfig, exclude=("face_height", "noise", "fakes"))
    p.add_argument("--fakes", default=",".join(d.fakes),
                   help=f"{config_help(SampleConfig)['fakes']}, comma-separated (default {','.join(d.fakes)})")
    p.add_argument("--overwrite", action="store_true", help="rewrite even if OUT already holds this set")
    p.set_defaults(func=_cmd_sample)


def _cmd_sample(args: argparse.Namespace) -> int:
    given = {k: v for k, v in vars(args).items() if k in config_help(SampleConfig) and k != "fakes"}
    cfg = SampleConfig(**given, fakes=tuple(f.strip() for f in args.fakes.split(",") if f.strip()))
    t0 = time.time()
    manifest = Path(args.out) / MANIFEST
    before = manifest.stat().st_mtime_ns if manifest.is_file() else None
    out = make_sample_dataset(args.out, cfg, overwrite=args.overwrite)
    if before is not None and manifest.stat().st_mtime_ns == before:
        print(f"{out} already holds this sample set (same config and seed); nothing written "
              "(use --overwrite to rewrite it)")
        return 0
    print(f"wrote {cfg.n_real} real + {cfg.n_fake} fake videos per family ({'/'.join(cfg.fakes)}; "
          f"{cfg.width}x{cfg.height}, {cfg.fps} fps, "
          f"{cfg.seconds:g} s, seed {cfg.seed}) to {out}/real and {out}/fake in {time.time() - t0:.1f} s; "
          f"parameters in {out / MANIFEST}")
    return 0


# --- dfd demo ------------------------------------------------------------------------------------
def _add_demo(subparsers) -> None:
    """Register `dfd demo`: one flag per DemoConfig field (help from the field metadata)."""
    p = subparsers.add_parser("demo", help="run the whole pipeline on the embedded sample set")
    add_dataclass_args(p, DemoConfig)
    p.set_defaults(func=_cli_demo)


def _cli_demo(args: argparse.Namespace) -> int:
    run_demo(DemoConfig(**{k: v for k, v in vars(args).items() if k in config_help(DemoConfig)}))
    return 0
