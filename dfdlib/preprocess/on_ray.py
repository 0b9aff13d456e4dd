"""Stage 1 on a Ray cluster: `dfd preprocess SRC OUT --ray [ADDRESS]` (Ray is the extra `dfdlib[ray]`).

run.py lists the videos, skips finished ones, cleans half-written folders and writes the report;
this module only replaces its process pool. One actor per CPU that Ray reports (each builds one MTCNN
pinned to one thread, like a `--workers` process) runs `fn(task) -> row` for the videos it is given, in
order. A work unit is an original and its fakes (the videos that share footage), so one actor sees them
one after the other. Backpressure: each actor holds at most `queued` units, so the driver's memory and
Ray's object store stay small whatever the dataset size. An actor that dies (out of memory, a decoder
crash) is replaced; the video it was on is retried once, then reported through `crash_row`.
"""
from __future__ import annotations

import math
from collections import deque

LOCAL = "local"  # `--ray` without an address: start a Ray instance on this machine


class VideoWorker:
    """The body of one Ray actor: `initializer()` once, then `fn(task)` per call."""

    def __init__(self, fn, initializer=None):
        if initializer is not None:
            initializer()
        self.fn = fn

    def run(self, task):
        return self.fn(task)


def import_ray():
    """The `ray` module; RuntimeError with the install line when the extra is missing."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("--ray needs Ray on this machine and on every node: pip install 'dfdlib[ray]'") from None
    return ray


def address_of(ray_arg) -> str | None:
    """`preprocess_dataset(ray=...)` → the address for ray.init: True/'local' → None (a local instance),
    'auto' / 'ray://host:10001' / 'host:6379' as given. Raises ValueError for anything else."""
    if ray_arg is True or ray_arg == LOCAL:
        return None
    if isinstance(ray_arg, str) and ray_arg.strip():
        return ray_arg.strip()
    raise ValueError(f"ray must be True, 'local', 'auto', 'ray://HOST:PORT' or 'HOST:PORT', got {ray_arg!r}")


def connect(ray_arg, num_cpus: int | None = None) -> bool:
    """ray.init unless Ray is already initialised in this process (then its instance is used as it is).

    A local instance gets `num_cpus` (None: every core) and no dashboard; worker output stays out of the
    terminal (TensorFlow's start-up lines). Returns True when this call started Ray (the caller shuts it down).
    """
    import logging

    ray = import_ray()
    address = address_of(ray_arg)
    if ray.is_initialized():
        return False
    kw = dict(log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
    if address is None:
        ray.init(num_cpus=num_cpus, include_dashboard=False, **kw)
    else:
        ray.init(address=address, **kw)
    return True


def work_units(tasks: list) -> list[list[int]]:
    """Indices of `tasks` grouped as an original and its fakes (key: the fake's `original`, else the
    video's own path), units in order of first appearance, then largest first (big units start early,
    so the last actor does not finish long after the others)."""
    units: dict[str, list[int]] = {}
    for i, t in enumerate(tasks):
        units.setdefault(t.original or t.path, []).append(i)
    return sorted(units.values(), key=len, reverse=True)  # stable: equal sizes keep their order


def run_on_ray(tasks: list, fn, ray_arg=True, on_row=None, initializer=None, crash_row=None,
               actors: int | None = None, queued: int = 2) -> list[dict]:
    """Run fn(task) -> row for every task on Ray actors; returns the rows in task order.

    Takes the tasks (VideoTask-like: `.path`, `.original`), a picklable `fn`, where to run (`ray_arg`, see
    address_of), a callback per finished row, the actor's `initializer`, `crash_row(task) -> row` for a
    video that killed its actor twice (default: raise), at most `actors` actors (default: the CPUs Ray
    reports) and units queued per actor. Starts a local Ray instance when none runs (and stops it after).
    Raises RuntimeError without Ray, and what `fn` raises.
    """
    if not tasks:
        return []
    ray = import_ray()
    started = connect(ray_arg, num_cpus=actors if ray_arg in (True, LOCAL) else None)
    try:
        return _schedule(ray, tasks, fn, on_row, initializer, crash_row, actors, queued)
    finally:
        if started:
            ray.shutdown()


def actor_resources(resources: dict, actors: int) -> dict:
    """What each actor asks Ray for: one CPU, and where the cluster has GPUs an equal share of them, so Ray
    makes them visible to the actors and the detector ("auto": the torch MTCNN) runs on CUDA, batched over
    each video's frames; without GPUs the actors stay CPU-only."""
    gpus = float(resources.get("GPU", 0))
    if gpus <= 0:
        return {"num_cpus": 1}
    share = math.floor(1000 * gpus / max(actors, 1)) / 1000  # rounded down: the shares always fit
    return {"num_cpus": 1, "num_gpus": min(1.0, max(share, 0.001))}


def _schedule(ray, tasks, fn, on_row, initializer, crash_row, actors, queued) -> list[dict]:
    from ray.exceptions import GetTimeoutError, RayActorError

    resources = ray.cluster_resources()
    cpus = int(resources.get("CPU", 1))
    pending = deque(work_units(tasks))
    n = max(1, min(len(pending), cpus, actors or cpus))
    worker_cls = ray.remote(**actor_resources(resources, n))(VideoWorker)
    fn_ref = ray.put(fn)  # once, not once per actor
    slots = [worker_cls.remote(fn_ref, initializer) for _ in range(n)]
    queues: list[deque] = [deque() for _ in range(n)]  # per actor: units, each a list of [index, ref|None]
    owner: dict = {}  # ref → actor slot
    rows: dict[int, dict] = {}
    strikes: dict[int, int] = {}

    def record(i: int, row: dict) -> None:
        rows[i] = row
        if on_row:
            on_row(row)

    def feed(s: int) -> None:
        while pending and len(queues[s]) < queued:
            unit = [[i, slots[s].run.remote(tasks[i])] for i in pending.popleft()]
            queues[s].append(unit)
            owner.update({ref: s for _, ref in unit})

    def actor_died(s: int) -> None:
        left = []
        for i, ref in [item for unit in queues[s] for item in unit if item[1] is not None]:
            owner.pop(ref, None)
            try:  # calls the actor finished before it died still hold their rows
                record(i, ray.get(ref, timeout=60))
            except (RayActorError, GetTimeoutError):
                left.append(i)
        queues[s].clear()
        slots[s] = worker_cls.remote(fn_ref, initializer)
        if not left:
            return
        first = left[0]  # an actor runs its calls in order: the first unfinished one was running
        strikes[first] = strikes.get(first, 0) + 1
        if strikes[first] >= 2:  # twice: the video, not the node
            if crash_row is None:
                raise RuntimeError(f"a Ray actor died twice on {tasks[first].path}")
            record(first, crash_row(tasks[first]))
            left = left[1:]
        if left:
            pending.appendleft(left)

    def collect(ref, s: int) -> None:
        try:
            row = ray.get(ref)
        except RayActorError:
            actor_died(s)
            feed(s)
            return
        unit = next(u for u in queues[s] if any(r is not None and r == ref for _, r in u))
        for item in unit:
            if item[1] is not None and item[1] == ref:
                record(item[0], row)
                item[1] = None
        if all(r is None for _, r in unit):
            queues[s].remove(unit)
            feed(s)

    try:
        for s in range(n):
            feed(s)
        while owner:
            ray.wait(list(owner), num_returns=1)
            for ref in ray.wait(list(owner), num_returns=len(owner), timeout=0)[0]:  # every row that is in
                if ref in owner:  # not dropped with an actor that died meanwhile
                    collect(ref, owner.pop(ref))
    finally:
        for a in slots:  # on an error or Ctrl-C too: no actor keeps decoding for a driver that has gone
            ray.kill(a)
    return [rows[i] for i in range(len(tasks))]
