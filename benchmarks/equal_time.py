"""Two `vidsr bench routing --json` runs compared at equal cost: which setting buys more quality?

The routing bench reports each setting's own 0.05 dB point; comparing two settings (router tile
sizes, say) needs them at the same cost. For every model in both files this reads the router's
sweep as an upper envelope (the best PSNR at or below each cost: a dearer point that is worse buys
nothing) and interpolates it at fractions of the full network's wall time and of its MACs, printing
each setting's PSNR against its own full network there.

    python benchmarks/equal_time.py benchmarks/results/routing-tile32.json benchmarks/results/routing-tile64.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np

TIME_POINTS = (0.3, 0.5, 0.7, 0.9, 1.1)
MACS_POINTS = (0.2, 0.4, 0.6, 0.8)


def envelope(block: dict, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(cost, best PSNR-Y at or below that cost) over the router sweep of one model."""
    points = sorted((p[key], p["psnr_y"]) for p in block["sweep"])
    costs = np.array([c for c, _ in points])
    best = np.maximum.accumulate(np.array([p for _, p in points]))
    return costs, best


def delta_at(block: dict, key: str, cost: float) -> float:
    """PSNR-Y against the full network at ``cost`` (NaN below the sweep's cheapest point)."""
    costs, best = envelope(block, key)
    return float(np.interp(cost, costs, best)) - block["full"]["psnr_y"] if cost >= costs[0] else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("first", help="a `vidsr bench routing --json` file")
    ap.add_argument("second", help="another, with the same models")
    args = ap.parse_args()
    runs = [json.load(open(f)) for f in (args.first, args.second)]
    print("PSNR-Y against each run's own full network (dB), first / second run")
    for a in runs[0]["models"]:
        b = next((m for m in runs[1]["models"] if (m["model"], m["scale"]) == (a["model"], a["scale"])), None)
        if b is None:
            continue
        label = f"{a['model']} x{a['scale']} (tiles {a.get('tile', '?')} / {b.get('tile', '?')})"
        for key, points, name in (("time_ratio", TIME_POINTS, "time"), ("macs_ratio", MACS_POINTS, "MACs")):
            cells = "  ".join(f"{c:g}x: {delta_at(a, key, c):+.2f} / {delta_at(b, key, c):+.2f}" for c in points)
            print(f"{label} at equal {name}: {cells}")


if __name__ == "__main__":
    main()
