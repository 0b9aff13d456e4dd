"""atomic writes, device choice, CLI wiring."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dfdlib.utils import atomic_dir, atomic_write, clean_stale_temps, resolve_device


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "out" / "a.csv"
    with atomic_write(target) as f:
        f.write("v1")
    assert target.read_text() == "v1"
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write("half of v2")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "v1"  # previous file intact
    assert [p.name for p in target.parent.iterdir()] == ["a.csv"]  # no temp left


def test_atomic_dir_appears_complete_or_not_at_all(tmp_path):
    final = tmp_path / "real" / "video1"
    with pytest.raises(ValueError), atomic_dir(final) as tmp:
        (tmp / "frame_0.jpg").write_bytes(b"x")
        raise ValueError("detector failed")
    assert not final.exists() and list(final.parent.iterdir()) == []
    with atomic_dir(final) as tmp:
        (tmp / "frame_0.jpg").write_bytes(b"x")
    assert (final / "frame_0.jpg").exists()
    with pytest.raises(FileExistsError), atomic_dir(final) as tmp:
        pass
    with atomic_dir(final, overwrite=True) as tmp:
        (tmp / "frame_0.jpg").write_bytes(b"new")
    assert (final / "frame_0.jpg").read_bytes() == b"new"
    assert sorted(p.name for p in final.parent.iterdir()) == ["video1"]


def test_clean_stale_temps_removes_leftovers_of_a_killed_run(tmp_path):
    (tmp_path / "real" / ".video1.tmp-999").mkdir(parents=True)
    (tmp_path / "real" / "video2").mkdir()
    assert clean_stale_temps(tmp_path) == 1
    assert [p.name for p in (tmp_path / "real").iterdir()] == ["video2"]


def test_resolve_device():
    import torch

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_cli_lists_every_stage_and_env_runs():
    from dfdlib.cli import build_parser, main

    help_text = build_parser().format_help()
    for cmd in ["env", "sample", "preprocess", "labels", "train", "evaluate", "predict", "models", "sweep", "demo"]:
        assert cmd in help_text, cmd
    assert main(["env", "--json"]) == 0


def test_python_dash_m_works():
    r = subprocess.run([sys.executable, "-m", "dfdlib", "env", "--json"], capture_output=True, text=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert '"torch"' in r.stdout


def test_preprocess_help_shows_every_default_and_the_exit_status(capsys):
    """Issue 25.8/25.3: --workers and --shard show their defaults; the exit status is documented."""
    from dfdlib.cli import main

    with pytest.raises(SystemExit):
        main(["preprocess", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "one core each) (default: 1)" in text and "(default: none = every video)" in text
    assert "Exit status: 0 when every video was done" in text and "even with --no-progress" in text


def test_tensorflow_says_nothing_in_the_terminal(tmp_path):
    """Issue 25.8: TensorFlow's C++ lines (oneDNN, absl::InitializeLog, cpu_feature_guard) interleaved with
    the progress bars of `dfd preprocess` (in the main process and in every worker) and `make demo`."""
    from test_video import write_video

    src = tmp_path / "videos"
    (src / "real").mkdir(parents=True)
    for name in ("a", "b"):
        write_video(src / "real" / f"{name}.mp4", n=8, face=lambda i: (100, 20, 200))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    r = subprocess.run([sys.executable, "-m", "dfdlib", "preprocess", str(src), str(tmp_path / "out"), "--frames",
                        "4", "--size", "32", "--workers", "2", "--no-progress"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "preprocess: 2 videos: 2 ok" in r.stdout
    for noise in ("oneDNN", "absl", "cpu_feature_guard", "I0000", "W0000"):
        assert noise not in r.stderr + r.stdout, r.stderr
