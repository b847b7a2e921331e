"""ARM router: one route per tile (interpolation or a subnet width), chosen from predicted PSNR.

Per frame: edge score of every tile (vectorised on the frame's device) -> predicted PSNR per route
from the Edge-to-PSNR table -> the budgeted choice (``solver.solve``) -> each route's tiles run as
one batch. The objective is the frame's predicted MSE (predicted PSNR turned back into MSE and
summed over pixels), so the budget goes where it lowers the frame's error most, which is what
frame PSNR measures.

Routing of static content must not flicker. A tile whose content barely changed since the last
frame is static. While the frame budget stays within a dead band of the budget the static tiles
were planned with (and their routes still fit), static tiles keep their routes and only the
changing tiles are planned, with their share of that budget moved as the frame's budget moved
(not with what the frame's budget leaves, which swings with its jitter); outside the band
everything is re-planned. Either way each re-planned tile values its previous route a little more
(``HYSTERESIS``), so near-equal tiles do not swap: a moving subject's tiles hold still background
too, which each swap changes. A still tile that reached its reuse age limit is refreshed on its
route or a dearer one, never a cheaper one (``_refresh_not_cheaper``).

A frame that ran one route everywhere keeps it without planning (no solve, no edge scores: it
reports the last planned frame's predicted PSNR) while that route still fits the budget, no dearer route
everywhere does, no tile could keep its output, and fewer than ``RECHECK_FRAMES`` frames have passed
since a full plan chose it: a plan costs a few milliseconds a frame, which at a width's own frame
rate is what keeps that width from fitting. A route everywhere that runs goes on while priced
within the budget's keep allowance (``TimeBudget.keep_over``), a little more than a new one may.
"""

from __future__ import annotations

import numpy as np
import torch

from .edge import EdgePSNRTable, tile_edge_scores
from .protocol import INTERPOLATION_UNIT, TilePlan, uniform_unit
from .solver import solve

STATIC_DIFF = 1.0 / 255  # mean absolute change of a tile below which it counts as static
# on a re-plan, every tile values its previous route's MSE this much lower: near-equal tiles do not
# swap routes frame to frame. A moving subject's tiles are re-planned every frame, and the still
# background they hold changed with each swap (static clip with a moving subject, fps target
# between the widths' speeds: 35-45% fewer swaps; the flicker saved was within the runs' spread)
HYSTERESIS = 0.08
DEADBAND = 0.10  # relative budget change within which static tiles keep their routes
# the frame's configuration (routed, or one route everywhere) changes only for a predicted error
# this much lower: two that predict nearly the same must not alternate frame to frame (flicker)
SWITCH_MARGIN = 0.03
# a routed plan runs instead of one route everywhere that fits only if the table predicts it this
# many dB better: on footage the table overrates what routing buys over a uniform configuration
# (``vidsr bench video --parts predictors``, the routed plans' predicted and measured gains), and a
# routed plan's small windows cost more time per MAC than a uniform pass's large ones; both are
# its network tiles', so the margin is scaled by their share of the frame's pixels. Unless a width
# that fits is predicted this much above the base everywhere: then the tiles left to the base also
# give up what the table underrates there (on coded footage a tile it calls flat still holds texture
# the width restores: on a slow pan at w16's speed the routed plans it chose over w16, predicted
# +0.35-0.47 dB, measured 0.1-0.9 dB below it)
ROUTED_MARGIN_DB = 0.5
TRY_EVERY = 15  # frames between tries of one route everywhere priced just beyond the budget
# each try of a route doubles the wait before its next, up to 2**this: a try that found the route
# too dear puts the run behind, and the frames that repay it run poorer plans (on a slow pan at the
# w16 speed, a try of w24 every TRY_EVERY frames cost the frames after it 0.7-2.3 dB each); a price
# that drifts back to a calibration taken while the encoder was idle would bring the try back
TRY_BACKOFF = 3
# A tile's price includes the context its window computes beyond its core, which depends on its
# neighbours' routes (a side facing the same route is shared in one merged window): the plan is
# re-solved this many times with the halos of the previous solution.
CONTEXT_ROUNDS = 3
RECHECK_FRAMES = 8  # frames one route everywhere is kept without planning before a full plan re-decides


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
        self.sharp_table: EdgePSNRTable | None = None  # the table under a sharpened base (``use_sharp_base``)
        self.macs = np.array([r.macs_per_pixel for r in d.routes])
        self._previous: tuple | None = None  # (frame, routes, budget planned with) of the last frame
        self._planned_mse: np.ndarray | None = None  # (routes, tiles) predicted errors of the last planned frame
        self._choice = _NO_CHOICE  # the last frame's configuration: a route everywhere, or None (routed)
        self._kept_frames = 0  # frames the current route everywhere has been kept without planning
        self._frames = 0  # frames planned (kept ones included)
        self._tried: dict[int, tuple[int, int]] = {}  # route -> (frame last tried everywhere, tries) (``_try_dearer``)

    def use_sharp_base(self, base) -> None:
        """Plans told ``sharp_base`` price interpolated tiles as ``base`` (a ``SharpBase``) makes
        them: the table's interpolation row raised by its gain over bicubic per edge score. The
        last frames' plans were made on the other table, so they are forgotten."""
        self.sharp_table = None if base is None else base.corrected_table(self.table)
        self.reset()

    def reset(self) -> None:
        self._previous = None
        self._planned_mse = None
        self._choice = _NO_CHOICE
        self._kept_frames = self._frames = 0
        self._tried = {}

    def plan(self, x: torch.Tensor, grid, budget, has_base: bool = False, reuse=None, evidence=None,
             sharp_base: bool = False) -> TilePlan:
        """A route per tile: the most predicted quality the budget pays for. Under a MAC budget each
        tile costs its route's MACs over its pixels (and, priced, its window's context); under a
        time budget a tile costs its route's measured milliseconds (every tile runs in a same-size
        window, so a tile costs the same whatever its core) and the interpolation pass is paid once
        unless the caller ``has_base``. All tiles on the full network cost exactly its MACs.
        ``reuse``: (tiles whose previous output may be kept, the routes it came from, still tiles
        due for their refresh): keeping that route costs such a tile nothing, and a due one is not
        planned cheaper than it (``vidsr.temporal``). ``evidence``: the stream's
        ``RouteEvidence``, which corrects the table's prediction where recent frames measured
        how much the networks changed a tile. ``sharp_base``: the caller's base is the sharpened one
        (``use_sharp_base``)."""
        self._frames += 1
        pixels = grid.core_pixels * self.descriptor.scale**2
        # a kept configuration decides nothing from the table: it reports the last planned frame's
        # prediction, and the edge scores (about 0.7 ms, 1% of a frame at a width's own rate) wait
        kept = self._keep_configuration(x, budget, pixels, reuse)
        if kept is not None:
            return kept
        mse = self._table_mse(x, grid, sharp_base)
        if evidence is not None:
            mse = evidence.adjust(mse)
        self._planned_mse = mse
        self._kept_frames = 0
        values = -mse * pixels
        if reuse is not None and reuse[2].any():
            values = _refresh_not_cheaper(values, reuse[1], reuse[2])
        units = (None,) + self.names[1:]  # interpolated tiles are not bought one by one
        costs = np.stack([budget.price(self.macs[r] * pixels, units[r]) for r in range(len(self.names))])
        total = budget.allowance(costs[0].sum(), costs[-1].sum(), () if has_base else (INTERPOLATION_UNIT,))
        free = (reuse[1][reuse[0]], np.nonzero(reuse[0])[0]) if reuse is not None else None
        keeps_tiles = free is not None and len(free[1]) > 0  # a tile may keep its output at no cost
        static = self._static_tiles(x, grid)
        if not keeps_tiles and self._nothing_affordable(costs, grid, total):
            # no tile's cheapest network route fits, even with all its context shared: the plan is
            # interpolation everywhere, without the solves (a frame the encoder's burst left no
            # budget pays its planning all the same, time the frames after it lose)
            routes, anchor = np.zeros(len(pixels), dtype=np.int64), total
        elif self.price_context and grid.context:
            routes, anchor = self._solve_with_context(grid, budget, costs, free, static, values, mse, pixels, total)
        else:
            routes, anchor = self._solve_with_memory(static, _kept_free(costs, free), values, mse, pixels, total)
        routed_error = float((mse[routes, np.arange(len(routes))] * pixels).sum())
        network_share = float(pixels[routes > 0].sum() / pixels.sum())
        base_error = float((mse[0] * pixels).sum())
        if has_base and not keeps_tiles and _base_beats_routing(base_error, routed_error, network_share):
            routes, routed_error, network_share = np.zeros(len(routes), dtype=np.int64), base_error, 0.0
        uniform = self._configuration(budget, mse, pixels, routed_error, keeps_tiles=keeps_tiles,
                                      network_share=network_share)
        self._choice = uniform
        if uniform is not None:
            routes = np.full(len(routes), uniform, dtype=np.int64)
        self._previous = (x.clone(), routes, anchor)
        if uniform is not None:
            return TilePlan.uniform(uniform, len(routes), mse, uniform_unit(self.names[uniform]))
        reused = reuse[0] & (routes == reuse[1]) if reuse is not None else None
        return TilePlan(routes, mse, reuse=reused if reused is not None and reused.any() else None)

    def uniform_plan(self, x: torch.Tensor, grid, budget, sharp_base: bool = False) -> TilePlan | None:
        """The best-predicted network route that fits on every tile under ``budget`` (its uniform
        allowance, as ``plan`` would let it run), or None when none fits. A plan to compare with:
        it leaves the router's memory as it was."""
        pixels = grid.core_pixels * self.descriptor.scale**2
        fitting = self._fitting_routes(budget, pixels, self._uniform_allowance(budget, pixels))
        if not fitting:
            return None
        mse = self._table_mse(x, grid, sharp_base)
        best = min(fitting, key=lambda r: (float((mse[r] * pixels).sum()), -r))
        return TilePlan.uniform(best, len(pixels), mse, uniform_unit(self.names[best]))

    def _table_mse(self, x: torch.Tensor, grid, sharp_base: bool) -> np.ndarray:
        """(routes, tiles): each route's MSE on each tile as the Edge-to-PSNR table predicts it
        from the tile's edge score (the sharpened base's table where the caller's base is that)."""
        table = self.sharp_table if sharp_base and self.sharp_table is not None else self.table
        return torch.pow(10.0, -table.lookup(tile_edge_scores(x, grid).flatten()) / 10).cpu().numpy().astype(np.float64)

    def _solve_with_context(self, grid, budget, alone, free, static, values, mse, pixels, total):
        """(routes, the budget they were planned with) with each tile priced for the context its
        window computes given its neighbours' routes: solved alone first, then again with the
        halos of the previous solution (``CONTEXT_ROUNDS``)."""

        def priced(routes):
            computed = grid.core_pixels[None, :] + halo_pixels(grid, routes, len(self.names))
            return _kept_free(budget.with_context(alone, self.macs, computed, grid.window_pixels(), self.descriptor.scale), free)

        routes, anchor = self._solve_with_memory(static, _kept_free(alone, free), values, mse, pixels, total)
        for _ in range(CONTEXT_ROUNDS):
            before, costs = routes, priced(routes)
            routes, anchor = self._solve_with_memory(static, costs, values, mse, pixels, total)
            if np.array_equal(routes, before):  # a fixed point: every further round solves the same
                break
        # the last round's halos are the round before's: if the plan's own context overspends, ask
        # for that much less (at a fixed point ``costs`` are the plan's own)
        for _ in range(CONTEXT_ROUNDS):
            if not np.array_equal(routes, before):
                before, costs = routes, priced(routes)
            spent = float(costs[routes, np.arange(len(routes))].sum())
            if spent <= total * (1 + 1e-9) or spent <= 0:
                break
            routes, anchor = self._solve_with_memory(static, costs, values, mse, pixels, total * total / spent)
        return routes, anchor

    def _nothing_affordable(self, costs, grid, total: float) -> bool:
        """Whether ``total`` is below every tile's cheapest network route priced at its core alone
        (its least possible price: every side's context shared), so that no plan buys a tile."""
        if len(self.names) < 2:
            return True
        least = costs[1:] * (grid.core_pixels / grid.window_pixels() if self.price_context and grid.context else 1.0)
        return bool(total - costs[0].sum() < (least - costs[0]).min())

    def _configuration(self, budget, mse, pixels, routed_error: float, keeps_tiles: bool = False,
                       network_share: float = 1.0) -> int | None:
        """The route to run on every tile, in the large windows of a pass with no routing (no tile
        pays context of its own), when the budget affords it and the table predicts it better than
        the routed plan; None to route. So a frame never gets less than the best fixed
        configuration its budget buys. The last frame's choice stays unless another predicts
        ``SWITCH_MARGIN`` less error. A routed plan must predict ``ROUTED_MARGIN_DB`` more than the
        uniform configurations that fit, unless it ``keeps_tiles`` (then its time is really less),
        scaled by the ``network_share`` of its pixels: what the table overrates, and what pays
        small windows, is its network tiles (interpolation everywhere has neither, and under the
        sharpened base it beats the narrowest widths). Where the best width that fits is predicted
        ``ROUTED_MARGIN_DB`` or more above the base everywhere, the whole margin applies: the base's
        tiles lose to it too."""
        errors = {None: routed_error}
        allowance = self._uniform_allowance(budget, pixels)
        fitting = set(self._fitting_routes(budget, pixels, allowance))
        if self._choice not in (None, _NO_CHOICE) and self._still_fits(budget, pixels, self._choice, allowance):
            fitting.add(self._choice)  # the running width goes on within its keep allowance
        for r in sorted(fitting):
            errors[r] = float((mse[r] * pixels).sum())
        if len(errors) > 1 and not keeps_tiles:  # routing has to earn its margin over the uniform configurations that fit
            best_width = min(e for r, e in errors.items() if r is not None)
            above_base = float((mse[0] * pixels).sum()) >= best_width * 10 ** (ROUTED_MARGIN_DB / 10)
            errors[None] *= 10 ** (ROUTED_MARGIN_DB * (1.0 if above_base else network_share) / 10)
        best = min(errors, key=lambda r: (errors[r], r is None))  # a tie: one route everywhere (no seams, larger windows)
        tried = self._try_dearer(budget, mse, pixels, allowance, errors, errors[best])
        if tried is not None:
            return tried
        if self._choice in errors and errors[best] > errors[self._choice] * (1 - SWITCH_MARGIN):
            return self._choice
        return best

    def _uniform_price(self, budget, pixels, route: int) -> float:
        """What ``route`` on every tile costs under ``budget`` (one pass in the large windows)."""
        return float(budget.price(self.macs[route] * pixels.sum(), uniform_unit(self.names[route])))

    def _uniform_allowance(self, budget, pixels) -> float:
        """What one route everywhere may spend: no interpolation pass, floor and top as the budget
        counts them, and what the budget lets one measured whole-frame price spend beyond that."""
        return budget.uniform_allowance(budget.allowance(self.macs[0] * pixels.sum(), self.macs[-1] * pixels.sum()))

    def _fits_everywhere(self, budget, pixels, route: int, allowance: float) -> bool:
        return self._uniform_price(budget, pixels, route) <= allowance * (1 + 1e-9)

    def _still_fits(self, budget, pixels, route: int, allowance: float) -> bool:
        """Whether the route everywhere that runs may go on: priced within the budget's keep
        allowance. A width at the stream's own frame rate is over its allowance on half the frames;
        leaving it then for a routed plan cost those frames about 1 dB (``TimeBudget.keep_over``)."""
        return self._fits_everywhere(budget, pixels, route, budget.keep_allowance(allowance))

    def _fitting_routes(self, budget, pixels, allowance: float) -> list[int]:
        """The network routes that fit ``allowance`` on every tile, cheapest first."""
        return [r for r in range(1, len(self.names)) if self._fits_everywhere(budget, pixels, r, allowance)]

    def _try_dearer(self, budget, mse, pixels, allowance: float, errors: dict, best_error: float) -> int | None:
        """The dearest route everywhere that does not fit but is priced within the budget's try
        allowance and predicted better than the frame's choice, ``TRY_EVERY`` frames after the
        stream began and then twice as long after each try of that route (up to ``TRY_BACKOFF``
        doublings); else None. Its price is the calibration's guess until it runs: a guess too dear
        would otherwise keep it from ever running, and so from ever being measured."""
        tries = budget.try_allowance(allowance)
        for r in range(len(self.names) - 1, 0, -1):
            if r in errors:  # it fits, and so do the cheaper ones
                return None
            last, count = self._tried.get(r, (0, 0))
            wait = TRY_EVERY * 2 ** min(count, TRY_BACKOFF)
            if (self._uniform_price(budget, pixels, r) <= tries and float((mse[r] * pixels).sum()) < best_error
                    and self._frames - last >= wait):
                self._tried[r] = (self._frames, count + 1)
                return r
        return None

    def _keep_configuration(self, x, budget, pixels, reuse) -> TilePlan | None:
        """The last frame's route everywhere again, unplanned (see the module's note), or None to
        plan. Its predicted errors are the last planned frame's."""
        r = self._choice
        if (r is _NO_CHOICE or r is None or self._kept_frames >= RECHECK_FRAMES - 1 or self._previous is None
                or self._previous[0].shape != x.shape or (reuse is not None and reuse[0].any())):
            return None
        allowance = self._uniform_allowance(budget, pixels)
        dearer_fits = r + 1 < len(self.names) and self._fits_everywhere(budget, pixels, r + 1, allowance)
        if dearer_fits or not self._still_fits(budget, pixels, r, allowance):
            return None
        self._kept_frames += 1
        routes = np.full(len(pixels), r, dtype=np.int64)
        self._previous = (x.clone(), routes, self._previous[2])
        return TilePlan.uniform(r, len(pixels), self._planned_mse, uniform_unit(self.names[r]))

    def _static_tiles(self, x, grid) -> np.ndarray | None:
        """Tiles whose input barely changed since the last frame, or None with no last frame."""
        prev = self._previous
        if prev is None or prev[0].shape != x.shape:
            return None
        return _tile_change(x, prev[0], grid).flatten().cpu().numpy() < STATIC_DIFF

    def _solve_with_memory(self, static, costs, values, mse, pixels, total):
        """(routes, the budget they were planned with), keeping ``static`` tiles stable."""
        if static is None:
            return solve(costs, values, total), total
        _, old_routes, anchor = self._previous
        items = np.arange(len(pixels))
        kept_cost = costs[old_routes[static], items[static]].sum()
        if static.any() and abs(total - anchor) <= DEADBAND * max(abs(anchor), 1e-9) and kept_cost <= total:
            routes = old_routes.copy()
            moving = ~static
            if moving.any():
                # the moving tiles' share of the anchor, moved by the budget's relative change: what
                # this frame's budget leaves after the static tiles is a small difference of two large
                # numbers, and a few percent of jitter moved it by tens of percent, so the moving
                # tiles swapped routes frame to frame (flicker around a moving subject). This spends
                # at most the dead band times the static tiles' cost beyond the budget, which the
                # controller repays
                share = max(anchor - kept_cost, 0.0) * total / max(anchor, 1e-12)
                values = _stay(values, old_routes, moving, mse, pixels)
                routes[moving] = solve(costs[:, moving], values[:, moving], share)
            return routes, anchor
        return solve(costs, _stay(values, old_routes, np.ones_like(static), mse, pixels), total), total

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


def _base_beats_routing(base_error: float, routed_error: float, network_share: float) -> bool:
    """Whether interpolation everywhere (the base: a uniform configuration too) is predicted within
    the routing margin of a routed plan, the margin scaled by the plan's network share as it is
    against a width near the base: the plan's gain over it is all its network tiles', which the
    table overrates. Asked for video frames, whose base the caller makes (the sharpened one, which
    the narrow networks barely beat: arm-espcn x2 at 30 fps on the fps benchmark's clip put ESPCN on
    half the pixels, each predicted above the base, and gave 0.21 dB less than the base
    everywhere); not for images, where on the routing benchmark it moved six rows by -0.08 to +0.10
    dB."""
    return network_share > 0 and base_error <= routed_error * 10 ** (ROUTED_MARGIN_DB * network_share / 10)


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


def _stay(values: np.ndarray, old_routes: np.ndarray, tiles: np.ndarray, mse: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """``values`` with each of ``tiles``' previous route valued as if its error were ``HYSTERESIS`` lower."""
    idx = np.nonzero(tiles)[0]
    values = values.copy()
    values[old_routes[idx], idx] += HYSTERESIS * mse[old_routes[idx], idx] * pixels[idx]
    return values


def _refresh_not_cheaper(values: np.ndarray, routes: np.ndarray, due: np.ndarray) -> np.ndarray:
    """``values`` (routes, tiles) with the routes cheaper than each ``due`` tile's previous one
    worth far less than any other: a still tile refreshed at its age limit on a cheaper route
    changes by the routes' difference (flicker), and the time its keeping frees buys the dearer
    route back a few frames later, a second change. The solver buys these first; only a budget too
    small for them all leaves some cheaper."""
    values = values.copy()
    idx = np.nonzero(due)[0]
    cheaper = np.arange(values.shape[0])[:, None] < routes[idx][None, :]
    penalty = 1e3 * (np.abs(values).max() + 1.0)
    values[:, idx] -= cheaper * penalty
    return values


def _tile_change(x: torch.Tensor, prev: torch.Tensor, grid) -> torch.Tensor:
    return grid.tile_means((x - prev).abs_())
