"""RGB <-> Y'CbCr for RGB inputs (still images, VapourSynth RGB clips): BT.601 studio range, the
luma the networks are trained on (``vidsr.metrics.rgb_to_luma``). Y' goes through the engine,
Cb/Cr through interpolation. Tensors are (N, 3, H, W) in [0, 1], any device and dtype."""

from __future__ import annotations

import torch

# RGB in [0, 1] -> Y' 16..235, Cb/Cr 16..240, as fractions of 255.
RGB_TO_YCBCR = torch.tensor([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]],
                            dtype=torch.float64) / 255.0
YCBCR_OFFSET = torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64) / 255.0
YCBCR_TO_RGB = torch.linalg.inv(RGB_TO_YCBCR)


def _apply(matrix: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", matrix.to(t.device, t.dtype), t)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    return _apply(RGB_TO_YCBCR, rgb) + YCBCR_OFFSET.to(rgb.device, rgb.dtype).view(1, 3, 1, 1)


def ycbcr_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    return _apply(YCBCR_TO_RGB, ycc - YCBCR_OFFSET.to(ycc.device, ycc.dtype).view(1, 3, 1, 1))
