"""Running a batch on Ray: one actor per worker keeps its models loaded and runs files (or
segments of long files) one after another; the driver schedules, records and reports.

Ray is the distributed engine: it places each worker on a CPU share (and a GPU share where there
are GPUs), restarts a worker whose process dies and retries the task it was running, and runs the
same code on a laptop and a cluster. Deterministic failures (a corrupt file, a bad flag) come back
as failed records, not exceptions, so they are recorded once and not retried.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

WORKER_RESTARTS = 2  # a worker process that dies is restarted this often, its task retried as often


@dataclass(frozen=True)
class Task:
    """One unit of work: a whole file, or one segment of a long one."""

    job: str  # "upscale"
    flags: tuple[str, ...]  # the job's own flags (validated by the driver)
    src: str  # absolute input path
    dst: str  # absolute output path (a segment: its segment file)
    rel: str  # the input's path relative to SRC (for records and messages)
    segment: tuple | None = None  # (index, start pts, end pts or None) within the video stream
    image: bool = False


def plan_workers(requested: int | None, tasks: int, cpus: int, gpus: float) -> tuple[int, int, float]:
    """(workers, torch threads each, GPUs each): never more threads in all than CPUs, never more
    workers than tasks; one thread each by default, since several files at once keep the cores
    busier through the codecs' serial parts than one file on every thread."""
    cpus = max(1, int(cpus))
    workers = requested or min(cpus, max(1, tasks))
    workers = max(1, min(workers, max(1, tasks)))
    threads = max(1, cpus // workers)
    return workers, threads, (gpus / workers if gpus else 0.0)


def start_ray(address: str | None, cpus: int | None = None):
    """Join the cluster at ``address``, or start a local instance sized to this machine. Returns
    (ray, whether this call started it: the caller shuts down only what it started). A process
    that already runs Ray (a notebook, a test) keeps its own."""
    import ray

    if ray.is_initialized():
        return ray, False
    from ..errors import SettingsError

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local instance for this process alone
    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=cpus or os.cpu_count() or 1, **kwargs)
    except Exception as e:  # noqa: BLE001 - Ray raises plain Exceptions for a failed start
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SettingsError(f"could not start or join {where}: {first}") from None
    return ray, True


def make_worker_class(ray):
    """The worker actor, defined once Ray is imported (it stays an optional dependency)."""

    @ray.remote(max_restarts=WORKER_RESTARTS, max_task_retries=WORKER_RESTARTS)
    class Worker:
        def __init__(self, threads: int):
            import torch

            from ..runtime import tune_allocator

            torch.set_num_threads(threads)
            tune_allocator()
            self.cache: dict = {}  # loaded engines by settings, reused across files

        def pid(self) -> int:
            return os.getpid()

        def run(self, task: Task, progress=None) -> dict:
            from .jobs import run_task

            return run_task(task, self.cache, progress)

    return Worker


def task_result(ray, ref) -> dict:
    """A finished task's result record; a worker that died more often than it may be restarted is a
    failed record too, so the batch goes on."""
    try:
        return ray.get(ref)
    except Exception as e:  # noqa: BLE001 - Ray wraps the worker's death in its own error types
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return {"status": "failed", "error": f"the worker failed ({type(e).__name__}{': ' + first if first else ''})",
                "frames": 0, "seconds": 0.0}
