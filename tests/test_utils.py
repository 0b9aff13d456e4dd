"""atomic writes, device choice, CLI wiring, the label parser and the union-find the stages share."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfdlib.utils import UnionFind, atomic_dir, atomic_write, clean_stale_temps, parse_label, resolve_device


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
    assert "batched over their videos (default: 1)" in text and "(default: none = every video)" in text
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


def _components(items: list, pairs: list[tuple]) -> list[set]:
    """Connected components by breadth-first search: the reference the union-find must agree with."""
    near: dict = {x: set() for x in items}
    for a, b in pairs:
        near[a].add(b)
        near[b].add(a)
    seen, out = set(), []
    for x in items:
        if x in seen:
            continue
        comp, todo = set(), [x]
        while todo:
            y = todo.pop()
            if y not in comp:
                comp.add(y)
                todo.extend(near[y] - comp)
        seen |= comp
        out.append(comp)
    return out


@settings(max_examples=200, deadline=None)
@given(data=st.data(), keys=st.sampled_from(["int", "str"]))
def test_union_find_groups_are_the_connected_components(data, keys):
    """Every joined pair ends in one group; the groups partition the items (and are exactly the connected
    components); a group is named by its smallest item, whatever the order of the unions."""
    n = data.draw(st.integers(1, 30))
    items = list(range(n)) if keys == "int" else [f"k{i:02d}" for i in range(n)]
    pairs = data.draw(st.lists(st.tuples(st.sampled_from(items), st.sampled_from(items)), max_size=40))
    sets = UnionFind(items[: n // 2])  # the rest are added on first use
    for a, b in pairs:
        sets.union(a, b)
    assert all(sets.find(a) == sets.find(b) for a, b in pairs)
    groups: dict = {}
    for x in items:
        groups.setdefault(sets.find(x), set()).add(x)
    assert sorted(map(sorted, groups.values())) == sorted(map(sorted, _components(items, pairs)))
    assert all(name == min(members) for name, members in groups.items())
    assert sum(len(g) for g in groups.values()) == n


def test_one_label_parser():
    assert [parse_label(v) for v in (0, 1, 0.0, "1.0", " REAL ", "fake", "Fake")] == \
        [(0, False), (1, False), (0, False), (1, False), (0, True), (1, True), (1, True)]
    assert [parse_label(v)[0] for v in (2, "maybe", "", None, float("nan"), "-1")] == [None] * 6
