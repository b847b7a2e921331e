"""The budgeted choice: one route per item (tile), most predicted quality for a total cost.

This is a multiple-choice knapsack. We solve it greedily by marginal gain per unit cost on each
item's upper convex hull of (cost, value): every item starts on its cheapest route, and upgrades
(item i from route a to the next hull route b, worth ``(v_b - v_a) / (c_b - c_a)``) are taken in
order of decreasing worth while the budget lasts. On the hull an item's worths decrease, so taking
them in global order never skips a step; the result is the LP-optimal choice up to the upgrades
that do not fit, after which smaller upgrades still fill what is left. ARM's fixed-eta rule
(argmax ``eta * value - cost``) is the same frontier walked at a fixed price instead of a budget.

Everything is vectorised over items (a frame has hundreds to thousands of tiles; routes are few):
the next hull vertex from route ``a`` is the more expensive route with the steepest slope.
"""

from __future__ import annotations

import numpy as np


def upper_hull(costs: np.ndarray, values: np.ndarray) -> list[int]:
    """Indices of one item's routes on its upper-left convex hull, cheapest first."""
    hull = hull_steps(costs[:, None], values[:, None])
    route = int(np.argmin(costs))
    out = [route]
    for step in range(hull.shape[0]):
        nxt = hull[step, 0]
        if nxt < 0:
            break
        out.append(int(nxt))
    return out


def cheapest(costs: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per item, its cheapest route (ties: the most valuable): where its hull starts."""
    return np.lexsort((-values, costs), axis=0)[0]


def hull_steps(costs: np.ndarray, values: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """(routes - 1, items): the route each item moves to at each upgrade step along its hull
    (-1 once its hull ends), from ``start`` (default: ``cheapest``)."""
    routes, items = costs.shape
    idx = np.arange(items)
    current = cheapest(costs, values) if start is None else start
    steps = np.full((max(routes - 1, 0), items), -1, dtype=np.int64)
    active = np.ones(items, dtype=bool)
    for k in range(routes - 1):
        dc = costs - costs[current, idx]
        dv = values - values[current, idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where((dc > 0) & (dv > 0), dv / dc, -np.inf)  # only dearer and better routes
        nxt = np.argmax(slope, axis=0)
        ok = active & (slope[nxt, idx] > -np.inf)
        steps[k, ok] = nxt[ok]
        current = np.where(ok, nxt, current)
        active &= ok
        if not active.any():
            break
    return steps


def solve(costs: np.ndarray, values: np.ndarray, budget: float) -> np.ndarray:
    """Route index per item maximising ``sum(values[r_i, i])`` with ``sum(costs[r_i, i]) <= budget``.

    ``costs``/``values``: (routes, items). If even the cheapest routes exceed the budget they are
    returned anyway (nothing is cheaper); the caller reports that.
    """
    costs = np.asarray(costs, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    routes, items = costs.shape
    idx = np.arange(items)
    start = cheapest(costs, values)
    choice = start.copy()
    spent = costs[start, idx].sum()
    steps = hull_steps(costs, values, start)
    # every step as (item, step number, from, to, extra cost, worth)
    if not len(steps):
        return choice
    frm = np.vstack([start[None], steps[:-1]])
    valid = steps >= 0
    item = np.broadcast_to(idx, steps.shape)[valid]
    rank = np.broadcast_to(np.arange(len(steps))[:, None], steps.shape)[valid]
    a, b = frm[valid], steps[valid]
    dc = costs[b, item] - costs[a, item]
    worth = (values[b, item] - values[a, item]) / dc
    order = np.argsort(-worth, kind="stable")
    item, rank, a, b, dc = item[order], rank[order], a[order], b[order], dc[order]
    room = budget * (1 + 1e-9) - spent
    fits = np.cumsum(dc) <= room
    prefix = len(fits) if fits.all() else int(np.argmin(fits))
    # the prefix of the global order is taken whole: each item ends at its furthest step in it
    furthest = np.full(items, -1)
    np.maximum.at(furthest, item[:prefix], rank[:prefix])
    moved = furthest >= 0
    choice[moved] = steps[furthest[moved], idx[moved]]
    room -= dc[:prefix].sum()
    # then fill what is left with later steps that still fit, item by item in order, until what is
    # left is less than any later step costs
    blocked = np.zeros(items, dtype=bool)
    rest = dc[prefix:]
    least_after = np.minimum.accumulate(rest[::-1])[::-1] if len(rest) else rest
    for i, fa, fb, c, least in zip(item[prefix:].tolist(), a[prefix:].tolist(), b[prefix:].tolist(), rest.tolist(),
                                   least_after.tolist()):
        if room < least:
            break
        if blocked[i] or choice[i] != fa:
            continue
        if c <= room:
            choice[i] = fb
            room -= c
        else:
            blocked[i] = True
    return choice


def solve_price(costs: np.ndarray, values: np.ndarray, eta: float) -> np.ndarray:
    """ARM's published rule: per item, argmax ``eta * value - cost`` (no total budget)."""
    return np.argmax(eta * values - costs, axis=0)
