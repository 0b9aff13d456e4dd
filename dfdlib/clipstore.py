"""Stage 3, the clip store: every training clip decoded once, stored as uint8 at training resolution in one
file on local disk, and read back by every DataLoader worker with plain `pread` calls.

Why a file and not RAM: a per-worker in-memory cache holds a private copy of every clip each worker has
seen (T*3*S*S bytes a clip, ~2.4 MB at 224 px x 16 frames), so memory grows with the dataset and with the
number of workers. Here the clips live in the kernel's page cache, shared by all processes and released
under memory pressure; a process only holds the batch it is working on. `pread` (not `mmap`) keeps the
pages out of each process's resident set, so the memory of training does not grow with the dataset.

Layout: `<store_dir>/<key>/clips.u8` (item i at offset i*item_bytes) and `done.u8` (one byte per item,
set after the item's bytes are written: a crash mid-write leaves the byte 0 and the item is rebuilt).
The key hashes what the clips are made of (the frame files used: names, sizes, mtimes; clip length,
sampling, resolution), so changed frames or settings give a new store and an old one is never read.
Workers write disjoint items; two processes writing one item write the same bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np

MIN_FREE = 1 << 30  # keep this much disk free beyond the store itself (bytes)


def default_dir() -> Path:
    """`$DFD_CLIP_STORE`, else `$XDG_CACHE_HOME/dfdlib/clips`, else `~/.cache/dfdlib/clips` (local disk on Colab,
    not Drive: the store is rebuilt in one epoch and is too big for a Drive quota)."""
    if os.environ.get("DFD_CLIP_STORE"):
        return Path(os.environ["DFD_CLIP_STORE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dfdlib" / "clips"


def store_key(folders: list[Path], frames: list[list[str]], shape: tuple[int, ...], sampling: str) -> str:
    """A hash of what the clips are made of: every frame file (name, size, mtime), the clip shape, the sampling."""
    h = hashlib.sha1(json.dumps([list(shape), sampling]).encode())
    for folder, names in zip(folders, frames, strict=True):
        h.update(str(folder.resolve()).encode())
        for n in names:
            st = (folder / n).stat()
            h.update(f"/{n}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


class ClipStore:
    """uint8 clips of one shape (T, 3, S, S) in a file: `get(i)` → array or None, `put(i, array)`.

    Picklable (DataLoader workers): file descriptors are opened per process on first use.
    """

    def __init__(self, folder: str | Path, n_items: int, shape: tuple[int, ...]):
        self.folder, self.n_items, self.shape = Path(folder), int(n_items), tuple(int(s) for s in shape)
        self.item_bytes = int(np.prod(self.shape))
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, size in (("clips.u8", self.n_items * self.item_bytes), ("done.u8", self.n_items)):
            path = self.folder / name
            if not path.exists() or path.stat().st_size != size:
                with open(path, "wb") as f:  # sparse: takes disk space only as items are written
                    f.truncate(size)
        self._fds: tuple[int, int, int] | None = None  # (pid, clips fd, done fd)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_fds"} | {"_fds": None}

    def _open(self) -> tuple[int, int]:
        if self._fds is None or self._fds[0] != os.getpid():  # a forked worker opens its own descriptors
            self._fds = (os.getpid(), os.open(self.folder / "clips.u8", os.O_RDWR),
                         os.open(self.folder / "done.u8", os.O_RDWR))
        return self._fds[1], self._fds[2]

    def get(self, i: int) -> np.ndarray | None:
        clips, done = self._open()
        if os.pread(done, 1, i) != b"\x01":
            return None
        buf = bytearray(self.item_bytes)  # writable, so torch.from_numpy needs no copy
        if os.preadv(clips, [buf], i * self.item_bytes) != self.item_bytes:
            return None
        return np.frombuffer(buf, np.uint8).reshape(self.shape)

    def put(self, i: int, clip: np.ndarray) -> None:
        clips, done = self._open()
        clip = np.ascontiguousarray(clip, dtype=np.uint8)
        if clip.shape != self.shape:
            raise ValueError(f"clip {i} has shape {clip.shape}, the store holds {self.shape}")
        os.pwrite(clips, clip.tobytes(), i * self.item_bytes)
        os.pwrite(done, b"\x01", i)

    def count(self) -> int:
        """Items stored so far."""
        return int(np.count_nonzero(np.fromfile(self.folder / "done.u8", np.uint8)))


def open_store(folders: list[Path], frames: list[list[str]], shape: tuple[int, ...], sampling: str,
               store_dir: str | Path | None = None) -> ClipStore | None:
    """The store for these clips under `store_dir` (default_dir()), or None with a warning when the disk
    lacks room for it (training then decodes the JPEGs every epoch, which is slower, not wrong)."""
    root = Path(store_dir) if store_dir else default_dir()
    need = len(folders) * int(np.prod(shape))
    try:
        root.mkdir(parents=True, exist_ok=True)
        folder = root / store_key(folders, frames, shape, sampling)
        have = 0 if not (folder / "clips.u8").exists() else (folder / "done.u8").stat().st_size
        free = shutil.disk_usage(root).free
        if not have and free < need + MIN_FREE:
            warnings.warn(f"clip store: {need / 2**30:.1f} GiB needed under {root} but {free / 2**30:.1f} GiB free; "
                          "decoding JPEGs every epoch instead (set DFD_CLIP_STORE to a bigger disk, or lower "
                          "image_size / sequence_length)", stacklevel=3)
            return None
        return ClipStore(folder, len(folders), shape)
    except OSError as e:
        warnings.warn(f"clip store unavailable under {root} ({e}); decoding JPEGs every epoch instead "
                      "(set DFD_CLIP_STORE to a writable local folder)", stacklevel=3)
        return None
