"""``vidsr bench fps``: does ``--fps-target`` hold the frame rate, and what quality does it buy?

A 720p ground-truth clip is rendered from the validation images (a slow pan over each, so the
content is not in the training set), downscaled x2 with antialiased bicubic to a lossless 360p
clip, and upscaled back by ``vidsr`` as users run it (a subprocess, x264 encode included):
- with Lanczos (the speed ceiling and the quality floor),
- with the full network on every pixel (the speed floor),
- with ``--fps-target T`` for targets spread between the two, and 30.
Steady-state fps is measured from the per-frame completion times in ``--stats`` (the first 25% of
frames, where the controller calibrates, are left out); PSNR-Y is over every frame against the
720p truth, with 2 pixels cropped at the border.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from ..io.formats import plane_view
from ..metrics import psnr, rgb_to_luma
from ..models import registry
from ..models.interpolation import downscale
from ..train.data import default_folder, list_images

HR = (1280, 720)
FPS = 30
ENCODE = ["--codec", "libx264", "--crf", "12", "--encoder-opt", "preset=veryfast"]
WARMUP = 0.25


def hr_frames(val_dir: Path, seconds: float):
    """720p RGB frames: a slow diagonal pan over each validation image in turn."""
    images = [Image.open(p).convert("RGB") for p in list_images(val_dir)]
    n = int(round(seconds * FPS))
    per = max(1, n // len(images))
    for i in range(n):
        im = images[min(i // per, len(images) - 1)]
        t = (i % per) / max(1, per - 1)
        w = im.width * (0.9 - 0.1 * t)
        h = w * HR[1] / HR[0]
        x0, y0 = (im.width - w) * t, (im.height - h) * (1 - t)
        yield np.asarray(im.resize(HR, Image.Resampling.LANCZOS, box=(x0, y0, x0 + w, y0 + h)))


def studio_frame(rgb: np.ndarray, index: int) -> av.VideoFrame:
    """An (H, W, 3) RGB frame in [0, 1] as yuv420p, BT.601 studio range, its luma exactly as
    training computes it; shown at ``index`` / FPS."""
    frame = av.VideoFrame.from_ndarray((rgb * 255).round().astype(np.uint8), format="rgb24")
    frame = frame.reformat(format="yuv420p", dst_colorspace="ITU601", dst_color_range="MPEG")
    plane_view(frame, 0)[:] = np.round(rgb_to_luma(rgb) * 255).astype(np.uint8)
    frame.pts, frame.time_base = index, Fraction(1, FPS)
    return frame


def write_lr_clip(frames, path: Path, codec: str = "ffv1", options: dict | None = None) -> Path:
    """The 360p input: antialiased bicubic /2 of each 720p RGB frame (uint8), as ``studio_frame``s."""
    out = av.open(str(path), "w")
    st = out.add_stream(codec, rate=FPS, options=options or {})
    st.width, st.height, st.pix_fmt = HR[0] // 2, HR[1] // 2, "yuv420p"
    st.codec_context.colorspace, st.codec_context.color_range = 6, 1
    for i, rgb in enumerate(frames):
        t = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255
        lr = downscale(t, 2)[0].permute(1, 2, 0).clamp(0, 1).numpy()
        for p in st.encode(studio_frame(lr, i)):
            out.mux(p)
    for p in st.encode():
        out.mux(p)
    out.close()
    return path


def make_lr_clip(val_dir: Path, path: Path, seconds: float) -> Path:
    """The lossless (FFV1) 360p input of the validation images' pan."""
    return write_lr_clip(hr_frames(val_dir, seconds), path)


def clip_psnr(path: Path, val_dir: Path, seconds: float) -> float:
    values = []
    with av.open(str(path)) as c:
        for frame, rgb in zip(c.decode(video=0), hr_frames(val_dir, seconds)):
            y = frame.to_ndarray()[: frame.height].astype(np.float32) / 255
            values.append(psnr(y, rgb_to_luma(rgb), 2))
    return float(np.mean(values))


def vidsr(args: list, stats: Path) -> list[dict]:
    cmd = [sys.executable, "-m", "vidsr", *map(str, args), "-y", "--quiet", "--stats", str(stats), *ENCODE]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip()[-400:]}")
    return [json.loads(line) for line in stats.read_text().splitlines()]


def steady_fps(records: list[dict]) -> float:
    first = int(len(records) * WARMUP)
    t = [r["t"] for r in records]
    return (len(t) - 1 - first) / (t[-1] - t[first])


def summarise(target: float, runs: list[dict]) -> dict:
    """One target's row from its ``runs`` (each: fps, mean_budget, psnr_y): means, and the spread
    of PSNR-Y over the runs (the routes a run settles on depend on its measured prices, so single
    runs at the same target differ by a few tenths of a dB)."""
    fps = float(np.mean([r["fps"] for r in runs]))
    psnrs = [r["psnr_y"] for r in runs]
    return {"target": target, "fps": fps, "error": fps / target - 1,
            "mean_budget": float(np.mean([r["mean_budget"] for r in runs])), "psnr_y": float(np.mean(psnrs)),
            "psnr_y_runs": psnrs, "psnr_y_spread": max(psnrs) - min(psnrs),
            "models": sorted(set().union(*(r.get("models", ()) for r in runs)))}  # what ran after start-up


def run(val_dir: Path | None, targets: list[float] | None, seconds: float = 6.0, model: str | None = None,
        repeats: int = 1) -> dict:
    val_dir = Path(val_dir or default_folder("val"))
    res = {"clip": f"{HR[0] // 2}x{HR[1] // 2} -> {HR[0]}x{HR[1]}, {seconds:g} s at {FPS} fps", "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lr = make_lr_clip(val_dir, tmp / "lr.mkv", seconds)
        short = make_lr_clip(val_dir, tmp / "short.mkv", 1.0)
        # no --model: targets run as users run them, on what `vidsr --fps-target` picks (the best-routing
        # model for x2, or a dearer one when the target leaves it time over); the full-network row is
        # the picked model's
        target_args = [] if model is None else ["--model", model]
        if model is None:
            model = registry.best_routed(2)
            if model is None:
                raise RuntimeError("no routed (ARM or PCSR) model ships for x2; give --model")
        res["model"] = model
        model_args = ["--model", model]
        lanczos = vidsr([lr, "-o", tmp / "lanczos.mp4", "--model", "lanczos"], tmp / "l.jsonl")
        res["lanczos"] = {"fps": steady_fps(lanczos), "psnr_y": clip_psnr(tmp / "lanczos.mp4", val_dir, seconds)}
        full = vidsr([short, "-o", tmp / "full.mp4", "--router", "none", *model_args], tmp / "f.jsonl")
        res["full"] = {"fps": steady_fps(full), "psnr_y": clip_psnr(tmp / "full.mp4", val_dir, 1.0),
                       "note": "first 1 s of the clip"}
        if not targets:
            lo, hi = res["full"]["fps"] * 1.3, res["lanczos"]["fps"] * 0.8
            targets = sorted({round(float(v), 1) for v in np.geomspace(lo, hi, 5)} | ({30.0} if lo < 30 < hi else set()))
        res["repeats"] = repeats
        for target in targets:
            runs = []
            for _ in range(repeats):
                out = tmp / f"t{target}.mp4"
                recs = vidsr([lr, "-o", out, "--fps-target", target, *target_args], tmp / f"t{target}.jsonl")
                steady = recs[int(len(recs) * WARMUP):]
                runs.append({"fps": steady_fps(recs),
                             "mean_budget": float(np.mean([r.get("budget", 0.0) for r in steady])),
                             "psnr_y": clip_psnr(out, val_dir, seconds),
                             "models": sorted({r["model"] for r in steady if "model" in r})})
            res["runs"].append(summarise(target, runs))
    for r in res["runs"]:
        r["gain_over_lanczos_db"] = r["psnr_y"] - res["lanczos"]["psnr_y"]
    return res


def report(res: dict) -> str:
    lz, full = res["lanczos"], res["full"]
    repeats = res.get("repeats", 1)
    spread = repeats > 1
    no_spread = " - |" if spread else ""  # the spread column's cell in rows that were run once
    out = [f"Clip: {res['clip']} (validation images, lossless input, x264 crf 12 veryfast output); "
           f"model `{res['model']}`" + (f"; each target run {repeats} times, means shown" if spread else "") + ".\n",
           "| run | target fps | steady fps | off target | mean budget | PSNR-Y (dB) | vs Lanczos (dB) |"
           + (" PSNR-Y spread over runs (dB) |" if spread else ""),
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if spread else ""),
           f"| Lanczos (swscale) | - | {lz['fps']:.1f} | - | 0 | {lz['psnr_y']:.3f} | 0 |" + no_spread,
           f"| full network, no router ({full['note']}) | - | {full['fps']:.2f} | - | 1 | {full['psnr_y']:.3f} | "
           f"{full['psnr_y'] - lz['psnr_y']:+.3f} |" + no_spread]
    for r in res["runs"]:
        ran = r.get("models") or [res["model"]]
        label = f"--fps-target {r['target']:g}" + ("" if ran == [res["model"]] else f" (ran {', '.join(ran)})")
        out.append(f"| {label} | {r['target']:g} | {r['fps']:.2f} | {r['error']:+.1%} | "
                   f"{r['mean_budget']:.3f} | {r['psnr_y']:.3f} | {r['gain_over_lanczos_db']:+.3f} |"
                   + (f" {r['psnr_y_spread']:.3f} |" if spread else ""))
    return "\n".join(out)
