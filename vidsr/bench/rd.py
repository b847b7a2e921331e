"""Rate-distortion arithmetic for the delivery benchmark: BD-rate, the hull of two curves, the
crossover rate.

A curve is a list of (kbps, PSNR) points, one per CRF. Between points, log-rate is interpolated
linearly in PSNR (a piecewise-linear Bjontegaard: robust with five points, where the classic cubic
fit can swing). BD-rate is the mean log-rate difference over the PSNR range both curves cover,
as a percentage: -10 means 10% fewer bits for the same PSNR.
"""

from __future__ import annotations

import numpy as np

GRID = 256


def _sorted(curve) -> tuple[np.ndarray, np.ndarray]:
    pts = sorted(curve, key=lambda p: p[1])
    psnr = np.array([p[1] for p in pts], dtype=np.float64)
    log_rate = np.log(np.array([p[0] for p in pts], dtype=np.float64))
    return psnr, np.maximum.accumulate(log_rate)  # a higher PSNR never costs fewer bits on one curve


def log_rate_at(curve, psnr: np.ndarray) -> np.ndarray:
    """Interpolated log-rate at each PSNR (NaN outside the curve's range)."""
    p, r = _sorted(curve)
    out = np.interp(psnr, p, r)
    out[(psnr < p[0]) | (psnr > p[-1])] = np.nan
    return out


def bd_rate(reference, test, hull_with=None) -> float | None:
    """BD-rate of ``test`` against ``reference`` (with ``hull_with``: against the hull of both, the
    fewest bits either needs for each PSNR). None when the PSNR ranges do not overlap."""
    refs = [reference] + ([hull_with] if hull_with is not None else [])
    lo_ref = min(min(p for _, p in c) for c in refs)
    hi_ref = max(max(p for _, p in c) for c in refs)
    lo, hi = max(lo_ref, min(p for _, p in test)), min(hi_ref, max(p for _, p in test))
    if hi <= lo:
        return None
    grid = np.linspace(lo, hi, GRID)
    stacked = np.stack([log_rate_at(c, grid) for c in refs])
    covered = ~np.isnan(stacked).all(axis=0)  # a PSNR between the two curves' ranges has no reference
    if not covered.any():
        return None
    ref = np.nanmin(stacked[:, covered], axis=0)
    diff = log_rate_at(test, grid[covered]) - ref
    return float((np.exp(np.nanmean(diff)) - 1) * 100)


def psnr_at(curve, log_rate: np.ndarray) -> np.ndarray:
    pts = sorted(curve)
    r = np.log([p[0] for p in pts])
    p = np.maximum.accumulate(np.array([q[1] for q in pts], dtype=np.float64))
    out = np.interp(log_rate, r, p)
    out[(log_rate < r[0]) | (log_rate > r[-1])] = np.nan
    return out


def crossover(test, reference) -> dict:
    """Where ``test`` stops beating ``reference`` at equal rate: {"below_kbps": rate} when test is
    better at the low rates both cover, up to that rate; {"never": True} when it is better nowhere;
    {"everywhere": True, "up_to_kbps": top} when better over the whole range both cover."""
    lo = max(min(p[0] for p in test), min(p[0] for p in reference))
    hi = min(max(p[0] for p in test), max(p[0] for p in reference))
    if hi <= lo:
        return {"no_overlap": True}
    grid = np.linspace(np.log(lo), np.log(hi), GRID)
    better = psnr_at(test, grid) - psnr_at(reference, grid) >= 0
    if not better[0]:
        return {"never": True} if not better.any() else {"above_kbps": round(float(np.exp(grid[np.argmax(better)])), 1)}
    if better.all():
        return {"everywhere": True, "up_to_kbps": round(float(hi), 1)}
    return {"below_kbps": round(float(np.exp(grid[np.argmin(better)])), 1)}
