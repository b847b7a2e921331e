"""Quality measures as SR papers report them: PSNR and SSIM on BT.601 luma, borders cropped.

Luma is ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for RGB in [0, 1] (studio range, /255 here so
Y is in [16/255, 235/255]). That is also the plane the networks work on, since video arrives as YUV.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def rgb_to_luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 or float in [0, 1] -> (H, W) float32 BT.601 studio-range Y in [0, 1]."""
    x = rgb.astype(np.float32)
    if rgb.dtype == np.uint8:
        x /= 255.0
    y = 16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]
    return (y / 255.0).astype(np.float32)


def _as_tensor(a) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a, dtype=np.float64)) if not torch.is_tensor(a) else a.double()
    return t.reshape(t.shape[-2:])


def psnr(a, b, crop: int = 0) -> float:
    """PSNR in dB between two single planes in [0, 1], ``crop`` pixels dropped at each border."""
    a, b = _as_tensor(a), _as_tensor(b)
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    mse = torch.mean((a - b) ** 2).item()
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def ssim(a, b, crop: int = 0) -> float:
    """SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03) on planes in
    [0, 1], computed on 0..255 values as the SR literature does."""
    a, b = _as_tensor(a) * 255, _as_tensor(b) * 255
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5**2))
    g = g / g.sum()
    win = (g[:, None] * g[None, :])[None, None]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = a[None, None], b[None, None]

    def blur(t):
        return F.conv2d(t, win)  # 'valid' window, as in the reference implementation

    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())
