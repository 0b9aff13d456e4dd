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

Size cap: each setting makes a full copy of the clips (FF++ at 224 px x 20 frames: ~21 GB), so the stores
under one folder are kept within `$DFD_CLIP_STORE_MAX_GB` (default DEFAULT_MAX_GB) by removing the least
recently used ones when a new store is made. A store in use (a shared `flock` on its `lock` file, held by
every process reading it) is never removed. `dfd cache` lists the stores and clears them, like `pip cache`.
"""
from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no in-use locks; eviction then relies on the LRU order alone
    fcntl = None

MIN_FREE = 1 << 30  # keep this much disk free beyond the store itself (bytes)
DEFAULT_MAX_GB = 50.0  # all stores under one folder together; $DFD_CLIP_STORE_MAX_GB overrides it

CACHE_MODES = ("disk", "ram", "off")  # how a FaceSequenceDataset keeps decoded clips (TrainConfig.cache)


def default_dir() -> Path:
    """`$DFD_CLIP_STORE`, else `$XDG_CACHE_HOME/dfdlib/clips`, else `~/.cache/dfdlib/clips` (local disk on Colab,
    not Drive: the store is rebuilt in one epoch and is too big for a Drive quota)."""
    if os.environ.get("DFD_CLIP_STORE"):
        return Path(os.environ["DFD_CLIP_STORE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dfdlib" / "clips"


def max_bytes() -> int:
    """The size cap of all stores under one folder: `$DFD_CLIP_STORE_MAX_GB` (GB = 1e9 bytes), else DEFAULT_MAX_GB.
    Raises ValueError for a value that is not a number >= 0."""
    text = os.environ.get("DFD_CLIP_STORE_MAX_GB", "").strip()
    try:
        gb = float(text) if text else DEFAULT_MAX_GB
    except ValueError:
        gb = -1.0
    if not gb >= 0:
        raise ValueError(f"DFD_CLIP_STORE_MAX_GB={text!r}: give the clip stores' size cap in GB, e.g. 50")
    return int(gb * 1e9)


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
        self._fds: tuple[int, int, int, int] | None = None  # (pid, clips fd, done fd, lock fd)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_fds"} | {"_fds": None}

    def _open(self) -> tuple[int, int]:
        if self._fds is None or self._fds[0] != os.getpid():  # a forked worker opens its own descriptors
            self._fds = (os.getpid(), os.open(self.folder / "clips.u8", os.O_RDWR),
                         os.open(self.folder / "done.u8", os.O_RDWR), _hold(self.folder))
        return self._fds[1], self._fds[2]

    def close(self) -> None:
        """Release this process's descriptors, and with them its hold on the store (see in_use)."""
        fds, self._fds = self._fds, None
        if fds is not None and fds[0] == os.getpid():
            for fd in fds[1:]:
                with contextlib.suppress(OSError):
                    os.close(fd)

    __del__ = close

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


def _hold(folder: Path) -> int:
    """Open `<store>/lock` and hold a shared lock on it for as long as this process uses the store."""
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o666)
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def in_use(folder: Path) -> bool:
    """Whether a process holds the store at `folder` (see _hold)."""
    if fcntl is None or not (folder / "lock").exists():
        return False
    fd = os.open(folder / "lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def list_stores(store_dir: str | Path | None = None) -> list[dict]:
    """Every store under `store_dir` (default_dir()), least recently used first: {"path", "bytes" (the full
    size it grows to), "on_disk" (written so far), "items", "done", "shape", "last_used" (epoch seconds),
    "in_use"}."""
    root = Path(store_dir) if store_dir else default_dir()
    out = []
    for folder in sorted(root.glob("*/clips.u8")) if root.is_dir() else []:
        folder = folder.parent
        with contextlib.suppress(OSError, ValueError):
            info = json.loads((folder / "info.json").read_text()) if (folder / "info.json").exists() else {}
            files = [folder / "clips.u8", folder / "done.u8"]
            used = folder / "last_used"
            out.append({"path": folder, "bytes": sum(f.stat().st_size for f in files),
                        "on_disk": sum(f.stat().st_blocks * 512 for f in files), "items": info.get("items"),
                        "done": int(np.count_nonzero(np.fromfile(folder / "done.u8", np.uint8))),
                        "shape": info.get("shape"), "sampling": info.get("sampling"),
                        "last_used": (used if used.exists() else files[1]).stat().st_mtime,
                        "in_use": in_use(folder)})
    return sorted(out, key=lambda r: r["last_used"])


def evict(root: Path, need: int, cap: int, keep: Path | None = None) -> list[Path]:
    """Remove least recently used stores under `root` (never `keep`, never one in use) until the others and
    `need` more bytes fit in `cap`. Returns the removed folders."""
    stores = [r for r in list_stores(root) if r["path"] != keep]
    total, removed = sum(r["bytes"] for r in stores) + need, []
    for r in stores:
        if total <= cap:
            break
        if r["in_use"]:
            continue
        shutil.rmtree(r["path"], ignore_errors=True)
        total -= r["bytes"]
        removed.append(r["path"])
    return removed


def open_store(folders: list[Path], frames: list[list[str]], shape: tuple[int, ...], sampling: str,
               store_dir: str | Path | None = None, cap: int | None = None) -> ClipStore | None:
    """The store for these clips under `store_dir` (default_dir()), or None with a warning when the disk
    lacks room for it or it exceeds the size cap `cap` (default max_bytes()); training then decodes the
    JPEGs every epoch, which is slower, not wrong. Making a new store first removes least recently used
    ones (evict) so that all stay within the cap."""
    root = Path(store_dir) if store_dir else default_dir()
    need = len(folders) * int(np.prod(shape))
    cap = max_bytes() if cap is None else int(cap)
    try:
        root.mkdir(parents=True, exist_ok=True)
        folder = root / store_key(folders, frames, shape, sampling)
        have = 0 if not (folder / "clips.u8").exists() else (folder / "done.u8").stat().st_size
        if not have and need > cap:
            warnings.warn(f"clip store: {need / 1e9:.1f} GB needed, more than the cap of {cap / 1e9:.1f} GB "
                          "(DFD_CLIP_STORE_MAX_GB); decoding JPEGs every epoch instead (raise the cap, or lower "
                          "image_size / sequence_length)", stacklevel=3)
            return None
        if not have:
            gc.collect()  # datasets of finished runs in this process release their stores
            for gone in evict(root, need, cap, keep=folder):
                warnings.warn(f"clip store: removed {gone.name}, the least recently used store, to stay within "
                              f"{cap / 1e9:.1f} GB (DFD_CLIP_STORE_MAX_GB; `dfd cache` lists them)", stacklevel=3)
        free = shutil.disk_usage(root).free
        if not have and free < need + MIN_FREE:
            warnings.warn(f"clip store: {need / 2**30:.1f} GiB needed under {root} but {free / 2**30:.1f} GiB free; "
                          "decoding JPEGs every epoch instead (set DFD_CLIP_STORE to a bigger disk, lower "
                          "DFD_CLIP_STORE_MAX_GB, clear old stores with `dfd cache clear`, or lower image_size / "
                          "sequence_length)", stacklevel=3)
            return None
        store = ClipStore(folder, len(folders), shape)
        store._open()  # hold it (in use) from now on
        if not (folder / "info.json").exists():
            (folder / "info.json").write_text(json.dumps({"items": len(folders), "shape": list(shape),
                                                          "sampling": sampling, "first": str(folders[0])}))
        (folder / "last_used").write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
        return store
    except OSError as e:
        warnings.warn(f"clip store unavailable under {root} ({e}); decoding JPEGs every epoch instead "
                      "(set DFD_CLIP_STORE to a writable local folder)", stacklevel=3)
        return None
