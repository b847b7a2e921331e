"""BSRN (Blueprint Separable Residual Network) for luma super-resolution.

Full BSRN is 64 channels x 8 blocks; BSRN-S 48 x 5. Ours works on one plane and predicts a
residual over bicubic (so the network only learns the detail interpolation misses). The feature
extractor is separate so PCSR can put per-pixel heads on it instead of the pixel-shuffle upsampler.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import BSConv, CCA, ESA
from .interpolation import upscale
from .wdsr import zero_init


class ESDB(nn.Module):
    """Efficient separable distillation block: three distil/refine stages, fuse, ESA + CCA."""

    def __init__(self, channels: int):
        super().__init__()
        c, d = channels, channels // 2
        self.distill = nn.ModuleList(nn.Conv2d(c, d, 1) for _ in range(3))
        self.refine = nn.ModuleList(BSConv(c, c) for _ in range(3))
        self.last = BSConv(c, d)
        self.fuse = nn.Conv2d(4 * d, c, 1)
        self.esa = ESA(c, max(c // 4, 8))
        self.cca = CCA(c)

    def forward(self, x):
        parts = []
        h = x
        for distill, refine in zip(self.distill, self.refine):
            parts.append(F.gelu(distill(h)))
            h = F.gelu(refine(h) + h)
        parts.append(F.gelu(self.last(h)))
        y = self.fuse(torch.cat(parts, dim=1))
        return self.cca(self.esa(y)) + x


class BSRNFeatures(nn.Module):
    """BSRN without its upsampler: LR plane(s) -> LR feature map of ``channels``."""

    def __init__(self, in_channels: int = 1, channels: int = 48, blocks: int = 5):
        super().__init__()
        self.head = BSConv(in_channels, channels)
        self.blocks = nn.ModuleList(ESDB(channels) for _ in range(blocks))
        self.merge = nn.Conv2d(channels * blocks, channels, 1)
        self.smooth = BSConv(channels, channels)
        self.channels = channels

    def forward(self, x):
        feat = self.head(x)
        h, outs = feat, []
        for block in self.blocks:
            h = block(h)
            outs.append(h)
        return self.smooth(F.gelu(self.merge(torch.cat(outs, dim=1)))) + feat


class BSRN(nn.Module):
    """BSRN with a pixel-shuffle upsampler, as a residual over bicubic."""

    def __init__(self, scale: int, in_channels: int = 1, channels: int = 48, blocks: int = 5):
        super().__init__()
        self.scale = scale
        self.features = BSRNFeatures(in_channels, channels, blocks)
        self.upsample = nn.Sequential(nn.Conv2d(channels, in_channels * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
        zero_init(self.upsample[0])  # start as exactly bicubic

    def forward(self, x, route=None):
        return upscale(x, self.scale) + self.upsample(self.features(x))
