"""How far is ARM's Edge-to-PSNR predictor from an oracle, and do other cheap tile features close the gap?

Offline, on the validation images: every fixed route of a shipped ARM model is run once on every
image; then the budgeted solver (the router's own) routes each tile (``--tile``, default the
router's) from a predictor's per-route PSNR, and the frame's PSNR-Y is read off the real route
outputs. Reported per predictor: the smallest MACs ratio within 0.05 dB of the full network
(bisection on the budget), and the dB below the full network at budgets 0.3 / 0.5 / 0.6.
Predictors: the shipped table; the oracle (each tile's true error); tables re-fitted over other bin
layouts and other features; a ridge regression on several features. The features include two that
look at more than the tile's LR pixels: how much the LR tile loses to a down-and-up bicubic round
trip (the interpolation error one octave down), and how much the narrowest subnet changes the
tile over bicubic (a probe, charged nothing here: if it does not help free, it cannot help paid).

By default the fitted predictors are fitted on the validation tiles they are scored on, which
flatters them alike (the shipped table is built on these tiles too); ``--fit-on train`` fits them
on the first ``--train-images`` training images instead (as `vidsr train` prepares them), which
is what a predictor meets on footage it has never seen.

    python benchmarks/predictor_study.py --model arm-plain --scale 2
    python benchmarks/predictor_study.py --model arm-plain-wide --scale 2 --fit-on train
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from vidsr.bench.routing import WITHIN_DB, measure, oracle_psnr, oracle_tiles
from vidsr.budget import FULL_NETWORK
from vidsr.engine import DEFAULT_TILE, Engine
from vidsr.metrics import psnr
from vidsr.models import registry
from vidsr.models.interpolation import downscale, upscale
from vidsr.routing.edge import EdgePSNRTable, laplacian_abs, tile_edge_scores
from vidsr.train.data import default_folder, load_pairs

EDGE = "edge (mean abs Laplacian)"
PROBE = "narrowest subnet's change (probe)"


def tile_features(lr: torch.Tensor, grid, probe: torch.Tensor, scale: int) -> dict[str, np.ndarray]:
    """Cheap per-tile features of a (1, 1, h, w) LR plane, tiled by the router's ``grid``;
    ``probe``: the narrowest subnet's (H, W) output of it, for the probe feature."""
    def pool(m, s=1):
        return grid.tile_means(m, s)[0].flatten().numpy()

    lap = laplacian_abs(lr)
    gx = F.pad((lr[..., :, 1:] - lr[..., :, :-1]).abs(), (0, 1, 0, 0))
    gy = F.pad((lr[..., 1:, :] - lr[..., :-1, :]).abs(), (0, 0, 0, 1))
    mean = pool(lr)
    h, w = (lr.shape[-2] // 2) * 2, (lr.shape[-1] // 2) * 2
    trip = upscale(downscale(lr[..., :h, :w], 2), 2)
    trip_err = F.pad((lr[..., :h, :w] - trip) ** 2, (0, lr.shape[-1] - w, 0, lr.shape[-2] - h))
    probe_change = (probe[None, None] - upscale(lr, scale).clamp(0, 1)) ** 2
    return {EDGE: tile_edge_scores(lr, grid).flatten().numpy(),
            "RMS Laplacian": np.sqrt(pool(lap**2)),
            "std of luma": np.sqrt(np.maximum(pool(lr * lr) - mean**2, 0)) * 255,
            "mean abs gradient": pool((gx + gy) * 255),
            "share of abs Laplacian > 8": pool((lap > 8).float()),
            "down-and-up bicubic error": np.sqrt(pool(trip_err)) * 255,
            PROBE: np.sqrt(pool(probe_change, scale)) * 255}


class Tiles:
    """Every route's output on some images, split into tiles: true errors and features per tile."""

    def __init__(self, up, pairs, tile: int):
        d, scale = up.descriptor, up.scale
        outs = []
        for r in d.routes:
            outs.append([])
            if r.name == d.full_route.name:
                measure(Engine(up), pairs, scale, FULL_NETWORK, 1, outs[-1])
            else:
                measure(Engine(up), pairs, scale, r.name, 1, outs[-1])
        self.pairs, self.outs = pairs, outs
        self.tiles = oracle_tiles(outs, pairs, tile, scale)
        self.features = [tile_features(p.lr[None, None], self.tiles[i][3], outs[1][i], scale)
                         for i, p in enumerate(pairs)]
        self.true_psnr = np.concatenate([10 * np.log10(1 / np.maximum(m, 1e-10)) for _, m, _, _ in self.tiles], axis=1)


class Study:
    def __init__(self, name: str, scale: int, val_dir, tile: int | None = None, fit_dir=None, fit_images: int = 0):
        self.scale = scale
        up = registry.load(name, scale)
        d = self.descriptor = up.descriptor
        self.tile = tile or DEFAULT_TILE[d.router]  # the router's default tile side
        self.val = Tiles(up, load_pairs(val_dir, scale), self.tile)
        self.pairs, self.tiles, self.features = self.val.pairs, self.val.tiles, self.val.features
        # the fitted predictors learn from these tiles: the scored ones, or training images'
        self.fit = self.val if fit_dir is None else Tiles(up, load_pairs(fit_dir, scale, 2)[:fit_images], self.tile)
        self.macs = np.array([r.macs_per_pixel for r in d.routes])
        self.full = float(np.mean([psnr(self.val.outs[-1][i], p.hr, scale) for i, p in enumerate(self.pairs)]))
        self.table = EdgePSNRTable.from_tensors(up.extras, tuple(r.name for r in d.routes))

    def routed(self, predicted_mse: list[np.ndarray], budget: float) -> tuple[float, float]:
        """(PSNR-Y, MACs ratio) when the solver routes every tile from ``predicted_mse``."""
        p, macs = oracle_psnr(self.tiles, self.pairs, self.macs, self.scale, budget, predicted_mse)
        return p, macs / self.macs[-1]

    def shipped(self) -> list[np.ndarray]:
        """Per-tile predicted MSE from the model's own Edge-to-PSNR table, as the router reads it."""
        return [10 ** (-self.table.lookup(torch.from_numpy(f[EDGE])).numpy() / 10) for f in self.features]

    def oracle(self) -> list[np.ndarray]:
        """Each tile's true per-route MSE."""
        return [m for _, m, _, _ in self.tiles]

    def score(self, predicted_mse) -> str:
        lo, hi = 0.0, 1.0
        for _ in range(12):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if self.routed(predicted_mse, mid)[0] - self.full >= -WITHIN_DB else (mid, hi)
        at = " / ".join(f"{self.routed(predicted_mse, b)[0] - self.full:+.3f}" for b in (0.3, 0.5, 0.6))
        return f"{self.routed(predicted_mse, hi)[1]:.2f}x the MACs | {at}"

    def table_on(self, feature: str, bins: int = 30) -> list[np.ndarray]:
        """Per-route mean PSNR over equal-population bins of ``feature``, fitted on the fit tiles."""
        everything = np.concatenate([f[feature] for f in self.fit.features])
        inner = np.quantile(everything, np.linspace(0, 1, bins + 1)[1:-1])
        idx = np.searchsorted(inner, everything, side="right")
        true = self.fit.true_psnr
        table = np.stack([true[:, idx == b].mean(1) if (idx == b).any() else true.mean(1) for b in range(bins)], axis=1)
        return [10 ** (-table[:, np.searchsorted(inner, f[feature], side="right")] / 10) for f in self.features]

    def ridge(self, keys) -> list[np.ndarray]:
        """Per-route PSNR regressed on the features ``keys`` (logs, squares of the logs, shares)."""
        def design(f):
            logs = np.stack([np.log1p(f[k]) for k in keys if not k.startswith("share")], 1)
            shares = [f[k][:, None] for k in keys if k.startswith("share")]
            return np.concatenate([logs, logs**2, *shares, np.ones((len(logs), 1))], 1)

        x = np.concatenate([design(f) for f in self.fit.features])
        w = np.linalg.solve(x.T @ x + 1e-3 * np.eye(x.shape[1]), x.T @ self.fit.true_psnr.T)
        return [10 ** (-(design(f) @ w).T / 10) for f in self.features]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="arm-plain")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--val-dir", default=None)
    ap.add_argument("--tile", type=int, help="LR tile side (default: the router's)")
    ap.add_argument("--fit-on", choices=("val", "train"), default="val",
                    help="fit the re-fitted predictors on the scored validation tiles or on training images")
    ap.add_argument("--train-dir", default=None)
    ap.add_argument("--train-images", type=int, default=12, help="with --fit-on train: how many (the first N)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    fit_dir = None if args.fit_on == "val" else args.train_dir or default_folder("train")
    s = Study(args.model, args.scale, args.val_dir or default_folder("val"), args.tile, fit_dir, args.train_images)
    fitted = ("the scored validation tiles" if fit_dir is None
              else f"the first {args.train_images} training images ({sum(len(t[2]) for t in s.fit.tiles)} tiles)")
    print(f"{args.model} x{args.scale}: full network {s.full:.3f} dB; {s.tile}-px tiles; "
          f"re-fitted predictors fitted on {fitted}\n")
    print("| predictor | within 0.05 dB at | dB vs full at budget 0.3 / 0.5 / 0.6 |")
    print("| --- | --- | --- |")
    rows = [("shipped Edge-to-PSNR table (30 uniform bins)", s.shipped()),
            ("oracle (true per-tile error)", s.oracle()),
            ("edge score, 15 equal-population bins", s.table_on(EDGE, 15)),
            ("edge score, 60 equal-population bins", s.table_on(EDGE, 60))]
    rows += [(f"{k}, 30 equal-population bins", s.table_on(k)) for k in s.features[0] if k != EDGE]
    pixels_only = [k for k in s.features[0] if k != PROBE]
    rows.append((f"ridge regression on the {len(pixels_only)} LR-pixel features", s.ridge(pixels_only)))
    rows.append(("ridge regression on those and the probe", s.ridge(list(s.features[0]))))
    for label, pred in rows:
        print(f"| {label} | {s.score(pred)} |")


if __name__ == "__main__":
    main()
