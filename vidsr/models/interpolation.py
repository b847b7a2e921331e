"""Integer-scale interpolation (bicubic, Lanczos-3) as separable polyphase convolutions in torch.

For an integer scale ``s`` every output pixel falls at one of ``s`` fixed sub-pixel phases of the
input grid, so upscaling is ``s`` small 1-D filters per axis: one conv per axis that produces the
phases as channels, then an interleave. This runs on tiles and whole frames alike, on any torch
device, in fp32 or fp16, and is exactly tileable (edge pixels are replicated, as in torch's own
bicubic), which is why the networks use it for their residual base and the ARM router for its
interpolation branch. Bicubic is Keys' kernel with a = -0.5 (MATLAB, PIL); ``tests`` check it
against PIL.
"""

from __future__ import annotations

import functools
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

KERNELS = ("bicubic", "lanczos")


def _keys_cubic(x: float, a: float = -0.5) -> float:
    x = abs(x)
    if x < 1:
        return (a + 2) * x**3 - (a + 3) * x**2 + 1
    if x < 2:
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return 0.0


def _lanczos3(x: float) -> float:
    if x == 0:
        return 1.0
    if abs(x) >= 3:
        return 0.0
    px = math.pi * x
    return 3 * math.sin(px) * math.sin(px / 3) / (px * px)


_KERNEL_FN = {"bicubic": (_keys_cubic, 2), "lanczos": (_lanczos3, 3)}


@functools.lru_cache(maxsize=None)
def phase_weights(kernel: str, scale: int) -> tuple[tuple[float, ...], ...]:
    """Taps per output phase: ``scale`` rows of ``2 * radius + 1`` weights, each row summing to 1.

    Output pixel ``i * scale + p`` has its centre at input coordinate ``i + (p + 0.5) / scale - 0.5``;
    row ``p`` weights the inputs ``i - radius .. i + radius``.
    """
    if kernel not in _KERNEL_FN:
        raise ValueError(f"unknown interpolation kernel {kernel!r}; choose from {KERNELS}")
    fn, radius = _KERNEL_FN[kernel]
    rows = []
    for p in range(scale):
        offset = (p + 0.5) / scale - 0.5
        w = [fn(offset - k) for k in range(-radius, radius + 1)]
        total = sum(w)
        rows.append(tuple(v / total for v in w))
    return tuple(rows)


def kernel_radius(kernel: str) -> int:
    """Input pixels of context each side that an output pixel depends on."""
    return _KERNEL_FN[kernel][1]


def _filter_bank(kernel: str, scale: int, device, dtype) -> torch.Tensor:
    w = torch.tensor(phase_weights(kernel, scale), dtype=torch.float32)
    return w.to(device=device, dtype=dtype)  # (scale, taps)


def upscale(x: torch.Tensor, scale: int, kernel: str = "bicubic") -> torch.Tensor:
    """Upscale ``x`` of shape (N, C, H, W) by an integer ``scale``; returns (N, C, H*s, W*s)."""
    if scale == 1:
        return x
    n, c, h, w = x.shape
    bank = _filter_bank(kernel, scale, x.device, x.dtype)
    r = (bank.shape[1] - 1) // 2
    y = x.reshape(n * c, 1, h, w)
    # Width: s phases as channels, then interleave them into columns.
    y = F.pad(y, (r, r, 0, 0), mode="replicate")
    y = F.conv2d(y, bank.view(scale, 1, 1, -1))  # (nc, s, h, w)
    y = y.permute(0, 2, 3, 1).reshape(n * c, 1, h, w * scale)
    # Height: the same with the filter turned upright.
    y = F.pad(y, (0, 0, r, r), mode="replicate")
    y = F.conv2d(y, bank.view(scale, 1, -1, 1))  # (nc, s, h, w*s)
    y = y.permute(0, 2, 1, 3).reshape(n, c, h * scale, w * scale)
    return y


def downscale(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic downscale (the degradation the networks are trained to invert).

    torch's antialiased path uses a = -0.5 with the kernel stretched by ``scale``, like MATLAB's
    imresize and PIL, so LR images made here match the usual SR benchmarks.
    """
    h, w = x.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"size {w}x{h} is not a multiple of {scale}")
    return F.interpolate(x, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)


def interpolation_ms(x: torch.Tensor, scale: int) -> float:
    """Milliseconds of one interpolation pass over ``x``, warm (the first pass over a new size
    costs several times more, and a cold figure would keep the budget from ever buying a tile)."""
    upscale(x, scale)
    t0 = time.perf_counter()
    upscale(x, scale)
    return (time.perf_counter() - t0) * 1000


class Interpolation(nn.Module):
    """Interpolation as an upscaler (``--model bicubic|lanczos``): no weights, one route."""

    def __init__(self, scale: int, kernel: str = "bicubic"):
        super().__init__()
        self.scale = scale
        self.kernel = kernel

    def forward(self, x, route=None):
        return upscale(x, self.scale, self.kernel)
