"""How fast could a router's 0.05 dB point run on this machine? A floor under its wall time.

The routing criterion asks for wall-time savings within 0.1 of MAC savings at the point where a router comes
within 0.05 dB of the full network: a time ratio of at most (MACs ratio + 0.1). This measures, at a
given budget, the router's real ratios (paired with the full network, as ``vidsr bench routing``
times them) and a floor that no implementation of the same model and method could beat on this
machine, because it charges only work the method must do, each piece at the speed it runs in the
full network's own frame-sized pass:

- ARM: the executed MACs (tile context included: a tile beside another route cannot share its
  window) at the full network's time per MAC. Narrower widths and smaller windows are slower per
  MAC on a CPU, so this is below what any tiled router reaches.
- PCSR: the backbone on every routed pixel, the classifier on every routed pixel, and each
  upsampler on its share of pixels, each timed dense over the full pass's own windows (no gathers,
  no selection, no refinement, no scatter: those cost time in the real router and are charged
  nothing here).

Where the floor is above (MACs ratio + 0.1), the criterion cannot be met with that model on this
machine, whatever the code around the networks does.

    python benchmarks/time_floor.py                      # the three 0.05 dB points of BENCHMARKS.md
    python benchmarks/time_floor.py --point pcsr-wdsr 4 0.575 --repeats 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vidsr.bench.routing import measure
from vidsr.budget import FULL_NETWORK, MacBudget
from vidsr.engine import Engine
from vidsr.executor import UNROUTED_REGION_SIDE
from vidsr.models import registry
from vidsr.routing import build_router
from vidsr.runtime import tune_allocator
from vidsr.train.data import default_folder, load_pairs

# (model, scale, budget): each router's 0.05 dB point in the routing benchmark
POINTS = (("arm-plain-wide", 4, 0.675), ("pcsr-wdsr", 4, 0.562), ("arm-plain-wide", 2, 0.75))
ALLOWANCE = 0.1  # the criterion: time savings within 0.1 of MAC savings


@torch.inference_mode()
def pcsr_dense_ratios(engine: Engine, pairs, repeats: int) -> dict[str, float]:
    """Each PCSR part run dense on the full pass's windows, as a fraction of the full pass. Each
    repeat times the full pass and then every part, and the ratios' median is kept: this VM's
    speed drifts by 10-30% over a minute, which separate best-of timings measured as much as the
    parts."""
    m, s = engine.upscaler.module, engine.scale
    windows = []
    for p in pairs:
        x = p.lr[None, None]
        grid = engine.grid(*x.shape[-2:], engine.unrouted_tile)
        for batch in engine.executor.region_batches(grid, range(len(grid)), UNROUTED_REGION_SIDE):
            windows.append(grid.extract_regions(x, batch))
    with engine.threads.network():
        feats = [m.backbone(w) for w in windows]
    parts = {"backbone": lambda: [m.backbone(w) for w in windows],
             "classifier": lambda: [m.heavy_score(f) for f in feats]}  # what the budget mode classifies with
    for name, up in zip(m.route_names, m.upsamplers):
        parts[name] = lambda up=up: [up.dense(f, s) for f in feats]
    ratios = {name: [] for name in parts}
    for _ in range(repeats):
        full = _seconds(lambda: [engine.upscale(p.lr[None, None]) for p in pairs])
        with engine.threads.network():
            for name, fn in parts.items():
                ratios[name].append(_seconds(fn) / full)
    return {name: float(np.median(r)) for name, r in ratios.items()}


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def point(name: str, scale: int, budget: float, pairs, repeats: int) -> dict:
    up = registry.load(name, scale)
    full, routed = Engine(up), Engine(up, router=build_router(up))
    measure(full, pairs, scale, FULL_NETWORK, 1)  # warm-up, as the routing bench does
    base = measure(full, pairs, scale, FULL_NETWORK, repeats)
    res = measure(routed, pairs, scale, MacBudget(budget), repeats, paired=full)
    row = {"model": name, "scale": scale, "budget": budget, "delta_db": res["psnr_y"] - base["psnr_y"],
           "macs": res["macs"] / base["macs"], "executed": res["executed_macs"] / base["executed_macs"],
           "time": res["seconds"] / res["paired_seconds"]}
    if up.descriptor.router == "arm":
        row["floor"] = row["executed"]
        row["floor_parts"] = "executed MACs at the full pass's time per MAC"
    else:
        parts = pcsr_dense_ratios(full, pairs, max(repeats, 5))
        shares = _pixel_shares(routed, pairs, budget)
        routed_share = 1.0 - shares.get("bicubic", 0.0)  # tiles left to interpolation run no network
        row["floor"] = (parts["backbone"] + parts["classifier"]) * routed_share + \
            sum(parts[r] * shares[r] for r in up.module.route_names)
        row["floor_parts"] = ", ".join(f"{k} {v:.2f}" for k, v in parts.items()) + " of the full pass; shares " + \
            ", ".join(f"{k} {v:.2f}" for k, v in shares.items())
    row["allowed"] = row["macs"] + ALLOWANCE
    return row


def _pixel_shares(engine: Engine, pairs, budget) -> dict[str, float]:
    """Share of all output pixels each route got at ``budget``, over the images."""
    engine.router.reset()
    total, counts = 0, {}
    for p in pairs:
        _, stats = engine.upscale(p.lr[None, None], MacBudget(budget))
        px = p.hr.numel()
        total += px
        for k, v in stats.route_shares.items():
            counts[k] = counts.get(k, 0.0) + v * px
    return {k: v / total for k, v in counts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--point", nargs=3, action="append", metavar=("MODEL", "SCALE", "BUDGET"),
                    help="a routed model, its scale and a budget (repeatable; default: the three points in POINTS)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    tune_allocator()  # as the CLI runs; without it the full networks run slower and every ratio is flattered
    points = [(m, int(s), float(b)) for m, s, b in args.point] if args.point else POINTS
    pairs_by_scale: dict[int, list] = {}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; val: {default_folder('val')}")
    print("| model | budget | vs full (dB) | MACs | executed | time | allowed (MACs + 0.1) | floor | floor made of |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, scale, budget in points:
        pairs = pairs_by_scale.setdefault(scale, load_pairs(default_folder("val"), scale))
        r = point(name, scale, budget, pairs, args.repeats)
        print(f"| {r['model']} x{r['scale']} | {r['budget']} | {r['delta_db']:+.3f} | {r['macs']:.3f} | {r['executed']:.3f} "
              f"| {r['time']:.3f} | {r['allowed']:.3f} | **{r['floor']:.3f}** | {r['floor_parts']} |", flush=True)


if __name__ == "__main__":
    main()
