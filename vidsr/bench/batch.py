"""``vidsr bench batch``: what ``vidsr batch`` costs and buys on this machine, as ratios in one run.

Clips are pans over the sample's photograph (the sample's own generator), upscaled x2 with a real
network into lossless FFV1 (so outputs can be compared bit for bit).
1. Overhead: the clips through ``vidsr batch --workers 1`` (a subprocess, Ray started and stopped
   inside it) against the same clips through the upscale front end one after another in one
   process (a subprocess too, its model loaded once).
2. Scaling: ``--workers 2`` against ``--workers 1`` on the same clips; and one long clip split into
   segments on two workers against the long clip in one process.
3. Resume: a batch whose driver is killed (SIGKILL) once half the clips are recorded, then run
   again: the rerun's time against the share of an uninterrupted batch's time the clips left take,
   and the outputs against the uninterrupted batch's.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLAGS = ["--model", "plain", "--codec", "ffv1"]

SEQUENTIAL = r"""
import sys
from pathlib import Path
from vidsr.batch.jobs import job_args
from vidsr.cli.upscale import run
from vidsr.runtime import tune_allocator
tune_allocator()  # as the vidsr command runs
flags, out, clips = sys.argv[1].split(), Path(sys.argv[2]), sys.argv[3:]
engines = {}
for clip in clips:
    run(job_args("upscale", flags, Path(clip), out / Path(clip).name), engines)  # named as the batch names it
"""


def _timed(cmd: list[str], **kw) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed: {proc.stderr.strip()[-400:]}")
    return time.perf_counter() - t


def _batch(src: Path, dst: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "vidsr", "batch", str(src), str(dst), "--quiet", *extra, *FLAGS]


def _frames(folder: Path) -> dict[str, list]:
    import av

    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        with av.open(str(path)) as c:
            out[path.name] = [(f.pts, f.to_ndarray().tobytes()) for f in c.decode(video=0)]
    return out


def run(clips: int = 8, seconds: float = 4.0, long_seconds: float = 24.0, segment_seconds: float = 6.0) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "samples"))
    from make_sample import DEFAULT_PHOTO, make  # the sample's own generator

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src, long_src = tmp / "src", tmp / "long"
        src.mkdir()
        long_src.mkdir()
        for i in range(clips):
            make(DEFAULT_PHOTO, src / f"clip{i}.mp4", (480, 270), seconds)
        make(DEFAULT_PHOTO, long_src / "long.mp4", (480, 270), long_seconds)
        script = tmp / "sequential.py"
        script.write_text(SEQUENTIAL)
        res = {"clips": clips, "seconds": seconds, "long_seconds": long_seconds, "segment_seconds": segment_seconds}

        (tmp / "seq").mkdir()
        res["sequential_s"] = _timed([sys.executable, str(script), " ".join(FLAGS), str(tmp / "seq"),
                                      *map(str, sorted(src.iterdir()))])
        res["batch1_s"] = _timed(_batch(src, tmp / "b1", "--workers", "1"))
        res["batch2_s"] = _timed(_batch(src, tmp / "b2", "--workers", "2"))
        (tmp / "lseq").mkdir()
        res["long_single_s"] = _timed([sys.executable, str(script), " ".join(FLAGS), str(tmp / "lseq"),
                                       str(long_src / "long.mp4")])
        res["long_segments_s"] = _timed(_batch(long_src, tmp / "lb", "--workers", "2",
                                               "--segment-seconds", str(segment_seconds)))
        res["long_identical"] = _frames(tmp / "lb") == _frames(tmp / "lseq")

        # resume: kill the driver once half the clips are recorded
        from ..batch.manifest import JOURNAL, Manifest

        dst = tmp / "resume"
        proc = subprocess.Popen(_batch(src, dst, "--workers", "1"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        journal = dst / JOURNAL
        while proc.poll() is None:
            if journal.exists() and len(journal.read_text().splitlines()) >= clips // 2:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        proc.wait()
        left = clips - len(Manifest(dst).records)
        res["resume_left"] = left
        res["resume_rerun_s"] = _timed(_batch(src, dst, "--workers", "1"))
        res["resume_identical"] = _frames(dst) == _frames(tmp / "b1") == _frames(tmp / "seq")
    res["overhead_ratio"] = res["batch1_s"] / res["sequential_s"]
    res["scaling_ratio"] = res["batch2_s"] / res["batch1_s"]
    res["long_ratio"] = res["long_segments_s"] / res["long_single_s"]
    res["resume_expected_s"] = res["batch1_s"] * res["resume_left"] / clips
    res["resume_ratio"] = res["resume_rerun_s"] / res["resume_expected_s"] if res["resume_left"] else float("nan")
    return res


def report(res: dict) -> str:
    n, s = res["clips"], res["seconds"]
    return "\n".join([
        f"{n} clips of {s:g} s at 480x270 -> 960x540 (`{' '.join(FLAGS)}`); a {res['long_seconds']:g} s clip for the "
        f"segments ({res['segment_seconds']:g} s each).\n",
        "| measure | time (s) | ratio |",
        "| --- | ---: | ---: |",
        f"| {n} clips, one after another in one process | {res['sequential_s']:.1f} | 1 |",
        f"| `vidsr batch --workers 1`, same clips | {res['batch1_s']:.1f} | **{res['overhead_ratio']:.3f}** |",
        f"| `vidsr batch --workers 2`, same clips | {res['batch2_s']:.1f} | **{res['scaling_ratio']:.3f}** of 1 worker |",
        f"| the long clip in one process | {res['long_single_s']:.1f} | 1 |",
        f"| the long clip in segments, `--workers 2` | {res['long_segments_s']:.1f} | **{res['long_ratio']:.3f}** "
        f"(frames {'identical' if res['long_identical'] else 'DIFFERENT'}) |",
        f"| rerun after the driver was killed with {res['resume_left']} of {n} clips left | {res['resume_rerun_s']:.1f} | "
        f"**{res['resume_ratio']:.3f}** of their share of an uninterrupted run ({res['resume_expected_s']:.1f} s); "
        f"outputs {'identical' if res['resume_identical'] else 'DIFFERENT'} |",
    ])
