"""One task of a batch, run inside a worker: a whole file, or one segment of a long one, through
the same front end ``vidsr INPUT`` runs (its flags, its checks, its errors)."""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import VidsrError
from ..models.weights import sha256_of

JOBS = ("upscale",)
PROGRESS_EVERY = 8  # frames a worker reports to the driver's progress bar at once


def job_args(job: str, flags: list[str], src: Path, dst: Path):
    """The job's parsed arguments for one file: its own flags, the input, the output, overwriting
    (a changed input is redone into the same place), no bar or summary of its own."""
    if job not in JOBS:
        raise VidsrError(f"unknown job {job!r}; choose from {', '.join(JOBS)}")
    from ..cli.upscale import build_parser

    return build_parser().parse_args([str(src), "-o", str(dst), "-y", "--quiet", *flags])


def run_task(task, engines: dict, progress=None) -> dict:
    """The task's result record: status, frames, seconds, the output's checksum or the one-line
    error. Input and settings errors are results, not exceptions (they would fail again on a retry)."""
    from ..cli.upscale import run

    started = time.perf_counter()
    pending = [0]

    def on_frame(_record):
        pending[0] += 1
        if progress is not None and pending[0] >= PROGRESS_EVERY:
            progress.put(pending[0])
            pending[0] = 0

    try:
        args = job_args(task.job, list(task.flags), Path(task.src), Path(task.dst))
        if task.segment is not None:
            from .segments import Segment, run_segment

            summary = run_segment(args, Segment(*task.segment), engines, on_frame)
        else:
            summary = run(args, engines, on_frame)
    except VidsrError as e:
        return {"status": "failed", "error": str(e), "frames": 0, "seconds": time.perf_counter() - started}
    if progress is not None and pending[0]:
        progress.put(pending[0])
    return {"status": "done", "frames": summary.frames, "seconds": time.perf_counter() - started,
            "output_sha256": sha256_of(Path(task.dst))}
