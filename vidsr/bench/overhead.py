"""``vidsr bench overhead``: what the streaming pipeline costs over FFmpeg's own loop, and whether
its memory stays flat as videos get longer.

1. Speed: the sample re-rendered at 960x540 and upscaled x2 to 1080p. ``vidsr --model lanczos``
   (a subprocess, as users run it) against a plain PyAV loop doing decode -> reformat(LANCZOS) ->
   encode with the same encoder settings (also a subprocess, so both pay interpreter start-up).
   Runs alternate, best of N each; the ratio is what is reported.
2. Memory: peak RSS of ``vidsr`` on a clip and on the same clip four times longer, with Lanczos and
   with a network. Each child reports its own ``VmHWM`` (Linux) as it exits: the rusage of a child
   forked from this (torch-sized) process would count the parent's pages it inherited.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENCODER = ["--codec", "libx264", "--crf", "20", "--encoder-opt", "preset=veryfast"]

BASELINE = r"""
import sys, av
src, dst = sys.argv[1], sys.argv[2]
with av.open(src) as inp, av.open(dst, "w") as out:
    ist = inp.streams.video[0]
    ist.thread_type = "AUTO"
    ost = out.add_stream("libx264", rate=ist.average_rate, options={"crf": "20", "preset": "veryfast"})
    ost.width, ost.height, ost.pix_fmt = ist.codec_context.width * 2, ist.codec_context.height * 2, "yuv420p"
    ost.time_base = ist.time_base
    ost.codec_context.time_base = ist.time_base
    for frame in inp.decode(ist):
        big = frame.reformat(width=ost.width, height=ost.height, format="yuv420p", interpolation="LANCZOS")
        big.pts, big.time_base = frame.pts, frame.time_base
        for p in ost.encode(big):
            out.mux(p)
    for p in ost.encode():
        out.mux(p)
"""


PEAK_RSS = (
    "import atexit, runpy, sys\n"
    "def report():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            sys.stderr.write('VIDSR_PEAK_KB ' + line.split()[1] + '\\n')\n"
    "atexit.register(report)\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__') if sys.argv[0].endswith('.py') else "
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
)


def _run(cmd: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in MB) of a Python child: ``cmd`` is [python, script | -m module, args...]."""
    py, rest = cmd[0], cmd[1:]
    target = rest[1:] if rest[0] == "-m" else rest
    t = time.perf_counter()
    proc = subprocess.run([py, "-c", PEAK_RSS, *target], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-500:]}")
    peak = [int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("VIDSR_PEAK_KB")]
    return wall, peak[-1] // 1024


def make_clips(folder: Path, photo: Path | None, seconds: float) -> dict[str, Path]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "samples"))
    from make_sample import DEFAULT_PHOTO, make  # the sample's own generator

    photo = photo or DEFAULT_PHOTO
    return {
        "540p": make(photo, folder / "pan540.mp4", (960, 540), seconds),
        "short": make(photo, folder / "short.mp4", (480, 270), seconds),
        "long": make(photo, folder / "long.mp4", (480, 270), seconds * 4),
    }


def run(repeats: int = 3, seconds: float = 4.0, photo: Path | None = None, network: str | None = None) -> dict:
    vidsr = [sys.executable, "-m", "vidsr"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = make_clips(tmp, photo, seconds)
        script = tmp / "baseline.py"
        script.write_text(BASELINE)
        ours_cmd = vidsr + [str(clips["540p"]), "-o", str(tmp / "ours.mp4"), "-y", "--quiet", "--model", "lanczos", *ENCODER]
        base_cmd = [sys.executable, str(script), str(clips["540p"]), str(tmp / "base.mp4")]
        ours, base = [], []
        for _ in range(repeats):
            base.append(_run(base_cmd)[0])
            ours.append(_run(ours_cmd)[0])
        memory = {}
        models = ["lanczos"] + ([network] if network else [])
        for model in models:
            for name in ("short", "long"):
                _, rss = _run(vidsr + [str(clips[name]), "-o", str(tmp / f"m_{name}.mp4"), "-y", "--quiet",
                                       "--model", model, *ENCODER])
                memory[f"{model}/{name}"] = rss
    return {
        "seconds": seconds,
        "frames_540p": int(round(seconds * 30)),
        "baseline_s": min(base),
        "vidsr_s": min(ours),
        "time_ratio": min(ours) / min(base),
        "all_runs": {"baseline": base, "vidsr": ours},
        "rss_mb": memory,
        "rss_ratio": {m: memory[f"{m}/long"] / memory[f"{m}/short"] for m in models},
    }


def report(res: dict) -> str:
    lines = [
        "| measure | value |",
        "| --- | --- |",
        f"| plain PyAV loop, 960x540 -> 1920x1080, {res['frames_540p']} frames | {res['baseline_s']:.2f} s |",
        f"| `vidsr --model lanczos`, same clip and encoder | {res['vidsr_s']:.2f} s |",
        f"| **time ratio vidsr / PyAV loop** | **{res['time_ratio']:.3f}** |",
    ]
    for model, ratio in res["rss_ratio"].items():
        lines.append(f"| peak RSS `{model}`: {res['seconds']:g} s clip / {4 * res['seconds']:g} s clip | {res['rss_mb'][model + '/short']} MB / "
                     f"{res['rss_mb'][model + '/long']} MB |")
        lines.append(f"| **RSS ratio (4x longer clip), {model}** | **{ratio:.3f}** |")
    return "\n".join(lines)
