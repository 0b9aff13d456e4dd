"""`dfd sample`, `dfd demo`: the sample set and the whole pipeline on it."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from dfdlib.config import add_dataclass_args, config_help
from dfdlib.sample import dataset
from dfdlib.sample.dataset import MANIFEST, METHODS, SampleConfig, make_sample_dataset
from dfdlib.sample.demo import DemoConfig, run_demo


def add_cli(subparsers) -> None:
    """Register `dfd sample` and `dfd demo`."""
    _add_sample(subparsers)
    _add_demo(subparsers)


# --- dfd sample ----------------------------------------------------------------------------------
def _add_sample(subparsers) -> None:
    """Register `dfd sample OUT [--n-real N --n-fake N --seconds S --width W --height H --fps F --seed S]`."""
    d = SampleConfig()
    p = subparsers.add_parser("sample", help="generate the embedded sample set (real + self-blend/swap fakes)",
                              description=dataset.__doc__.split("\n\n")[0])
    p.add_argument("out", help="output folder; gets real/, fake/ and sample_manifest.json")
    p.add_argument("--n-real", type=int, default=d.n_real, help=f"real videos (default {d.n_real})")
    p.add_argument("--n-fake", type=int, default=d.n_fake, help=f"fake videos (default {d.n_fake})")
    p.add_argument("--seconds", type=float, default=d.seconds, help=f"duration (default {d.seconds})")
    p.add_argument("--width", type=int, default=d.width, help=f"frame width (default {d.width})")
    p.add_argument("--height", type=int, default=d.height, help=f"frame height (default {d.height})")
    p.add_argument("--fps", type=int, default=d.fps, help=f"frame rate (default {d.fps})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    p.add_argument("--codec", default=d.codec, help=f"OpenCV fourcc (default {d.codec})")
    p.add_argument("--strength", type=float, default=d.strength,
                   help=f"fake artefact strength, 0..2 (default {d.strength})")
    p.add_argument("--fakes", default=",".join(d.fakes),
                   help=f"fake families, comma-separated: {', '.join(METHODS)} (default {','.join(d.fakes)})")
    p.add_argument("--overwrite", action="store_true", help="rewrite even if OUT already holds this set")
    p.set_defaults(func=_cmd_sample)


def _cmd_sample(args: argparse.Namespace) -> int:
    cfg = SampleConfig(n_real=args.n_real, n_fake=args.n_fake, seconds=args.seconds, fps=args.fps,
                       width=args.width, height=args.height, seed=args.seed, codec=args.codec,
                       strength=args.strength, fakes=tuple(f.strip() for f in args.fakes.split(",") if f.strip()))
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
