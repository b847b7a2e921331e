"""The budgeted choice: one route per item (tile), most predicted quality for a total cost.

This is a multiple-choice knapsack. We solve it greedily by marginal gain per unit cost on each
item's upper convex hull of (cost, value): every item starts on its cheapest route, and upgrades
(item i from route a to the next hull route b, worth ``(v_b - v_a) / (c_b - c_a)``) are taken in
order of decreasing worth while the budget lasts. On the hull an item's worths decrease, so taking
them in global order never skips a step; the result is the LP-optimal choice up to the one
upgrade that does not fit. ARM's fixed-eta rule (argmax ``eta * value - cost``) is the same
frontier walked with a fixed price instead of a fixed budget.
"""

from __future__ import annotations

import numpy as np


def upper_hull(costs: np.ndarray, values: np.ndarray) -> list[int]:
    """Indices of the routes on the upper-left convex hull, cheapest first (dominated routes and
    routes under the hull are never worth choosing under a budget)."""
    order = sorted(range(len(costs)), key=lambda j: (costs[j], -values[j]))
    hull: list[int] = []
    for j in order:
        if hull and values[j] <= values[hull[-1]]:
            continue  # costs at least as much, worth no more
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # drop b if it lies on or under the segment a -> j
            if (values[b] - values[a]) * (costs[j] - costs[a]) <= (values[j] - values[a]) * (costs[b] - costs[a]):
                hull.pop()
            else:
                break
        hull.append(j)
    return hull


def solve(costs: np.ndarray, values: np.ndarray, budget: float) -> np.ndarray:
    """Route index per item maximising ``sum(values[r_i, i])`` with ``sum(costs[r_i, i]) <= budget``.

    ``costs``/``values``: (routes, items). If even the cheapest routes exceed the budget, they are
    returned anyway (nothing is cheaper); the caller reports that.
    """
    routes, items = costs.shape
    choice = np.argmin(costs, axis=0)
    spent = costs[choice, np.arange(items)].sum()
    upgrades = []  # (worth, item, from, to, extra cost)
    for i in range(items):
        hull = upper_hull(costs[:, i], values[:, i])
        choice[i] = hull[0]
        for a, b in zip(hull[:-1], hull[1:]):
            dc = costs[b, i] - costs[a, i]
            dv = values[b, i] - values[a, i]
            upgrades.append((dv / dc if dc > 0 else np.inf, i, a, b, dc))
    spent = costs[choice, np.arange(items)].sum()
    upgrades.sort(key=lambda u: -u[0])
    blocked = np.zeros(items, dtype=bool)  # an item whose next upgrade did not fit stops there
    for worth, i, a, b, dc in upgrades:
        if blocked[i] or choice[i] != a:
            continue
        if spent + dc <= budget * (1 + 1e-9):
            choice[i] = b
            spent += dc
        else:
            blocked[i] = True
    return choice


def solve_price(costs: np.ndarray, values: np.ndarray, eta: float) -> np.ndarray:
    """ARM's published rule: per item, argmax ``eta * value - cost`` (no total budget)."""
    return np.argmax(eta * values - costs, axis=0)
