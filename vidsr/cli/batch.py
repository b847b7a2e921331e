"""``vidsr batch SRC DST``: every media file under SRC through a job, into the same tree under DST,
on Ray; run the same command again to resume."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import SettingsError
from ..batch.jobs import JOBS
from .options import Parser, finite_float


def build_parser() -> Parser:
    p = Parser(
        prog="vidsr batch",
        description="Run a job on every media file under SRC (found by probing, not by extension), writing the "
        "same tree under DST, on a local Ray instance or a cluster. DST keeps a manifest: running the same "
        "command again skips what is done and unchanged and redoes what changed. Flags not listed here "
        "go to the job (e.g. --scale 4 --fps-target 30 --codec libx265).",
        usage="vidsr batch SRC DST [--job upscale|downscale] [--workers N] [--address auto|HOST:PORT] [--dry-run] "
        "[--retry-failed] [--segment-seconds S] [--overwrite] [--quiet] [JOB FLAGS ...]",
    )
    p.add_argument("src", type=Path, help="folder to read")
    p.add_argument("dst", type=Path, help="folder to write (made if missing)")
    p.add_argument("--job", default="upscale", choices=JOBS,
                   help="what to do with each file: upscale (vidsr INPUT, default) or downscale (vidsr downscale INPUT)")
    p.add_argument("--workers", type=int, help="parallel workers (default: one per CPU of this machine or cluster, "
                   "at most one per file or segment)")
    p.add_argument("--address", help="join a running Ray cluster (auto, or HOST:PORT) instead of starting one here")
    p.add_argument("--dry-run", action="store_true", help="say what would run and what is skipped; write nothing")
    p.add_argument("--retry-failed", action="store_true", help="run files that failed before again")
    p.add_argument("--segment-seconds", type=finite_float, default=60.0,
                   help="split videos at least twice this long at keyframes into segments of about this many "
                   "seconds, run as separate tasks and joined without a second encode (0: never split; default 60)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files already in DST that this batch did not write (refused by default)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, per-file lines or summary; failures are still said")
    return p


def main(argv: list[str]) -> int:
    args, job_flags = build_parser().parse_known_args(argv)
    if args.workers is not None and args.workers < 1:
        raise SettingsError("--workers must be at least 1")
    if args.segment_seconds < 0:
        raise SettingsError("--segment-seconds must be 0 (never split) or more")
    try:
        import ray  # noqa: F401
    except ImportError:
        raise SettingsError("vidsr batch needs Ray: pip install 'vidsr[batch]'") from None
    from ..batch.driver import Options, run_batch

    report = run_batch(Options(args.src, args.dst, args.job, job_flags, args.workers, args.address, args.dry_run,
                               args.retry_failed, args.segment_seconds, not args.quiet, args.overwrite))
    if not args.quiet:
        verb = "would run" if args.dry_run else "done"
        print(f"vidsr batch: {report.done} {verb}, {report.skipped} skipped (done before), {report.failed} failed, "
              f"{report.not_media} not media; {report.frames} frames in {report.seconds:.1f} s"
              + (f"; {report.damaged_frames} damaged frames skipped" if report.damaged_frames else ""), file=sys.stderr)
    return 1 if report.failed else 0
