"""The plain baseline: a stack of 3x3 convs with ReLU and a pixel shuffle, residual over bicubic.

With 6 hidden convs of 32 channels (~57K parameters at x2) trained for 10-15 minutes on a 2-core
CPU this is the quality floor the issue sets for our networks; it ships so the quality benchmark
can measure every route against it in the same run.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from .interpolate import upscale
from .wdsr import he_init, zero_init


class PlainSR(nn.Module):
    def __init__(self, scale: int, channels: int = 32, convs: int = 6, in_channels: int = 1):
        super().__init__()
        self.scale = scale
        layers = [nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(convs):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        he_init(*(m for m in layers if isinstance(m, nn.Conv2d)))
        layers.append(nn.Conv2d(channels, in_channels * scale * scale, 3, padding=1))
        zero_init(layers[-1])
        self.body = nn.Sequential(*layers)

    def forward(self, x, route=None):
        return upscale(x, self.scale) + F.pixel_shuffle(self.body(x), self.scale)
