"""One task of a batch, run inside a worker: a whole file, or one segment of a long one, through
the same front end ``vidsr INPUT`` runs (its flags, its checks, its errors)."""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import VidsrError
from ..models.weights import sha256_of

JOBS = ("upscale", "downscale")
PROGRESS_EVERY = 8  # frames a worker reports to the driver's progress bar at once


def job_args(job: str, flags: list[str], src: Path, dst: Path):
    """The job's parsed arguments for one file: its own flags, the input, the output, overwriting
    (a changed input is redone into the same place), no bar or summary of its own."""
    if job not in JOBS:
        raise VidsrError(f"unknown job {job!r}; choose from {', '.join(JOBS)}")
    if job == "downscale":
        from ..cli.downscale import build_parser
    else:
        from ..cli.upscale import build_parser

    return build_parser().parse_args([str(src), "-o", str(dst), "-y", "--quiet", *flags])


def run_job(job: str, args, engines: dict, on_frame=None, segment=None):
    """Run one file (or a segment of it) through the job's front end; returns its ``Summary``."""
    if job == "downscale":
        from ..cli.downscale import run

        return run(args, on_frame, segment)
    from ..cli.upscale import run

    return run(args, engines, on_frame, segment)


def output_settings(job: str, args):
    """(scale, the ``EncodeOptions``, the preset's container suffix or None) that the job's flags and
    preset give: what names a file's output and how it is encoded."""
    if job == "downscale":
        from ..cli.downscale import encoder_settings

        scale, container, enc = encoder_settings(args)
        return scale, enc, container
    from ..cli.upscale import resolve_settings

    s = resolve_settings(args)
    return s.scale, s.encode_options(), s.container


def run_task(task, engines: dict, progress=None) -> dict:
    """The task's result record: status, frames, seconds, the output's checksum or the one-line
    error. Input and settings errors are results, not exceptions (they would fail again on a retry)."""
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

            summary = run_segment(task.job, args, Segment(*task.segment), engines, on_frame)
        else:
            summary = run_job(task.job, args, engines, on_frame)
    except VidsrError as e:
        return {"status": "failed", "error": str(e), "frames": 0, "seconds": time.perf_counter() - started}
    if progress is not None and pending[0]:
        progress.put(pending[0])
    # --skip-damaged: what was dropped (how many frames, and the single command's words for it)
    damaged = [[d.count, d.describe()] for d in summary.skipped]
    return {"status": "done", "frames": summary.frames, "seconds": time.perf_counter() - started,
            "output_sha256": sha256_of(Path(task.dst)), "damaged": damaged}
