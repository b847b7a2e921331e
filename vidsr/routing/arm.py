"""ARM router: one route per tile (interpolation or a subnet width), chosen from predicted PSNR.

Per frame: edge score of every tile (vectorised on the frame's device) -> predicted PSNR per route
from the Edge-to-PSNR table -> the budgeted choice (``solver.solve``) -> each route's tiles run as
one batch. The objective is the frame's predicted MSE (predicted PSNR turned back into MSE and
summed over pixels), so the budget goes where it lowers the frame's error most, which is what
frame PSNR measures.

Routing of static content must not flicker. A tile whose content barely changed since the last
frame is static. While the frame budget stays within a dead band of the budget the static tiles
were planned with (and their routes still fit), static tiles keep their routes and only the
changing tiles are planned with what is left; outside the band everything is re-planned, with a
small bonus for each static tile's previous route so near-equal tiles do not swap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..engine import CALLER_FILLS_BASE, FrameStats, TimeBudget
from ..models.interpolation import interpolation_ms, upscale
from .edge import EdgePSNRTable, tile_edge_scores
from .solver import solve

INTERP_UNIT = "interpolation"  # the cost unit of the one whole-frame interpolation pass
STATIC_DIFF = 1.0 / 255  # mean absolute change of a tile below which it counts as static
HYSTERESIS = 0.08  # on a re-plan, static tiles value their previous route's MSE this much lower
DEADBAND = 0.10  # relative budget change within which static tiles keep their routes
# Under a MAC budget a tile's price includes the context its window computes beyond its core: a side
# facing a tile on another route needs ``context`` rows of that neighbour, a side facing the same
# route is shared in one merged window. The price depends on the neighbours' routes, so the plan is
# re-solved this many times with the halos of the previous solution. Why: at budget 0.6 the
# 64-wide x2 supernet's plan counted 0.60 of the full MACs but its windows ran 0.73 (many small
# regions of mixed widths); priced, its 0.05 dB point moved from 0.68x executed / 0.76x the time to
# 0.65x / 0.70x on the same VM (BENCHMARKS.md), the share counted once staying at 0.60x.
CONTEXT_ROUNDS = 3


@dataclass
class Plan:
    routes: np.ndarray  # route index per tile
    predicted_mse: np.ndarray  # (routes, tiles) per pixel
    cost: float  # in the budget's unit

    def predicted_psnr(self, pixels: np.ndarray) -> float:
        """The frame's predicted PSNR: the chosen routes' predicted MSE over tiles of ``pixels``."""
        mse = float((self.predicted_mse[self.routes, np.arange(len(pixels))] * pixels).sum() / pixels.sum())
        return 10 * np.log10(1 / max(mse, 1e-12))


class ARMRouter:
    fills_from_base = True  # interpolated tiles can be left to the caller's integer base plane

    def __init__(self, upscaler, price_context: bool = True):
        d = upscaler.descriptor
        self.price_context = price_context  # MAC budgets count each window's context (CONTEXT_ROUNDS)
        self.descriptor = d
        self.names = tuple(r.name for r in d.routes)
        try:
            self.table = EdgePSNRTable.from_tensors(upscaler.extras, self.names)
        except KeyError:
            raise ValueError(f"{d.name} has no Edge-to-PSNR table in its weights") from None
        self.macs = np.array([r.macs_per_pixel for r in d.routes])
        self._previous: tuple | None = None  # (frame, routes) of the last frame, for hysteresis

    def reset(self) -> None:
        self._previous = None

    # -- planning ---------------------------------------------------------------------------------

    def plan(self, x: torch.Tensor, grid, budget, interpolates: bool = True) -> Plan:
        """Routes per tile. ``budget``: a float in [0, 1], the fraction of the way from
        all-interpolation to all-full-network MACs; or a ``TimeBudget``: milliseconds, with the
        calibrated milliseconds one tile costs on each route (every tile runs in a same-size
        window, so a tile costs the same whatever its core) and one interpolation pass costs, which
        is charged only if this frame ``interpolates`` (not when the caller brings its own base).
        A MAC budget counts what the windows run, context included (``CONTEXT_ROUNDS``); all
        tiles on the full network cost exactly the full network's MACs."""
        scores = tile_edge_scores(x, grid).flatten()
        mse = torch.pow(10.0, -self.table.lookup(scores) / 10).cpu().numpy().astype(np.float64)  # (R, T)
        pixels = grid.core_pixels * self.descriptor.scale**2
        values = -mse * pixels
        if isinstance(budget, TimeBudget):
            per_tile = np.array([0.0] + [budget.unit_ms[n] for n in self.names[1:]])
            costs = np.repeat(per_tile[:, None], len(pixels), axis=1)
            total = budget.ms - (budget.unit_ms.get(INTERP_UNIT, 0.0) if interpolates else 0.0)
        else:
            costs = self.macs[:, None] * pixels[None, :]
            floor, top = costs[0].sum(), costs[-1].sum()
            total = floor + min(max(budget, 0.0), 1.0) * (top - floor)
        routes, anchor = self._solve_with_memory(x, grid, costs, values, mse, pixels, total)
        if not isinstance(budget, TimeBudget) and self.price_context and grid.context:
            lr_to_hr = self.descriptor.scale**2
            for _ in range(CONTEXT_ROUNDS):
                costs = self.macs[:, None] * (pixels[None, :] + halo_pixels(grid, routes, len(self.names)) * lr_to_hr)
                routes, anchor = self._solve_with_memory(x, grid, costs, values, mse, pixels, total)
        self._previous = (x.clone(), routes, anchor)
        return Plan(routes, mse, float(costs[routes, np.arange(len(routes))].sum()))

    def _solve_with_memory(self, x, grid, costs, values, mse, pixels, total):
        """(routes, the budget they were planned with), keeping static tiles stable."""
        prev = self._previous
        if prev is None or prev[0].shape != x.shape:
            return solve(costs, values, total), total
        old_frame, old_routes, anchor = prev
        static = _tile_change(x, old_frame, grid).flatten().cpu().numpy() < STATIC_DIFF
        items = np.arange(len(pixels))
        kept_cost = costs[old_routes[static], items[static]].sum()
        if static.any() and abs(total - anchor) <= DEADBAND * max(abs(anchor), 1e-9) and kept_cost <= total:
            routes = old_routes.copy()
            moving = ~static
            if moving.any():
                routes[moving] = solve(costs[:, moving], values[:, moving], total - kept_cost)
            return routes, anchor
        idx = np.nonzero(static)[0]
        values = values.copy()
        values[old_routes[idx], idx] += HYSTERESIS * mse[old_routes[idx], idx] * pixels[idx]
        return solve(costs, values, total), total

    # -- running ---------------------------------------------------------------------------------

    def run(self, engine, x: torch.Tensor, grid, budget, base: torch.Tensor | None = None):
        t0 = time.perf_counter()
        plan = self.plan(x, grid, budget, interpolates=base is None)
        ms = {"route": (time.perf_counter() - t0) * 1000}
        work = {}
        s = self.descriptor.scale
        if base is CALLER_FILLS_BASE:  # the caller keeps its base where tiles are interpolated
            out = grid.new_output(x, s)
        elif (plan.routes == 0).any():  # interpolation tiles: the caller's base, or one pass over the frame
            t1 = time.perf_counter()
            out = base.clone() if base is not None else upscale(x, s)
            ms[INTERP_UNIT] = (time.perf_counter() - t1) * 1000
            work[INTERP_UNIT] = 1
            if base is None:
                engine.executed_macs += self.macs[0] * out.numel()
        else:
            out = grid.new_output(x, s)
        for r in range(1, len(self.names)):
            ids = np.nonzero(plan.routes == r)[0]
            if len(ids):
                ms[self.names[r]] = engine.run_tiles(x, grid, ids, self.names[r], out)
                work[self.names[r]] = len(ids)
        stats = self._stats(plan, grid, budget, ms, work)
        stats.network_tiles = np.nonzero(plan.routes)[0].tolist()
        return out, stats

    def _stats(self, plan: Plan, grid, budget, ms: dict, work: dict) -> FrameStats:
        px = grid.core_pixels
        total = px.sum()
        shares = {n: float(px[plan.routes == r].sum() / total) for r, n in enumerate(self.names)}
        macs = float((self.macs[plan.routes] * px).sum() / total)
        counts = {n: int((plan.routes == r).sum()) for r, n in enumerate(self.names)}
        fraction = (macs - self.macs[0]) / (self.macs[-1] - self.macs[0])
        return FrameStats(budget=float(fraction), route_shares=shares, macs_per_pixel=macs, ms=ms,
                          predicted_psnr=plan.predicted_psnr(px), counts=counts, work=work)

    @torch.inference_mode()
    def calibrate(self, engine, x: torch.Tensor, samples: int = 8) -> dict[str, float]:
        """Measured milliseconds of one unit of each kind of work on ``x``'s size: each width on a
        few isolated tiles (no merging: the dearest case), and one interpolation pass."""
        grid = engine.grid(*x.shape[-2:])
        ids = np.unique(np.linspace(0, len(grid) - 1, min(samples, len(grid))).round().astype(int))
        out = grid.new_output(x, self.descriptor.scale)
        units = {}
        for name in self.names[1:]:
            for k in range(1, 4):  # warm-up: builds the subnet, and the batch shapes a tight budget buys
                engine.run_tiles(x, grid, ids[:k], name, out)
            units[name] = engine.run_tiles(x, grid, ids, name, out) / len(ids)
        units[INTERP_UNIT] = interpolation_ms(x, self.descriptor.scale)
        engine.executed_macs = 0.0
        return units

    def unit_macs(self, grid) -> dict[str, float]:
        """MACs of one unit of each kind of work (a tile window per route, one interpolation pass),
        so the controller can guess costs it has not measured yet."""
        s2 = self.descriptor.scale ** 2
        units = {n: self.macs[r] * grid.window_pixels() * s2 for r, n in enumerate(self.names) if r}
        units[INTERP_UNIT] = self.macs[0] * grid.height * grid.width * s2
        return units


def halo_pixels(grid, routes: np.ndarray, n_routes: int) -> np.ndarray:
    """(routes, tiles): LR context pixels each tile's window adds beyond its core if it takes each
    route, given its neighbours' ``routes``: ``context`` times the side's length for every side that
    faces a tile on another route (interpolation included); none for a side facing the same route
    (one merged window), none at the frame's edge (windows are clipped there), none on route 0
    (interpolation runs once over the whole frame). Corners and region splits are left out."""
    rows, cols = grid.shape
    r = routes.reshape(rows, cols)
    heights = np.array([t.h for t in grid.tiles]).reshape(rows, cols)
    widths = np.array([t.w for t in grid.tiles]).reshape(rows, cols)
    halo = np.zeros((n_routes, rows, cols))
    route_ids = np.arange(n_routes)[:, None, None]
    # each neighbour direction: (its route, per tile, -1 at the frame edge) and the shared side's length
    pad = np.pad(r, 1, constant_values=-1)
    for nb, side in ((pad[1:-1, :-2], heights), (pad[1:-1, 2:], heights), (pad[:-2, 1:-1], widths), (pad[2:, 1:-1], widths)):
        halo += ((nb[None] >= 0) & (nb[None] != route_ids)) * side[None]
    halo[0] = 0
    return (grid.context * halo).reshape(n_routes, -1)


def _tile_change(x: torch.Tensor, prev: torch.Tensor, grid) -> torch.Tensor:
    return grid.tile_means((x - prev).abs())
