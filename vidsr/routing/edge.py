"""ARM's Edge-to-PSNR table: how much quality each route buys on a patch, predicted from one cheap
number, the patch's edge score.

Edge score = mean absolute 3x3 Laplacian of the patch's luma on the 0..255 scale. The table bins
edge scores of validation patches and keeps, per route, the mean PSNR of that route's output on
the patches of each bin. At run time a tile's predicted PSNR for route ``j`` is the table value at
its bin; the router spends the frame's budget on the tiles where the heavier routes gain most.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def laplacian_abs(plane: torch.Tensor) -> torch.Tensor:
    """|Laplacian| (4-neighbour, 3x3) of (N, 1, H, W) luma in [0, 1], on the 0..255 scale, edges
    replicated. Written as shifted slices, not a conv: a one-channel 3x3 conv is a poor fit for
    oneDNN, and this runs on every frame: one new plane, summed into in place (a sum of four
    slices and a scaled centre, each a temporary plane, took three times as long)."""
    p = F.pad(plane, (1, 1, 1, 1), mode="replicate")
    lap = p[..., :-2, 1:-1] + p[..., 2:, 1:-1]
    lap.add_(p[..., 1:-1, :-2]).add_(p[..., 1:-1, 2:]).add_(p[..., 1:-1, 1:-1], alpha=-4.0)
    return lap.abs_().mul_(255.0)


def tile_edge_scores(plane: torch.Tensor, tile) -> torch.Tensor:
    """Edge score of every tile of a (N, 1, H, W) plane, vectorised over the frame: ``tile`` a
    ``TileGrid`` (its cores: (N, rows, cols)) or a side in pixels (``tile`` x ``tile`` cells:
    (N, ceil(H/tile), ceil(W/tile)); partial cells at the border average what they have)."""
    lap = laplacian_abs(plane)
    if hasattr(tile, "tile_means"):
        return tile.tile_means(lap)
    return F.avg_pool2d(lap, tile, stride=tile, ceil_mode=True, count_include_pad=False)[:, 0]


@dataclass
class EdgePSNRTable:
    edges: torch.Tensor  # (bins + 1,) bin boundaries in edge score
    psnr: torch.Tensor  # (routes, bins) mean PSNR per route per bin
    routes: tuple[str, ...]

    def bin_of(self, scores: torch.Tensor) -> torch.Tensor:
        inner = self.edges[1:-1].to(scores.device, scores.dtype)
        return torch.bucketize(scores, inner, right=True)

    def lookup(self, scores: torch.Tensor) -> torch.Tensor:
        """Predicted PSNR, shape (routes, *scores.shape)."""
        table = self.psnr.to(scores.device, torch.float32)
        return table[:, self.bin_of(scores)]

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {"arm.edges": self.edges.float(), "arm.psnr": self.psnr.float()}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], routes: tuple[str, ...]) -> "EdgePSNRTable":
        psnr = tensors["arm.psnr"]
        if psnr.shape[0] != len(routes):
            raise ValueError(f"Edge-to-PSNR table has {psnr.shape[0]} routes, model has {len(routes)}")
        return cls(tensors["arm.edges"], psnr, routes)

    @classmethod
    def fit(cls, scores: torch.Tensor, psnrs: torch.Tensor, routes: tuple[str, ...], bins: int = 30) -> "EdgePSNRTable":
        """Bin ``scores`` (P,) uniformly up to their 99.5th percentile (the last bin is open) and
        average ``psnrs`` (routes, P) per bin; empty bins take the nearest filled bins' values."""
        top = float(torch.quantile(scores.float(), 0.995))
        edges = torch.linspace(0.0, max(top, 1e-3), bins + 1)
        edges[-1] = float("inf")
        table = cls(edges, torch.zeros(len(routes), bins), routes)
        idx = table.bin_of(scores.float())
        filled = torch.zeros(bins, dtype=torch.bool)
        for b in range(bins):
            sel = idx == b
            if sel.any():
                table.psnr[:, b] = psnrs[:, sel].mean(dim=1)
                filled[b] = True
        have = torch.nonzero(filled).squeeze(1)
        for b in torch.nonzero(~filled).squeeze(1).tolist():
            left, right = have[have < b], have[have > b]
            if len(left) and len(right):
                lo, hi = int(left[-1]), int(right[0])
                t = (b - lo) / (hi - lo)
                table.psnr[:, b] = (1 - t) * table.psnr[:, lo] + t * table.psnr[:, hi]
            else:
                table.psnr[:, b] = table.psnr[:, int(left[-1] if len(left) else right[0])]
        return table


def patch_psnr(out: torch.Tensor, ref: torch.Tensor, patch: int) -> torch.Tensor:
    """PSNR of every ``patch`` x ``patch`` cell of two (1, 1, H, W) planes -> (cells,)."""
    mse = F.avg_pool2d((out - ref) ** 2, patch, stride=patch)
    return (10 * torch.log10(1.0 / mse.clamp_min(1e-10))).flatten()
