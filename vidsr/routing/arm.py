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

import numpy as np
import torch

from .edge import EdgePSNRTable, tile_edge_scores
from .protocol import INTERPOLATION_UNIT, TilePlan, uniform_unit
from .solver import solve

STATIC_DIFF = 1.0 / 255  # mean absolute change of a tile below which it counts as static
HYSTERESIS = 0.08  # on a re-plan, static tiles value their previous route's MSE this much lower
DEADBAND = 0.10  # relative budget change within which static tiles keep their routes
# the frame's configuration (routed, or one route everywhere) changes only for a predicted error
# this much lower: two that predict nearly the same must not alternate frame to frame (flicker)
SWITCH_MARGIN = 0.03
# A tile's price includes the context its window computes beyond its core, which depends on its
# neighbours' routes (a side facing the same route is shared in one merged window): the plan is
# re-solved this many times with the halos of the previous solution.
CONTEXT_ROUNDS = 3


class ARMRouter:
    fills_from_base = True  # interpolated tiles can be left to the caller's integer base plane
    reuses = True  # a tile may keep its previous output (its plan's ``reuse``)
    takes_evidence = True  # its prediction can use recent frames' disagreement (``routing.evidence``)

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
        self._previous: tuple | None = None  # (frame, routes, budget planned with) of the last frame
        self._choice = _NO_CHOICE  # the last frame's configuration: a route everywhere, or None (routed)

    def reset(self) -> None:
        self._previous = None
        self._choice = _NO_CHOICE

    def plan(self, x: torch.Tensor, grid, budget, has_base: bool = False, reuse=None, evidence=None) -> TilePlan:
        """A route per tile: the most predicted quality the budget pays for. Under a MAC budget each
        tile costs its route's MACs over its pixels (and, priced, its window's context); under a
        time budget a tile costs its route's measured milliseconds (every tile runs in a same-size
        window, so a tile costs the same whatever its core) and the interpolation pass is paid once
        unless the caller ``has_base``. All tiles on the full network cost exactly its MACs.
        ``reuse``: (tiles whose previous output may be kept, the routes it came from): keeping that
        route costs such a tile nothing (``vidsr.temporal``). ``evidence``: the stream's
        ``RouteEvidence``, which corrects the table's prediction where recent frames measured
        how much the networks changed a tile."""
        scores = tile_edge_scores(x, grid).flatten()
        mse = torch.pow(10.0, -self.table.lookup(scores) / 10).cpu().numpy().astype(np.float64)  # (R, T)
        if evidence is not None:
            mse = evidence.adjust(mse)
        pixels = grid.core_pixels * self.descriptor.scale**2
        values = -mse * pixels
        units = (None,) + self.names[1:]  # interpolated tiles are not bought one by one
        costs = np.stack([budget.price(self.macs[r] * pixels, units[r]) for r in range(len(self.names))])
        total = budget.allowance(costs[0].sum(), costs[-1].sum(), () if has_base else (INTERPOLATION_UNIT,))
        free = (reuse[1][reuse[0]], np.nonzero(reuse[0])[0]) if reuse is not None else None
        routes, anchor = self._solve_with_memory(x, grid, _kept_free(costs, free), values, mse, pixels, total)
        if self.price_context and grid.context:
            alone = costs

            def priced(routes):
                computed = grid.core_pixels[None, :] + halo_pixels(grid, routes, len(self.names))
                return _kept_free(budget.with_context(alone, self.macs, computed, grid.window_pixels(), self.descriptor.scale), free)

            for _ in range(CONTEXT_ROUNDS):
                routes, anchor = self._solve_with_memory(x, grid, priced(routes), values, mse, pixels, total)
            # the last round's halos are the round before's: if the plan's own context overspends, ask
            # for that much less
            for _ in range(CONTEXT_ROUNDS):
                spent = float(priced(routes)[routes, np.arange(len(routes))].sum())
                if spent <= total * (1 + 1e-9) or spent <= 0:
                    break
                routes, anchor = self._solve_with_memory(x, grid, priced(routes), values, mse, pixels, total * total / spent)
        # one route everywhere needs no interpolation pass; floor and top as the budget counts them
        allowance = budget.allowance(self.macs[0] * pixels.sum(), self.macs[-1] * pixels.sum())
        uniform = self._configuration(budget, mse, pixels, allowance, float((mse[routes, np.arange(len(routes))] * pixels).sum()))
        self._choice = uniform
        if uniform is not None:
            routes = np.full(len(routes), uniform, dtype=np.int64)
        self._previous = (x.clone(), routes, anchor)
        if uniform is not None:
            return TilePlan.uniform(uniform, len(routes), mse, uniform_unit(self.names[uniform]))
        reused = reuse[0] & (routes == reuse[1]) if reuse is not None else None
        return TilePlan(routes, mse, reuse=reused if reused is not None and reused.any() else None)

    def _configuration(self, budget, mse, pixels, allowance: float, routed_error: float) -> int | None:
        """The route to run on every tile, in the large windows of a pass with no routing (no tile
        pays context of its own), when the budget affords it and the table predicts it better than
        the routed plan; None to route. So a frame never gets less than the best fixed
        configuration its budget buys. The last frame's choice stays unless another predicts
        ``SWITCH_MARGIN`` less error."""
        errors = {None: routed_error}
        allowance = budget.uniform_allowance(allowance)
        for r in range(1, len(self.names)):
            price = float(budget.price(self.macs[r] * pixels.sum(), uniform_unit(self.names[r])))
            if price <= allowance * (1 + 1e-9):
                errors[r] = float((mse[r] * pixels).sum())
        best = min(errors, key=lambda r: (errors[r], r is None))  # a tie: one route everywhere (no seams, larger windows)
        if self._choice in errors and errors[best] > errors[self._choice] * (1 - SWITCH_MARGIN):
            return self._choice
        return best

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

    def calibration_plan(self):
        """ARM's units are whole tiles of each route: nothing to declare beyond its routes."""
        return None

    def unit_macs(self, grid) -> dict[str, float]:
        """MACs of one unit of each kind of work (a tile window per route, one interpolation pass),
        so the controller can guess costs it has not measured yet."""
        s2 = self.descriptor.scale ** 2
        frame = grid.height * grid.width * s2
        units = {n: self.macs[r] * grid.window_pixels() * s2 for r, n in enumerate(self.names) if r}
        units.update({uniform_unit(n): self.macs[r] * frame for r, n in enumerate(self.names) if r})
        units[INTERPOLATION_UNIT] = self.macs[0] * frame
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


_NO_CHOICE = object()  # no frame before: nothing to keep


def _kept_free(costs: np.ndarray, free) -> np.ndarray:
    """``costs`` with each reusable tile's previous route at no cost (``free``: (routes, tiles))."""
    if free is None or not len(free[1]):
        return costs
    costs = costs.copy()
    costs[free[0], free[1]] = 0.0
    return costs


def _tile_change(x: torch.Tensor, prev: torch.Tensor, grid) -> torch.Tensor:
    return grid.tile_means((x - prev).abs())
