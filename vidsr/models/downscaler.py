"""The learned luma downscaler of delivery (``vidsr downscale --mode fast``).

The low-resolution frame is the antialiased bicubic downscale the upscalers were trained to invert,
plus a residual a small network predicts from the high-resolution frame: the frame's s x s pixel
blocks become channels at low resolution (``pixel_unshuffle``), three 3x3 convolutions look at
them, one channel comes out. Trained with the client's upscaler frozen and a codec stand-in in the
loop (``vidsr.delivery.training``), the residual puts in the detail that upscaler restores best
and a codec keeps. Its last layer starts at zero, so an untrained downscaler is the bicubic one.

A side that is not a multiple of the scale is padded (edges replicated) to the next multiple, so
no source pixel is dropped (video pads to even low-resolution sides); the delivery tag names the
source's size and the upscaler crops back to it (``vidsr.delivery.tags``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .interpolation import downscale
from .wdsr import he_init, zero_init


def pad_to_multiple(x: torch.Tensor, scale: int) -> torch.Tensor:
    """(N, C, H, W) with the bottom and right edges replicated up to multiples of ``scale``."""
    h, w = x.shape[-2:]
    ph, pw = -h % scale, -w % scale
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def lr_size(height: int, width: int, scale: int, even: bool = False) -> tuple[int, int]:
    """The low-resolution (height, width) of a frame: every source pixel kept (sides rounded up);
    ``even``: rounded up to even sides, as 4:2:0 video needs them (an odd side would force 4:4:4,
    which many players cannot decode)."""
    h, w = -(-height // scale), -(-width // scale)
    return (h + h % 2, w + w % 2) if even else (h, w)


def bicubic_downscale(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The antialiased bicubic downscale of any size (padded as above)."""
    return downscale(pad_to_multiple(hr, scale), scale)


class LearnedDownscaler(nn.Module):
    def __init__(self, scale: int, channels: int = 32, convs: int = 3):
        super().__init__()
        if convs < 2:
            raise ValueError("a learned downscaler needs at least 2 convolutions")
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(scale * scale, channels, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(convs - 2):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(channels, 1, 3, padding=1))
        he_init(*(m for m in layers[:-1] if isinstance(m, nn.Conv2d)))
        zero_init(layers[-1])
        self.body = nn.Sequential(*layers)

    def forward(self, hr: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) luma in [0, 1] -> (N, 1, ceil(H/s), ceil(W/s)), not yet rounded or clamped."""
        x = pad_to_multiple(hr, self.scale)
        return downscale(x, self.scale) + self.body(F.pixel_unshuffle(x, self.scale))
