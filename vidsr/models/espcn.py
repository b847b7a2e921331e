"""A very cheap ESPCN-class network for CPU real time: three convs at LR resolution and a pixel
shuffle, as a residual over bicubic. At x2 it costs under 1K MACs per output pixel (BSRN-S: ~32K).

Routes ``bicubic`` and ``full`` let the ARM router drive it (architecture ``arm-espcn``): per tile,
the network or interpolation, from an Edge-to-PSNR table. It is far cheaper than a supernet's
narrowest width for a similar gain, so it is what a budget near real time on a CPU can buy."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from .interpolation import upscale
from .wdsr import he_init, zero_init


class ESPCN(nn.Module):
    def __init__(self, scale: int, channels: int = 16, in_channels: int = 1):
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, channels, 5, padding=2),
            nn.Tanh(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.Tanh(),
            nn.Conv2d(channels, in_channels * scale * scale, 3, padding=1),
        )
        he_init(self.body[0], self.body[2])
        zero_init(self.body[-1])  # start as exactly bicubic

    def forward(self, x, route=None):
        if route == "bicubic":
            return upscale(x, self.scale)
        if route not in (None, "full"):
            raise KeyError(f"ESPCN has no route {route!r}")
        return upscale(x, self.scale) + F.pixel_shuffle(self.body(x), self.scale)
