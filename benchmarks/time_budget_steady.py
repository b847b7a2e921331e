"""Quality a routed model buys for a fixed network time per frame, priced as ``--fps-target`` prices it.

Every frame of the fps benchmark's 360p clip (``vidsr bench fps``: a pan over the validation
images) gets the same budget of B milliseconds of network, priced by the ``FpsController`` itself
(calibrated warm on the first frame, then recalibrated from what each frame bought), on the
engine's float path with all of torch's threads. No encoder, no decoder thread, no frame-rate
loop: what is left is how well the router's prices and the engine's execution turn milliseconds
into PSNR, which is what a change to either should move. Run to run the routes a run settles on
vary (the prices are measured), so compare means over ``--repeats``.

    python benchmarks/time_budget_steady.py --budgets 30 60 90 --repeats 3
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import av
import numpy as np
import torch

from vidsr.bench.fps import hr_frames, make_lr_clip
from vidsr.controller import FpsController
from vidsr.engine import Engine, TimeBudget
from vidsr.metrics import psnr, rgb_to_luma
from vidsr.models import registry
from vidsr.routing import build_router
from vidsr.runtime import tune_allocator
from vidsr.train.data import default_folder, quantize8

WARMUP_FRAMES = 10  # frames left out of the means: the prices settle


def steady(engine: Engine, planes, truth, budget_ms: float) -> dict:
    engine.router.reset()
    x0 = engine.to_unit(planes[0], 8, False)
    controller = FpsController(10.0, engine.router.unit_macs(engine.grid(*planes[0].shape)))
    with engine.light_threads(), engine.frame_threads(None):  # as the pipeline calibrates
        controller.seed(engine.router.calibrate(engine, x0))
    values, network = [], []
    for i, (plane, hr) in enumerate(zip(planes, truth)):
        out, stats = engine.upscale(engine.to_unit(plane, 8, False), TimeBudget(ms=budget_ms, unit_ms=controller.prices()))
        controller.observe(stats)
        if i >= WARMUP_FRAMES:
            values.append(psnr(quantize8(out[0, 0]), torch.from_numpy(hr), 2))
            network.append(sum(stats.ms.get(u, 0.0) for u in stats.work))
    return {"psnr_y": float(np.mean(values)), "network_ms": float(np.mean(network))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="arm-plain")
    ap.add_argument("--budgets", type=float, nargs="+", default=[30.0, 60.0, 90.0], help="network ms per frame")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--frames", type=int, default=60, help="frames used (every other one of the 4 s clip)")
    ap.add_argument("--val-dir", type=Path, default=None)
    ap.add_argument("--tile", type=int, nargs="+", default=[None], metavar="PX",
                    help="router tile sides to compare (default: the engine's)")
    args = ap.parse_args()
    tune_allocator()
    val_dir = Path(args.val_dir or default_folder("val"))
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_lr_clip(val_dir, Path(tmp) / "lr.mkv", 4.0)
        with av.open(str(clip)) as c:
            planes = [f.to_ndarray()[: f.height].copy() for f in c.decode(video=0)]
    truth = [rgb_to_luma(rgb) for rgb in hr_frames(val_dir, 4.0)]
    step = max(1, len(planes) // args.frames)
    planes, truth = planes[::step][: args.frames], truth[::step][: args.frames]
    up = registry.load(args.model, 2)
    engines = [Engine(up, router=build_router(up), tile=t) for t in args.tile]
    print(f"{args.model} x2, {len(planes)} frames of 640x360, torch {torch.__version__}, {torch.get_num_threads()} threads")
    for b in args.budgets:
        for engine in engines:  # tile sizes interleaved per budget, so the machine's drift hits them alike
            runs = [steady(engine, planes, truth, b) for _ in range(args.repeats)]
            ps = [r["psnr_y"] for r in runs]
            print(f"budget {b:g} ms, {engine.tile}-px tiles: PSNR-Y {np.mean(ps):.3f} dB (runs {', '.join(f'{p:.3f}' for p in ps)}), "
                  f"network {np.mean([r['network_ms'] for r in runs]):.1f} ms a frame", flush=True)


if __name__ == "__main__":
    main()
