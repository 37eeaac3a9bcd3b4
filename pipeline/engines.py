"""Where a stage's per-item work runs: this process, a local process pool, or Ray (local or a cluster).

Stages call `map_ordered(func, items, engine)` and get `func(item)` back in input order on every engine,
so a stage writes the same bytes whichever engine ran it. Ray is an optional extra, imported only when
`engine.kind == "ray"`.
"""
from __future__ import annotations

import importlib.util
import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

from pipeline.config import Settings, setting

ENGINES = ("local", "ray")
RAY_TASK_RETRIES = 3  # a batch whose worker or node dies runs again, this many times at most
RAY_EXTRA = "install the ray extra: pip install -e '.[ray]'"


class EngineError(ValueError):
    """An engine that cannot run here; the message says what to install or set."""


@dataclass
class ExecutionSettings(Settings):
    """params.yaml `execution:` says how stages run, never what they compute, so no stage's DVC `params`
    lists it: switching engines or moving the cache never reruns a stage."""

    engine: str = setting("local", choices=ENGINES)  # local | ray (the stage flag --engine overrides)
    ray_address: str = ""  # a Ray cluster (auto, host:6379, ray://host:10001); empty: $RAY_ADDRESS, else local
    ray_cpus: int = setting(0, ge=0)  # CPUs of a local Ray; 0 = every core
    cache_dir: str = ".cache/pipeline"  # per-file results of ingest and segment; empty = no cache


@dataclass(frozen=True)
class Engine:
    kind: str = "local"
    processes: int = 1  # local: worker processes (1 = this process, 0 = one per CPU core: `local_processes`)
    ray_address: str = ""
    ray_cpus: int = 0

    def __post_init__(self):
        if self.kind not in ENGINES:
            raise EngineError(f"unknown engine '{self.kind}': use one of {', '.join(ENGINES)} "
                              "(--engine, or execution.engine in params.yaml)")
        if self.kind == "ray" and importlib.util.find_spec("ray") is None:  # fail before any work is done
            raise EngineError(f"--engine ray needs Ray, which is not installed: {RAY_EXTRA}")


def map_ordered(func: Callable[[Any], Any], items: Iterable, engine: Engine, batch: int = 4) -> Iterator:
    """`func(item)` for each item, in input order; `batch` items travel to a worker together.

    Fewer than two items run in this process: starting a pool or Ray for them costs more than the work.
    """
    items = iter(items)
    head = list(itertools.islice(items, 2))
    processes = local_processes(engine.processes)
    if len(head) < 2 or (engine.kind == "local" and processes <= 1):
        return map(func, itertools.chain(head, items))
    items = itertools.chain(head, items)
    if engine.kind == "ray":
        return _map_ray(func, items, engine, batch)
    return _map_pool(func, items, processes, batch)


def local_processes(workers: int) -> int:
    """A `workers` setting as a number of processes: 0 means one per CPU core this process may use."""
    if workers:
        return workers
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _map_pool(func, items: Iterator, processes: int, batch: int) -> Iterator:
    # spawn, not fork: a forked child would inherit this process's threads and locks mid-state
    with get_context("spawn").Pool(processes) as pool:
        yield from pool.imap(func, items, chunksize=batch)


def _batches(items: Iterator, size: int) -> Iterator[list]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


def _map_ray(func, items: Iterator, engine: Engine, batch: int) -> Iterator:
    ray = connect_ray(engine)
    capacity = max(1, int(ray.cluster_resources().get("CPU", 1)))
    # Tasks, not actors: Ray keeps its worker processes between tasks, so a stage starts no processes;
    # `func` (a document builder, a segmenter, a model) goes to the object store once. A task whose
    # worker or node dies is run again elsewhere (RAY_TASK_RETRIES times); the results still come back
    # in input order, so the output is the same bytes.
    task, func_ref = ray.remote(max_retries=RAY_TASK_RETRIES)(_apply), ray.put(func)
    in_flight: deque = deque()
    try:
        for chunk in _batches(items, batch):
            in_flight.append(task.remote(func_ref, chunk))
            if len(in_flight) >= 2 * capacity:  # bounded: the input streams, never all in memory at once
                yield from ray.get(in_flight.popleft())
        while in_flight:
            yield from ray.get(in_flight.popleft())
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError,
            ray.exceptions.OwnerDiedError) as err:
        raise EngineError(f"Ray lost a batch of this stage {RAY_TASK_RETRIES + 1} times ({type(err).__name__}: a "
                          "worker or node died): the stage stopped and wrote nothing; see the Ray logs "
                          "(/tmp/ray/session_latest/logs on each node), then run it again") from err
    finally:
        for ref in in_flight:  # a stage that stops early leaves no work running on the cluster
            ray.cancel(ref, force=True)


def _apply(func, chunk: list) -> list:
    return [func(item) for item in chunk]


def connect_ray(engine: Engine):
    """The `ray` module, connected: to the running Ray if any, else to `engine.ray_address` or
    $RAY_ADDRESS (a cluster), else to a new local Ray with `engine.ray_cpus` CPUs."""
    import ray

    if not ray.is_initialized():
        address = engine.ray_address or os.environ.get("RAY_ADDRESS", "")
        if address:
            ray.init(address=address)
        else:
            ray.init(num_cpus=engine.ray_cpus or None, include_dashboard=False)
    return ray
