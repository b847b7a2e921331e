"""Can a small learned per-tile predictor route ARM tiles better than the Edge-to-PSNR table?

The predictor study (``predictor_study.py``) found that no statistic of a tile's LR pixels, alone
or in a ridge regression, predicts which tiles gain from a wider subnet better than ARM's edge
score. This tries the next thing: a small CNN that reads the LR tile itself and predicts every
route's PSNR on it, trained on tiles of the *training* images (all of each route's outputs on them,
random tile positions, the eight flips/rotations), and scored on the validation images by the
router's own solver, the same way as the predictor study (PSNR-Y read off the real route outputs).
Rows: the shipped table (built on the scored val tiles), the edge-score table fitted on the same
training images as the CNN, the CNN, and the oracle.

    python benchmarks/learned_predictor.py --samples 20000 --steps 2000 --batch 64 [--weighted]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from predictor_study import EDGE, Study, Tiles
from vidsr.routing.edge import tile_edge_scores
from vidsr.train.data import default_folder


class TileNet(nn.Module):
    """LR tile (N, 1, t, t) -> predicted PSNR per route (N, R). Three strided convs, then the mean
    and max of the features over the tile (so any tile side works), then a small MLP. The input is
    the tile minus its mean (level barely matters; structure does)."""

    def __init__(self, routes: int, width: int = 16):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(4 * width + 1, 64), nn.ReLU(), nn.Linear(64, routes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        edge = tile_edge_scores(x, tuple(x.shape[-2:])).flatten(1)  # the table's feature, as a head input
        f = self.body((x - x.mean((2, 3), keepdim=True)) * 10)
        pooled = torch.cat([f.mean((2, 3)), f.amax((2, 3)), torch.log1p(edge)], 1)
        return 30 + self.head(pooled)


def random_tiles(tiles: Tiles, scale: int, tile: int, count: int, rng) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``count`` random LR tiles of the training images (areas weighted): the tiles, every route's
    PSNR on the matching HR region, and each tile's weight for ``--weighted``."""
    sizes = np.array([p.lr.numel() for p in tiles.pairs], dtype=np.float64)
    pick = rng.choice(len(tiles.pairs), size=count, p=sizes / sizes.sum())
    # each image's mean squared error under the full network: a tile's weight is its error over that
    image_mse = [float(((tiles.outs[-1][i].double() - p.hr.double()) ** 2).mean()) for i, p in enumerate(tiles.pairs)]
    xs, ys, ws = [], [], []
    for i in pick:
        p = tiles.pairs[i]
        h, w = p.lr.shape
        y, x = int(rng.integers(0, h - tile + 1)), int(rng.integers(0, w - tile + 1))
        xs.append(p.lr[y : y + tile, x : x + tile])
        hr = p.hr[y * scale : (y + tile) * scale, x * scale : (x + tile) * scale].double()
        outs = torch.stack([r[i][y * scale : (y + tile) * scale, x * scale : (x + tile) * scale] for r in tiles.outs])
        mse = ((outs.double() - hr) ** 2).mean((1, 2))
        ys.append(-10 * torch.log10(mse.clamp_min(1e-10)))
        ws.append(float(mse[-1]) / image_mse[i])
    return torch.stack(xs)[:, None].float(), torch.stack(ys).float(), torch.tensor(ws).float()


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    x = torch.rot90(x, k % 4, (2, 3))
    return x.flip(-1) if k >= 4 else x


def grid_tiles(lr: torch.Tensor, grid) -> torch.Tensor:
    """A (h, w) LR plane cut on the router's ``grid`` into (tiles, 1, th, tw), the largest core's
    size; cores a pixel shorter padded by replication."""
    th, tw = max(t.h for t in grid.tiles), max(t.w for t in grid.tiles)
    cores = [lr[None, None, t.y0 : t.y0 + t.h, t.x0 : t.x0 + t.w] for t in grid.tiles]
    return torch.cat([F.pad(c, (0, tw - c.shape[-1], 0, th - c.shape[-2]), mode="replicate") for c in cores])


def train(net: TileNet, data: tuple, steps: int, batch: int, seed: int, weighted: bool) -> list[float]:
    xs, ys, ws = data
    ws = ws.clamp(0.05, 20) if weighted else torch.ones_like(ws)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), 2e-3, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    for step in range(steps):
        idx = torch.randint(0, len(xs), (batch,), generator=g)
        k = int(torch.randint(0, 8, (1,), generator=g))
        pred = net(dihedral(xs[idx], k))
        target = ys[idx]
        # what routing needs is each route's quality relative to the others: fit the levels and,
        # with equal weight, the differences from bicubic (route 0). The solver weighs a tile by
        # its squared error (it minimises the frame's), where a dB off costs in proportion to the
        # tile's error: ``--weighted`` weights each tile by its error over its image's mean.
        w = ws[idx][:, None]
        loss = ((F.smooth_l1_loss(pred, target, reduction="none")
                 + F.smooth_l1_loss(pred[:, 1:] - pred[:, :1], target[:, 1:] - target[:, :1], reduction="none").sum(1, keepdim=True) / (pred.shape[1] - 1)
                 ) * w).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return losses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="arm-plain-wide")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--tile", type=int, help="LR tile side (default: the router's)")
    ap.add_argument("--train-images", type=int, default=22)
    ap.add_argument("--samples", type=int, default=20000, help="random training tiles")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weighted", action="store_true", help="weight tiles by their squared error (see train)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.time()
    s = Study(args.model, args.scale, default_folder("val"), args.tile, default_folder("train"), args.train_images)
    print(f"routes run on val and {len(s.fit.pairs)} training images: {time.time() - t0:.0f} s")
    data = random_tiles(s.fit, args.scale, s.tile, args.samples, np.random.default_rng(args.seed))
    net = TileNet(len(s.macs), args.width)
    t1 = time.time()
    losses = train(net, data, args.steps, args.batch, args.seed, args.weighted)
    print(f"trained {args.steps} steps in {time.time() - t1:.0f} s; loss {np.mean(losses[:100]):.3f} -> "
          f"{np.mean(losses[-100:]):.3f}")
    net.eval()
    with torch.no_grad():
        # (routes, tiles) per image, on the router's grid of that image
        learned_db = [net(grid_tiles(p.lr, t[3])).double().numpy().T for p, t in zip(s.pairs, s.tiles)]
    learned = [10 ** (-db / 10) for db in learned_db]
    fitted = s.table_on(EDGE)
    # how well each predictor ranks the top route's gain over the next width on val tiles
    true = s.val.true_psnr
    cnn = np.concatenate(learned_db, 1)
    table = np.concatenate([-10 * np.log10(m) for m in fitted], 1)
    gain = lambda p: p[-1] - p[-2]
    corr = {k: float(np.corrcoef(gain(v), gain(true))[0, 1]) for k, v in (("cnn", cnn), ("table", table))}
    macs_per_tile = sum(m.weight.numel() * (s.tile // 2**i) ** 2
                        for i, m in enumerate(m for m in net.body if isinstance(m, nn.Conv2d)))
    print(f"\n{args.model} x{args.scale}: full network {s.full:.3f} dB; {s.tile}-px tiles; CNN {sum(p.numel() for p in net.parameters())} "
          f"parameters, {macs_per_tile / (s.tile * args.scale) ** 2:.0f} MACs per output pixel "
          f"(full network {s.macs[-1]:.0f}); correlation of predicted with true gain of the top width over the next, "
          f"val tiles: CNN {corr['cnn']:.3f}, edge table fitted on train {corr['table']:.3f}\n")
    print("| predictor | within 0.05 dB at | dB vs full at budget 0.3 / 0.5 / 0.6 |")
    print("| --- | --- | --- |")
    rows = [("shipped Edge-to-PSNR table (built on the val tiles)", s.shipped()),
            ("edge-score table fitted on the training images", fitted),
            ("small CNN on the LR tile, trained on the training images", learned),
            ("oracle (true per-tile error)", s.oracle())]
    for label, pred in rows:
        print(f"| {label} | {s.score(pred)} |")


if __name__ == "__main__":
    main()
