"""Interpolation as an upscaler (``--model bicubic|lanczos``): no weights, one route."""

from __future__ import annotations

import torch.nn as nn

from .interpolate import upscale


class Interpolation(nn.Module):
    def __init__(self, scale: int, kernel: str = "bicubic"):
        super().__init__()
        self.scale = scale
        self.kernel = kernel

    def forward(self, x, route=None):
        return upscale(x, self.scale, self.kernel)
