"""PCSR: a BSRN feature backbone, a pixel-level classifier and MLP upsamplers of different sizes.

Every HR pixel is produced by one MLP ("upsampler") from the LR feature nearest to it plus its
sub-pixel position and cell size (LIIF-style), as a residual over bicubic. A small MLP classifier
scores, per HR pixel, which upsampler it needs; the router (``vidsr.routing.pcsr``) turns those
scores into a choice, and ``render`` runs each upsampler only on the pixels gathered for it.

One change from the published heads, with identical maths: the first layer of each MLP is split
into its feature part, computed once per LR pixel as a 1x1 conv (all ``s*s`` HR pixels that take
that LR pixel as nearest share it), and its position part, a bias per sub-pixel phase. That makes
the first layer ``s*s`` times cheaper.

Upsamplers are ordered cheapest first: route names ``light`` ... ``heavy``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .bsrn import BSRNFeatures
from .wdsr import WDSRFeatures
from .interpolate import upscale
from .wdsr import he_init, zero_init


def phase_positions(scale: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(s*s, 4) position inputs per sub-pixel phase (row-major): offset from the nearest LR pixel
    centre in LR pixels (scaled to [-1, 1)) and the cell size in LR pixels."""
    offsets = [(p + 0.5) / scale - 0.5 for p in range(scale)]
    rows = [[2 * dy, 2 * dx, 1 / scale, 1 / scale] for dy in offsets for dx in offsets]
    return torch.tensor(rows, device=device, dtype=dtype)


class PixelMLP(nn.Module):
    """An MLP over [LR features, position]; the feature half of layer 1 runs at LR. With
    ``unfold`` it reads the 3x3 LR neighbourhood of features (LIIF's feature unfolding) as a 3x3
    conv, giving the head the spatial context a pixel-shuffle conv has."""

    def __init__(self, feat_channels: int, hidden: tuple[int, ...], out: int, unfold: bool = False):
        super().__init__()
        self.project = nn.Conv2d(feat_channels, hidden[0], 3 if unfold else 1, padding=1 if unfold else 0)
        self.position = nn.Linear(4, hidden[0], bias=False)
        sizes = list(hidden) + [out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        he_init(self.project, self.position, *self.layers[:-1])
        zero_init(self.layers[-1])  # upsamplers start at bicubic, the classifier at an even split

    def phase_bias(self, scale: int, like: torch.Tensor) -> torch.Tensor:
        return self.position(phase_positions(scale, like.device, like.dtype))  # (s*s, hidden0)

    def _tail(self, h: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            h = layer(F.relu(h) if i == 0 else h)
            if i < len(self.layers) - 1:
                h = F.relu(h, inplace=True)  # a Linear output: its backward does not need it
        return h

    def dense(self, feats: torch.Tensor, scale: int) -> torch.Tensor:
        """Every HR pixel through this MLP: (N, C, h, w) -> (N, out, h*s, w*s)."""
        n, _, h, w = feats.shape
        proj = self.project(feats)  # (N, H0, h, w)
        bias = self.phase_bias(scale, proj)  # (s*s, H0) row-major phases
        # (N, h, w, 1, H0) + (s*s, H0) -> (N, h, w, s*s, H0): every LR pixel's s*s HR pixels.
        z = proj.permute(0, 2, 3, 1).unsqueeze(3) + bias
        y = self._tail(z)  # (N, h, w, s*s, out)
        out = y.shape[-1]
        y = y.reshape(n, h, w, scale, scale, out).permute(0, 5, 1, 3, 2, 4)
        return y.reshape(n, out, h * scale, w * scale)

    def gathered(self, proj_rows: torch.Tensor, lr_index: torch.Tensor, phase: torch.Tensor, bias: torch.Tensor):
        """Only the listed HR pixels: ``proj_rows`` (N*h*w, H0) is the LR projection, channel-last;
        each pixel names its LR row and its phase. Returns (K, out)."""
        return self._tail(proj_rows[lr_index] + bias[phase])


class PCSR(nn.Module):
    def __init__(
        self,
        scale: int,
        channels: int = 32,
        blocks: int = 4,
        upsamplers: tuple[tuple[int, ...], ...] = ((16, 16), (64, 64, 64)),
        classifier: tuple[int, ...] = (16,),
        in_channels: int = 1,
        backbone: str = "bsrn",
        unfold: tuple[bool, ...] = (False, True),
    ):
        super().__init__()
        if in_channels != 1:
            raise ValueError("PCSR heads here predict one plane (luma)")
        self.scale = scale
        if backbone == "bsrn":
            self.backbone = BSRNFeatures(in_channels, channels, blocks)
        elif backbone == "wdsr":
            self.backbone = WDSRFeatures(channels, blocks, in_channels)
        else:
            raise ValueError(f"unknown PCSR backbone {backbone!r}")
        self.upsamplers = nn.ModuleList(PixelMLP(channels, tuple(h), 1, bool(u)) for h, u in zip(upsamplers, unfold))
        self.classifier = PixelMLP(channels, tuple(classifier), len(upsamplers))
        self.route_names = ("light", "heavy") if len(upsamplers) == 2 else tuple(f"u{i}" for i in range(len(upsamplers)))

    def route_index(self, route) -> int:
        if route is None:
            return len(self.upsamplers) - 1
        if isinstance(route, int):
            return route
        return self.route_names.index(route)

    def forward(self, x, route=None):
        """Dense inference: every pixel through one upsampler (default: the heaviest), or
        ``route="soft"``: the classifier-probability-weighted sum used in stage-1 training."""
        if route == "soft":
            return self.soft(x)[0]
        if route == "bicubic":
            return upscale(x, self.scale)
        return upscale(x, self.scale) + self.upsamplers[self.route_index(route)].dense(self.backbone(x), self.scale)

    def soft(self, x):
        """(output, probabilities): every upsampler on every pixel, weighted by the classifier."""
        feats = self.backbone(x)
        probs = self.probabilities(feats)
        outs = torch.stack([u.dense(feats, self.scale) for u in self.upsamplers], dim=1)  # (N, M, 1, H, W)
        return upscale(x, self.scale) + (probs.unsqueeze(2) * outs).sum(dim=1), probs

    def probabilities(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, M, H, W) softmax over upsamplers for every HR pixel."""
        return torch.softmax(self.classifier.dense(feats, self.scale), dim=1)

    def render(self, x: torch.Tensor, feats: torch.Tensor, choice: torch.Tensor) -> torch.Tensor:
        """HR output where pixel (n, Y, X) comes from upsampler ``choice[n, Y, X]``; each upsampler
        runs only on the pixels gathered for it."""
        s = self.scale
        n, _, h, w = feats.shape
        out = upscale(x, s)
        flat = out.view(-1)  # (N*H*W), one plane
        choice = choice.reshape(-1)
        for j, up in enumerate(self.upsamplers):
            sel = torch.nonzero(choice == j).squeeze(1)
            if sel.numel() == 0:
                continue
            # selected HR pixel -> (its LR row in N*h*w, its phase in s*s), for the selected pixels
            # only: the same maths over every HR pixel of the batch held five int64 HR-size arrays
            # (46 MB for one merged 268-px window at x4)
            b, rem = sel // (h * s * w * s), sel % (h * s * w * s)
            yy, xx = rem // (w * s), rem % (w * s)
            lr_row = (b * h + yy // s) * w + xx // s
            phase = (yy % s) * s + xx % s
            proj = up.project(feats).permute(0, 2, 3, 1).reshape(n * h * w, -1)
            flat[sel] += up.gathered(proj, lr_row, phase, up.phase_bias(s, proj)).squeeze(1)
        return out
