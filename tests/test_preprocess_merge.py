"""preprocess/shards.py: shard reports → one report, missing and incomplete shards named (no detector runs:
the shard reports are written the way `dfd preprocess --shard K/N` writes them)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dfdlib import merge_shard_reports
from dfdlib.cli import main
from dfdlib.preprocess.report import REPORT_COLUMNS, sort_report
from dfdlib.preprocess.run import find_tasks, in_shard
from dfdlib.utils import write_csv

N = 3


@pytest.fixture
def sharded(tmp_path):
    """A 9-video dataset (files only: never decoded) and OUT with the reports of 3 finished shards."""
    src, out = tmp_path / "videos", tmp_path / "out"
    for label in ("real", "fake"):
        (src / label).mkdir(parents=True)
    for i in range(5):
        (src / "real" / f"r{i}.mp4").write_bytes(b"x")
    for i in range(4):
        (src / "fake" / f"f{i}.mp4").write_bytes(b"x")
    out.mkdir()
    (out / "layout.json").write_text(json.dumps({"layout": "real_fake", "chosen": "detected", "root": str(src)}))
    tasks = find_tasks(src)
    rows = []
    for k in range(N):
        mine = [t for t in tasks if in_shard(t, (k, N))]
        shard_rows = [{"video": t.video, "label": t.label, "status": "no_face" if t.name == "r0" else "ok",
                       "reason": "", "frames": 4, "filled": 0, "seconds": 1.0, "group": f"{t.label}/{t.name}",
                       "method": t.label, "detect_side": 320, "faces": 1} for t in mine]
        for r, t in zip(shard_rows, mine, strict=True):
            if r["status"] == "ok":
                (out / t.label / t.name).mkdir(parents=True)
        write_csv(sort_report(pd.DataFrame(shard_rows, columns=REPORT_COLUMNS)),
                  out / f"preprocess_report_shard-{k}-of-{N}.csv")
        rows += shard_rows
    return src, out, sort_report(pd.DataFrame(rows, columns=REPORT_COLUMNS))


def test_complete_shards_merge_into_one_report(sharded, capsys):
    src, out, expected = sharded
    assert main(["preprocess-merge", str(out)]) == 0
    assert "3 of 3 shard reports, 9 videos: 8 ok" in capsys.readouterr().out
    merged = pd.read_csv(out / "preprocess_report.csv")
    pd.testing.assert_frame_equal(merged, pd.read_csv(_csv(expected, out / "expected.csv")))
    assert merged["video"].tolist()[:5] == [f"real/r{i}.mp4" for i in range(5)]  # real first, as a plain run


def test_missing_and_incomplete_shards_are_named(sharded, capsys):
    src, out, _ = sharded
    (out / "preprocess_report_shard-1-of-3.csv").unlink()
    two = out / "preprocess_report_shard-2-of-3.csv"
    r = pd.read_csv(two)
    write_csv(r.iloc[1:], two)  # its first video is lost
    gone = r.iloc[1]
    (out / gone["label"] / gone["video"].split("/")[1].removesuffix(".mp4")).rmdir()  # an ok video's folder gone
    assert main(["preprocess-merge", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "shard 1/3: no report" in printed and "--shard 1/3" in printed
    assert f"shard 2/3: incomplete: 1 of its {len(r)} videos are not in its report ({r['video'][0]})" in printed
    assert f"1 ok videos have no folder in {out} ({gone['video']})" in printed
    assert not (out / "preprocess_report.csv").exists()  # a partial report only when asked for
    res = merge_shard_reports(out, allow_missing=True)
    assert res.missing == [1] and list(res.incomplete) == [2] and res.path.exists()
    # without the dataset, only missing reports can be checked
    (out / "layout.json").unlink()
    res = merge_shard_reports(out)
    assert res.missing == [1] and not res.incomplete and not res.checked


def test_no_reports_or_several_runs(sharded, tmp_path):
    _, out, _ = sharded
    with pytest.raises(FileNotFoundError, match="run the shards"):
        merge_shard_reports(tmp_path / "empty")
    write_csv(pd.DataFrame(columns=REPORT_COLUMNS), out / "preprocess_report_shard-0-of-2.csv")
    with pytest.raises(ValueError, match="several runs"):
        merge_shard_reports(out)
    assert merge_shard_reports(out, shards=3).complete


def _csv(df, path):
    write_csv(df, path)
    return path


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 16), st.integers(1, 256))
@example(7, 25)  # 25 x 0.28 is 7.000000000000001 in floats, 7 in Ray's fixed-point resource units
def test_ray_actors_share_the_gpus_they_find(gpus, actors):
    from dfdlib.preprocess.on_ray import actor_resources

    want = actor_resources({"CPU": 64.0, "GPU": float(gpus)}, actors)
    assert want["num_cpus"] == 1
    if gpus == 0:
        assert "num_gpus" not in want  # CPU-only actors: Ray hides no GPU from them, and needs none
    else:
        # Ray counts resources in units of 1e-4, so the shares fit when they do in those units
        fits = round(actors * want["num_gpus"] * 10_000) <= gpus * 10_000
        assert 0 < want["num_gpus"] <= 1 and (fits or want["num_gpus"] == 0.001)
