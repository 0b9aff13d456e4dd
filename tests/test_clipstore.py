"""The clip store (cache='disk'): clips decoded once, shared by workers, invalidated when frames change,
rebuilt after a crash mid-write, and a clear fallback when the disk is full."""
from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from dfdlib import clipstore, data
from dfdlib.data import FaceSequenceDataset, build_transforms
from tests.test_data import write_frames


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "processed"
    for i in range(3):
        write_frames(root / f"real/r{i}", 5, size=24, color="noise", seed=i)
        write_frames(root / f"fake/f{i}", 5, size=24, color="noise", seed=10 + i)
    df = pd.DataFrame({"filename": [f"{c}/{p}{i}" for c, p in (("real", "r"), ("fake", "f")) for i in range(3)],
                       "label": [0] * 3 + [1] * 3})
    return root, df, tmp_path / "store"


def counting(monkeypatch):
    calls = []
    decode = data._decode_frames
    monkeypatch.setattr(data, "_decode_frames", lambda paths: calls.append(len(paths)) or decode(paths))
    return calls


def dataset(tree, **kw):
    root, df, store = tree
    return FaceSequenceDataset(df, root, 4, cache="disk", store_size=16, store_dir=store,
                               transform=build_transforms(False, 16), **kw)


def test_disk_store_decodes_once_and_matches_the_uncached_clips(tree, monkeypatch):
    root, df, store = tree
    calls = counting(monkeypatch)
    first = dataset(tree)
    clips = [first[i][0] for i in range(len(first))]
    assert len(calls) == 6 and first.store.count() == 6
    again = dataset(tree)  # another process / run with the same settings: reads the store
    assert all(torch.equal(again[i][0], clips[i]) for i in range(6)) and len(calls) == 6
    assert again.read_uint8(0).shape == (4, 3, 16, 16) and again.read_uint8(0).dtype == torch.uint8
    plain = FaceSequenceDataset(df, root, 4, image_size=16)  # the eval transform resizes the same way
    assert all(torch.equal(plain[i][0], clips[i]) for i in range(6))
    assert len(list(store.iterdir())) == 1


def test_every_read_returns_the_stored_clip_even_the_first(tree):
    """Epoch 1 (decoded) and epoch 2 (stored) give the training transform the same input: exact resume."""
    fresh = dataset(tree).read_uint8(2)
    stored = dataset(tree).read_uint8(2)
    assert torch.equal(fresh, stored) and fresh.shape[-1] == 16


def test_changed_frames_or_settings_make_a_new_store(tree, monkeypatch):
    root, df, store = tree
    old = dataset(tree)
    before = old[0][0]
    time.sleep(0.01)
    write_frames(root / "real/r0", 5, size=24, color="noise", seed=99)  # re-preprocessed: new pixels, new mtimes
    calls = counting(monkeypatch)
    new = dataset(tree)
    assert new.store.folder != old.store.folder and not torch.equal(new[0][0], before) and calls
    other_size = FaceSequenceDataset(df, root, 4, cache="disk", store_size=8, store_dir=store)
    assert other_size.store.folder not in (old.store.folder, new.store.folder)
    assert other_size.read_uint8(1).shape == (4, 3, 8, 8)


def test_an_item_written_without_its_done_flag_is_rebuilt(tree, monkeypatch):
    ds = dataset(tree)
    item = ds.store.item_bytes
    with open(ds.store.folder / "clips.u8", "r+b") as f:  # a crash after the bytes, before the flag
        f.seek(3 * item)
        f.write(b"\x07" * item)
    assert ds.store.get(3) is None
    calls = counting(monkeypatch)
    clip = ds.read_uint8(3)
    assert calls and ds.store.get(3) is not None and torch.equal(torch.from_numpy(ds.store.get(3)), clip)
    assert not (clip == 7).all()


def test_workers_fill_one_store_that_the_main_process_reads(tree, monkeypatch):
    ds = dataset(tree)
    batches = list(DataLoader(ds, batch_size=2, num_workers=2))
    assert len(batches) == 3 and ds.store.count() == 6
    calls = counting(monkeypatch)
    assert torch.equal(torch.cat([b[0] for b in batches]), torch.stack([ds[i][0] for i in range(6)]))
    assert calls == []  # every clip came from the file the workers wrote


def test_no_room_on_disk_falls_back_with_a_clear_warning(tree, monkeypatch):
    monkeypatch.setattr(clipstore.shutil, "disk_usage", lambda p: SimpleNamespace(free=1000))
    with pytest.warns(UserWarning, match=r"clip store: .* GiB needed .*DFD_CLIP_STORE"):
        ds = dataset(tree)
    assert ds.store is None and ds[0][0].shape == (4, 3, 16, 16)


def test_cache_values_are_checked_and_old_booleans_still_work(tree):
    root, df, _ = tree
    with pytest.raises(ValueError, match="cache must be 'disk', 'ram' or 'off'"):
        FaceSequenceDataset(df, root, 4, cache="memory")
    assert FaceSequenceDataset(df, root, 4, cache=True).cache == "ram"
    from dfdlib import TrainConfig

    assert TrainConfig(cache=True).cache == "disk" and TrainConfig(cache=False).cache == "off"
    assert TrainConfig().cache == "disk"
    with pytest.raises(ValueError, match="cache"):
        TrainConfig(cache="memory")


def test_store_items_have_the_shape_they_were_made_for(tmp_path):
    store = clipstore.ClipStore(tmp_path / "s", 2, (2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"clip 1 has shape \(2, 3, 5, 5\)"):
        store.put(1, np.zeros((2, 3, 5, 5), np.uint8))


# ------------------------------------------------------------------------------ size cap, LRU, dfd cache
def _sizes(store_dir):
    return {r["shape"][-1]: r for r in clipstore.list_stores(store_dir)}


def test_stores_stay_within_the_cap_least_recently_used_removed_first(tree, monkeypatch):
    """Issue 25.12: each setting made a new full copy and nothing removed one. Three image sizes under an 80 kB
    cap (16 px: 18 kB, 20 px: 29 kB, 24 px: 41 kB): making the 24 px store removes the least recently used."""
    import gc

    root, df, store_dir = tree
    monkeypatch.setenv("DFD_CLIP_STORE_MAX_GB", str(80e3 / 1e9))

    def use(size):
        ds = FaceSequenceDataset(df, root, 4, cache="disk", store_size=size, store_dir=store_dir)
        ds[0]
        return ds

    for size in (16, 20):
        del_me = use(size)
        del del_me
        gc.collect()
        time.sleep(0.05)
    use(16)  # used again: now 20 px is the least recently used
    gc.collect()
    time.sleep(0.05)
    with pytest.warns(UserWarning, match=r"removed \w+, the least recently used store, to stay within 0\.0 GB"):
        keep = use(24)
    assert sorted(_sizes(store_dir)) == [16, 24] and sum(r["bytes"] for r in _sizes(store_dir).values()) <= 80e3
    # a store in use (a live dataset here; a training run in another process alike) is never removed
    with pytest.warns(UserWarning, match="removed"):
        use(20)
    assert 24 in _sizes(store_dir) and _sizes(store_dir)[24]["in_use"] and keep.store is not None
    assert 16 not in _sizes(store_dir)


def test_a_store_over_the_cap_falls_back_with_a_clear_warning(tree, monkeypatch):
    monkeypatch.setenv("DFD_CLIP_STORE_MAX_GB", "0.00001")
    with pytest.warns(UserWarning, match=r"more than the cap of 0\.0 GB \(DFD_CLIP_STORE_MAX_GB\)"):
        ds = dataset(tree)
    assert ds.store is None and ds[0][0].shape == (4, 3, 16, 16)
    monkeypatch.setenv("DFD_CLIP_STORE_MAX_GB", "lots")
    with pytest.raises(ValueError, match="DFD_CLIP_STORE_MAX_GB='lots'"):
        dataset(tree)
    assert clipstore.DEFAULT_MAX_GB == 50


def test_dfd_cache_lists_and_clears_the_stores(tree, capsys):
    import gc

    from dfdlib import cli

    root, df, store_dir = tree
    ds = dataset(tree)
    ds[0]
    other = FaceSequenceDataset(df, root, 4, cache="disk", store_size=20, store_dir=store_dir)
    assert cli.main(["cache", "--dir", str(store_dir)]) == 0
    out = capsys.readouterr().out
    assert "2 store(s)" in out and "4x3x16x16" in out and "1/6 clips" in out and "(in use)" in out
    assert "cap 50.0 GB" in out
    del other
    gc.collect()
    assert cli.main(["cache", "clear", "--dir", str(store_dir)]) == 0
    out = capsys.readouterr().out
    assert "kept" in out and "a training run is using it" in out and "removed 1 clip store(s)" in out
    assert list(_sizes(store_dir)) == [16]
    assert cli.main(["cache", "clear", "nope", "--dir", str(store_dir)]) == 1
    assert "no clip store nope" in capsys.readouterr().err
