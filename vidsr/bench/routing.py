"""``vidsr bench routing``: quality against measured cost for the ARM and PCSR routers.

For each routed model shipped at each scale, on the validation images:
- the full network run the fastest way we have (no router, large merged tiles): PSNR-Y, executed
  MACs and wall time; these are the 1.0 of every ratio;
- every fixed route (each subnet width / upsampler everywhere);
- the router over a sweep of budgets: PSNR-Y, the MACs it chose (each output pixel counted once),
  the MACs it executed (tile context included) and its wall time, all as ratios to the full run;
- the smallest measured budget at which the router comes within 0.05 dB of the full network, the
  bracket below the first sweep budget that does scanned in ``FINE_STEPS`` steps;
- for ARM, the same for an oracle that routes each tile knowing the ground truth (the fixed routes'
  real per-tile errors, same tiles, same solver): the best any edge-score predictor could do with
  these subnets. The gap between the router and the oracle is the predictor's; the gap between the
  oracle and the papers' 0.43-0.6 is the subnets'.
Wall times are the best of ``repeats`` passes over all images; every time ratio is to the full
network timed just before each of those passes (``measure(paired=...)``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..budget import FULL_NETWORK, MacBudget
from ..engine import Engine
from ..metrics import psnr
from ..errors import SettingsError
from ..models import registry, weights
from ..routing import build_router
from ..routing.solver import solve
from ..tiling import TileGrid
from ..train.data import default_folder, load_pairs, quantize8, shown

SWEEP = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
FINE_STEPS = 8  # the bracket around the first sweep budget within 0.05 dB is scanned in this many steps
WITHIN_DB = 0.05


def _timed_pass(engine: Engine, pairs, budget) -> tuple[float, list]:
    """``budget``: a ``MacBudget``, or a route name to run on every tile."""
    if engine.router is not None:
        engine.router.reset()
    t0 = time.perf_counter()
    if isinstance(budget, str):
        outs = [engine.upscale_uniform(p.lr[None, None], budget) for p in pairs]
    else:
        outs = [engine.upscale(p.lr[None, None], budget) for p in pairs]
    return time.perf_counter() - t0, outs


def measure(engine: Engine, pairs, scale: int, budget, repeats: int, outputs: list | None = None,
            paired: Engine | None = None) -> dict:
    """PSNR-Y, MACs and best wall time of ``engine`` over ``pairs``; ``outputs`` (a list) receives
    each image's 8-bit-rounded output. ``paired``: the baseline engine, timed at full budget just
    before each pass (best of ``repeats`` too, as ``paired_seconds``): this machine's speed drifts by
    up to 30% over the minutes a sweep takes, so a ratio to a baseline timed once at the start
    measured the drift as much as the router."""
    best, paired_best, ps, macs, executed = float("inf"), float("inf"), [], [], []
    for _ in range(repeats):
        if paired is not None:
            paired_best = min(paired_best, _timed_pass(paired, pairs, FULL_NETWORK)[0])
        seconds, outs = _timed_pass(engine, pairs, budget)
        best = min(best, seconds)
    for p, (out, stats) in zip(pairs, outs):
        out = quantize8(out[0, 0])
        if outputs is not None:
            outputs.append(out)
        ps.append(psnr(out, p.hr, scale))
        px = p.hr.numel()
        macs.append(stats.macs_per_pixel * px)
        executed.append(stats.executed_macs_per_pixel * px)
    total_px = sum(p.hr.numel() for p in pairs)
    res = {"psnr_y": sum(ps) / len(ps), "macs": sum(macs) / total_px, "executed_macs": sum(executed) / total_px,
           "seconds": best}
    if paired is not None:
        res["paired_seconds"] = paired_best
    return res


def _routed_models(scale: int, models: list[str] | None) -> list[str]:
    """Names (or weights paths) of the routed models to measure at ``scale``: every shipped one, or
    those of ``models`` (shipped names, or .safetensors paths with their manifest beside them, e.g. a
    run's export before it is published) whose weights are for this scale."""
    def entries(name):
        if name.endswith(".safetensors"):
            path = Path(name)
            return [e for e in weights.read_manifest(path.parent) if e["file"] == path.name]
        return [e for e in registry.shipped_models() if e["name"] == name]

    if models is None:
        models = sorted({e["name"] for e in registry.general_models()})  # a delivery model only when named
    return [name for name in models
            if any(e["scale"] == scale and registry.architecture(e["architecture"]).router for e in entries(name))]


@torch.no_grad()  # not set_grad_enabled(False): an in-process caller (tests, a notebook) keeps its autograd
def run(val_dir: Path | None, scales: list[int], repeats: int = 2, models: list[str] | None = None,
        tile: int | None = None) -> dict:
    """``tile``: the routers' tile side (None: the engine's default per router family)."""
    val_dir = Path(val_dir or default_folder("val"))
    res = {"val_dir": shown(val_dir), "repeats": repeats, "models": []}
    picked = {scale: _routed_models(scale, models) for scale in scales}
    missing = sorted(set(models or ()) - {name for names in picked.values() for name in names})
    if missing:
        raise SettingsError(f"no routed model {', '.join(missing)} at scale {', '.join(map(str, scales))} "
                            "(shipped names or .safetensors exports; vidsr --list-models)")
    for scale in scales:
        pairs = load_pairs(val_dir, scale)
        for name in picked[scale]:
            up = registry.load(name, scale)
            d = up.descriptor
            baseline = Engine(up)
            # an untimed pass first: the first model timed in a block runs slow (allocator and oneDNN
            # warm-up), which would flatter every ratio to it
            measure(baseline, pairs, scale, FULL_NETWORK, 1)
            full_outputs = []
            full = measure(baseline, pairs, scale, FULL_NETWORK, repeats, full_outputs)
            block = {"model": d.name, "scale": scale, "router": d.router, "full": full, "fixed": [], "sweep": []}

            def ratios(m):
                return {**m, "macs_ratio": m["macs"] / full["macs"], "executed_ratio": m["executed_macs"] / full["executed_macs"],
                        "time_ratio": m["seconds"] / m.get("paired_seconds", full["seconds"]), "delta_db": m["psnr_y"] - full["psnr_y"]}

            route_outputs = []
            for r in d.routes[:-1]:
                route_outputs.append([])
                fixed = measure(baseline, pairs, scale, r.name, repeats, route_outputs[-1], baseline)
                block["fixed"].append({"route": r.name, **ratios(fixed)})
            route_outputs.append(full_outputs)
            router_engine = Engine(up, router=build_router(up), tile=tile)
            block["tile"] = router_engine.tile
            if d.router == "arm":
                block["oracle"] = _oracle_block(route_outputs, pairs, [r.macs_per_pixel for r in d.routes],
                                                scale, router_engine.tile, full["psnr_y"])
            points = {}
            for b in SWEEP:
                points[b] = ratios(measure(router_engine, pairs, scale, MacBudget(b), repeats, paired=baseline))
            first = min(b for b in SWEEP if points[b]["delta_db"] >= -WITHIN_DB)  # budget 1 always holds
            below = [b for b in SWEEP if b < first]
            if below:  # scan between the last sweep budget below it and it (PSNR need not be monotone
                # in the budget this close to the threshold, so a bisection could step past a budget that holds)
                lo = max(below)
                for k in range(1, FINE_STEPS):
                    b = round(lo + k * (first - lo) / FINE_STEPS, 4)
                    points[b] = ratios(measure(router_engine, pairs, scale, MacBudget(b), repeats, paired=baseline))
            block["sweep"] = [{"budget": b, **points[b]} for b in sorted(points)]
            hold = [p for p in block["sweep"] if p["delta_db"] >= -WITHIN_DB]
            block["within_0_05_db"] = min(hold, key=lambda p: p["budget"]) if hold else None
            res["models"].append(block)
    return res


def oracle_tiles(route_outputs, pairs, tile: int, scale: int) -> list[tuple]:
    """Per image, what the oracle routes from, whatever the budget: the routes' outputs stacked
    (R, H, W), their mean squared error per tile of the router's grid for ``tile`` (R, tiles), each
    tile's pixel count (the last row and column of cores may be shorter), and the grid.
    ``route_outputs[r][i]``: route r's 8-bit output of image i."""
    prepared = []
    for i, p in enumerate(pairs):
        outs = torch.stack([r[i] for r in route_outputs])
        grid = TileGrid(*p.lr.shape, tile, 0)  # the cores the router's grid has (context moves no core)
        mse = grid.tile_means((outs.double() - p.hr.double())[:, None] ** 2, scale)
        tile_px = grid.core_pixels * scale**2
        prepared.append((outs, mse.flatten(1).numpy(), tile_px, grid))
    return prepared


def routes_at_share(macs: np.ndarray, pixels: np.ndarray, predicted_mse: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
    """(route per tile, the costs (routes, tiles)): the budgeted solver's choice from
    ``predicted_mse`` (routes, tiles) for tiles of ``pixels`` HR pixels, under a MAC budget of
    ``share`` (the share between interpolation everywhere and the full network everywhere, as
    ``MacBudget`` counts it), no tile context priced: what the benchmarks' oracles compare."""
    costs = macs[:, None] * pixels[None, :]
    total = MacBudget(share).allowance(costs[0].sum(), costs[-1].sum())
    return solve(costs, -predicted_mse * pixels[None, :], total), costs


def oracle_psnr(tiles, pairs, macs, scale: int, budget: float,
                predicted_mse: list | None = None) -> tuple[float, float]:
    """(mean PSNR-Y, MACs per pixel) when every tile takes the route that the budgeted solver picks
    from its *true* error (``oracle_tiles``), or from ``predicted_mse`` (per image, (routes, tiles))
    when given: quality is read off the real route outputs either way."""
    macs = np.asarray(macs, dtype=np.float64)
    ps, spent, pixels = [], 0.0, 0
    for i, ((outs, mse, tile_px, grid), p) in enumerate(zip(tiles, pairs)):
        if predicted_mse is not None:
            mse = predicted_mse[i]
        routes, costs = routes_at_share(macs, tile_px, mse, budget)
        pick = torch.from_numpy(grid.core_mask(routes, scale))
        ps.append(psnr(torch.gather(outs, 0, pick[None]).squeeze(0), p.hr, scale))
        spent += float(costs[routes, np.arange(len(routes))].sum())
        pixels += p.hr.numel()
    return sum(ps) / len(ps), spent / pixels


def _oracle_block(route_outputs, pairs, macs, scale: int, tile: int, full_psnr: float) -> dict:
    """The oracle's smallest budget within ``WITHIN_DB`` of the full network (bisection; it runs
    no network, so it can be bisected finely) and its sweep."""
    tiles = oracle_tiles(route_outputs, pairs, tile, scale)

    def point(b):
        p, m = oracle_psnr(tiles, pairs, macs, scale, b)
        return {"budget": b, "psnr_y": p, "delta_db": p - full_psnr, "macs_ratio": m / macs[-1]}

    lo, hi = 0.0, 1.0
    for _ in range(10):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if point(mid)["delta_db"] >= -WITHIN_DB else (mid, hi)
    return {"tile": tile, "sweep": [point(b) for b in SWEEP], "within_0_05_db": point(hi)}


def report(res: dict) -> str:
    n = res.get("repeats", 2)
    out = [f"Validation images: `{res['val_dir']}`. Ratios are to the full network run in the same pass "
           "(no router, large merged tiles). MACs: each output pixel counted once; executed: what really ran, "
           f"tile context included. Time: each row's best of {n} pass{'es' if n != 1 else ''} over the full network's "
           "best of passes timed just before each of them (paired, so the machine's drift cancels).\n"]
    for b in res["models"]:
        f = b["full"]
        out.append(f"**{b['model']} x{b['scale']}** ({b['router'].upper()} router). Full network: "
                   f"{f['psnr_y']:.3f} dB, {f['macs']:,.0f} MACs/px, {f['seconds']:.2f} s for all images. "
                   f"Router tiles: {b['tile']} px.\n")
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
        if b.get("oracle"):
            o = b["oracle"]["within_0_05_db"]
            out.append(f"Oracle routing (each {b['oracle']['tile']}-px tile's route chosen from its true error, same "
                       f"solver): within {WITHIN_DB} dB at **{o['macs_ratio']:.2f}x the MACs**; at budgets "
                       + ", ".join(f"{p['budget']:g}: {p['delta_db']:+.2f} dB" for p in b["oracle"]["sweep"]
                                   if p["budget"] in (0.2, 0.4, 0.6, 0.8)) + ".\n")
    return "\n".join(out)
