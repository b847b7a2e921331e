"""``vidsr bench routing``: quality against measured cost for the ARM and PCSR routers.

For each routed model shipped at each scale, on the validation images:
- the full network run the fastest way we have (no router, large merged tiles): PSNR-Y, executed
  MACs and wall time; these are the 1.0 of every ratio;
- every fixed route (each subnet width / upsampler everywhere);
- the router over a sweep of budgets: PSNR-Y, the MACs it chose (each output pixel counted once),
  the MACs it executed (tile context included) and its wall time, all as ratios to the full run;
- the smallest budget at which the router comes within 0.05 dB of the full network, refined by
  bisection between the sweep's bracketing points.
Wall times are the best of ``repeats`` passes over all images.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from ..engine import Engine
from ..metrics import psnr
from ..models import registry
from ..routing import build_router
from ..train.data import default_folder, load_pairs, quantize8

SWEEP = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
WITHIN_DB = 0.05


def measure(engine: Engine, pairs, scale: int, budget, repeats: int) -> dict:
    best, ps, macs, executed = float("inf"), [], [], []
    for rep in range(repeats):
        if engine.router is not None:
            engine.router.reset()
        t0 = time.perf_counter()
        outs = []
        for p in pairs:
            out, stats = engine.upscale(p.lr[None, None], budget)
            outs.append((out, stats))
        best = min(best, time.perf_counter() - t0)
    for p, (out, stats) in zip(pairs, outs):
        ps.append(psnr(quantize8(out[0, 0]), p.hr, scale))
        px = p.hr.numel()
        macs.append(stats.macs_per_pixel * px)
        executed.append(stats.executed_macs_per_pixel * px)
    total_px = sum(p.hr.numel() for p in pairs)
    return {"psnr_y": sum(ps) / len(ps), "macs": sum(macs) / total_px, "executed_macs": sum(executed) / total_px,
            "seconds": best}


def run(val_dir: Path | None, scales: list[int], repeats: int = 2) -> dict:
    torch.set_grad_enabled(False)
    val_dir = Path(val_dir or default_folder("val"))
    res = {"val_dir": str(val_dir), "models": []}
    for scale in scales:
        pairs = load_pairs(val_dir, scale)
        for entry in registry.shipped_models():
            if entry["scale"] != scale or registry.architecture(entry["architecture"]).router is None:
                continue
            up = registry.load(entry["name"], scale)
            d = up.descriptor
            baseline = Engine(up)
            # untimed pass first: the first model timed in a block ran up to 20% slow (allocator and
            # oneDNN warm-up that best-of-2 did not remove), which flattered every ratio to it
            measure(baseline, pairs, scale, 1.0, 1)
            full = measure(baseline, pairs, scale, 1.0, repeats)
            block = {"model": d.name, "scale": scale, "router": d.router, "full": full, "fixed": [], "sweep": []}

            def ratios(m):
                return {**m, "macs_ratio": m["macs"] / full["macs"], "executed_ratio": m["executed_macs"] / full["executed_macs"],
                        "time_ratio": m["seconds"] / full["seconds"], "delta_db": m["psnr_y"] - full["psnr_y"]}

            for r in d.routes[:-1]:
                fixed = _fixed_route(up, r.name, pairs, scale, repeats)
                block["fixed"].append({"route": r.name, **ratios(fixed)})
            router_engine = Engine(up, router=build_router(up))
            points = {}
            for b in SWEEP:
                points[b] = ratios(measure(router_engine, pairs, scale, b, repeats))
            ok = [b for b in SWEEP if points[b]["delta_db"] >= -WITHIN_DB]
            lo_candidates = [b for b in SWEEP if b < min(ok)]
            if ok and lo_candidates:  # bisect between the last budget that falls short and the first that holds
                lo, hi = max(lo_candidates), min(ok)
                for _ in range(3):
                    mid = (lo + hi) / 2
                    points[mid] = ratios(measure(router_engine, pairs, scale, mid, repeats))
                    lo, hi = (lo, mid) if points[mid]["delta_db"] >= -WITHIN_DB else (mid, hi)
            block["sweep"] = [{"budget": b, **points[b]} for b in sorted(points)]
            hold = [p for p in block["sweep"] if p["delta_db"] >= -WITHIN_DB]
            block["within_0_05_db"] = min(hold, key=lambda p: p["budget"]) if hold else None
            res["models"].append(block)
    return res


def _fixed_route(up, route: str, pairs, scale: int, repeats: int) -> dict:
    """One route on every pixel: through the engine with a single-route view of the model."""
    from ..models.base import Upscaler

    class OneRoute(torch.nn.Module):
        def __init__(self, module, route):
            super().__init__()
            self.module, self.route = module, route

        def forward(self, x, route=None):
            return self.module(x, self.route)

    d = up.descriptor
    view = Upscaler(dataclasses.replace(d, routes=(d.route(route),), router=None), OneRoute(up.module, route))
    return measure(Engine(view), pairs, scale, 1.0, repeats)


def report(res: dict) -> str:
    out = [f"Validation images: `{res['val_dir']}`. Ratios are to the full network run in the same pass "
           "(no router, large merged tiles). MACs: each output pixel counted once; executed: what really ran, "
           "tile context included.\n"]
    for b in res["models"]:
        f = b["full"]
        out.append(f"**{b['model']} x{b['scale']}** ({b['router'].upper()} router). Full network: "
                   f"{f['psnr_y']:.3f} dB, {f['macs']:,.0f} MACs/px, {f['seconds']:.2f} s for all images.\n")
        out.append("| run | budget | PSNR-Y (dB) | vs full (dB) | MACs ratio | executed MACs ratio | time ratio |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for p in b["fixed"]:
            out.append(f"| route {p['route']} everywhere | - | {p['psnr_y']:.3f} | {p['delta_db']:+.3f} | "
                       f"{p['macs_ratio']:.3f} | {p['executed_ratio']:.3f} | {p['time_ratio']:.3f} |")
        for p in b["sweep"]:
            out.append(f"| router | {p['budget']:.3f} | {p['psnr_y']:.3f} | {p['delta_db']:+.3f} | "
                       f"{p['macs_ratio']:.3f} | {p['executed_ratio']:.3f} | {p['time_ratio']:.3f} |")
        w = b["within_0_05_db"]
        if w:
            out.append(f"\nWithin {WITHIN_DB} dB of the full network at budget {w['budget']:.3f}: "
                       f"**{w['macs_ratio']:.2f}x the MACs** ({w['executed_ratio']:.2f}x executed), "
                       f"**{w['time_ratio']:.2f}x the wall time**.\n")
        else:
            out.append(f"\nThe router does not come within {WITHIN_DB} dB of the full network below budget 1.\n")
    return "\n".join(out)
