"""What a routed plan near one width's cost really costs: is leaving a few tiles to interpolation
cheaper than running the width on every tile?

Near a width's own frame rate, a target that has to give a little takes a routed plan: the width on
most tiles, interpolation on the rest. This times, on one 640x360 validation frame, the width on
every tile in the large windows of an unrouted pass, and routed plans with the width on the
edgiest share of the tiles (what the router would keep) or on all but bands of whole rows or
columns. It prints each plan's time against the width everywhere, and per share of tiles kept.

    python benchmarks/studies/routed_plan_cost.py --model arm-plain --route w16
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vidsr.policy import load_engine
from vidsr.routing.edge import tile_edge_scores
from vidsr.routing.protocol import TilePlan, uniform_unit
from vidsr.runtime import tune_allocator
from vidsr.train.data import default_folder, load_pairs


def frame(height: int = 360, width: int = 640) -> torch.Tensor:
    """The centre of the first validation image large enough, as (1, 1, H, W) luma in [0, 1]."""
    for pair in load_pairs(default_folder("val"), 1):
        h, w = pair.hr.shape
        if h >= height and w >= width:
            y, x = (h - height) // 2, (w - width) // 2
            return pair.hr[y : y + height, x : x + width][None, None].contiguous()
    raise SystemExit(f"no validation image is {width}x{height} or larger")


@torch.inference_mode()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="arm-plain")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--route", default="w16", help="the width the plans run (default: w16)")
    ap.add_argument("--repeats", type=int, default=9, help="passes per plan, interleaved; the median is shown")
    args = ap.parse_args()
    tune_allocator()
    engine = load_engine(args.model, args.scale)
    x = engine.to_unit(np.round(frame()[0, 0].numpy() * 255).astype(np.uint8), 8, False)
    grid, unrouted = engine.grid(*x.shape[-2:]), engine.grid(*x.shape[-2:], engine.unrouted_tile)
    names = [r.name for r in engine.descriptor.routes]
    route = names.index(args.route)
    base = torch.zeros(1, 1, x.shape[-2] * args.scale, x.shape[-1] * args.scale)
    rows, cols = grid.shape
    edgiest = np.argsort(tile_edge_scores(x, grid).flatten().cpu().numpy())[::-1]

    def on(tiles) -> TilePlan:
        routes = np.zeros(len(grid), dtype=np.int64)
        routes[np.asarray(tiles, dtype=np.int64)] = route
        return TilePlan(routes, None)

    def all_but(rows_out=(), cols_out=()) -> TilePlan:
        keep = np.ones((rows, cols), dtype=bool)
        keep[list(rows_out), :] = False
        keep[:, list(cols_out)] = False
        return on(np.nonzero(keep.ravel())[0])

    plans = {f"{args.route} everywhere (unrouted pass)": (TilePlan.uniform(route, len(unrouted), None, uniform_unit(args.route)), unrouted)}
    for share in (1.0, 0.9, 0.8, 0.6):
        plans[f"routed: {args.route} on the edgiest {share:.0%} of tiles"] = (on(edgiest[: round(share * len(grid))]), grid)
    plans["routed: all but the last row of tiles"] = (all_but(rows_out=[rows - 1]), grid)
    plans["routed: all but the last column of tiles"] = (all_but(cols_out=[cols - 1]), grid)
    plans["routed: all but the last two rows"] = (all_but(rows_out=[rows - 2, rows - 1]), grid)
    times = {name: [] for name in plans}
    for _ in range(args.repeats):  # interleaved: the machine's drift falls on every plan alike
        for name, (plan, g) in plans.items():
            t0 = time.perf_counter()
            engine.executor.run(plan, x, g, base, True)
            times[name].append(time.perf_counter() - t0)
    print(f"{engine.descriptor.name} x{args.scale}, 640x360 frame, {len(grid)} tiles of {grid.tile} px, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"| plan | tiles on {args.route} | ms | vs {args.route} everywhere | per share of tiles |")
    print("| --- | ---: | ---: | ---: | ---: |")
    reference = float(np.median(next(iter(times.values()))))
    for name, (plan, _) in plans.items():
        ms = float(np.median(times[name]))
        share = float((plan.routes == route).mean())
        print(f"| {name} | {share:.0%} | {ms * 1000:.1f} | {ms / reference:.2f} | {ms / reference / share:.2f} |")


if __name__ == "__main__":
    main()
