"""Colour for frames that are not decoded YUV video (still images, VapourSynth clips).

RGB <-> Y'CbCr is BT.601 studio range, the luma the networks are trained on
(``vidsr.metrics.rgb_to_luma``); ``upscale_colour`` sends Y' through the engine and everything
else through Lanczos-3, for images and the VapourSynth filter alike. Tensors are (N, C, H, W) in
[0, 1], any device and dtype."""

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


def upscale_colour(upscale_luma, x: torch.Tensor, scale: int, rgb: bool, full_range_luma: bool = False):
    """Frames that are not decoded video (still images, VapourSynth clips): (1, C, H, W) float in
    [0, 1] -> ((1, C, H*s, W*s), the engine's stats). ``upscale_luma`` upscales a (1, 1, H, W)
    studio-range luma plane (the engine's ``upscale`` with the frame's budget).

    ``rgb``: the first three planes are RGB, split into Y'CbCr; else plane 0 is luma (grey, or
    Y' of 4:4:4 YUV), full range 0..1 when ``full_range_luma`` (mapped to the studio range the
    networks are trained on and back). Every other plane (chroma, alpha) goes through Lanczos-3."""
    from .models.interpolation import upscale as interpolate

    return through_luma(upscale_luma, lambda planes: interpolate(planes, scale, "lanczos"), x, rgb, full_range_luma)


def through_luma(luma_fn, planes_fn, x: torch.Tensor, rgb: bool, full_range_luma: bool = False):
    """Resize a picture by sending its luma through ``luma_fn`` ((1, 1, H, W) studio-range luma ->
    (resized luma, stats)) and every other plane through ``planes_fn``; returns (picture, stats).
    ``rgb`` and ``full_range_luma`` as in ``upscale_colour``. The delivery downscaler's pictures
    take this path too."""
    from .engine import STUDIO_LO, STUDIO_SPAN

    if rgb:
        ycc = rgb_to_ycbcr(x[:, :3].clamp(0, 1))
        y, stats = luma_fn(ycc[:, :1].contiguous())
        out = ycbcr_to_rgb(torch.cat([y, planes_fn(ycc[:, 1:])], dim=1)).clamp_(0, 1)
        rest = x[:, 3:]
    else:
        luma = x[:, :1]
        if full_range_luma:
            luma = (luma * STUDIO_SPAN + STUDIO_LO).clamp_(0, 1)
        y, stats = luma_fn(luma.contiguous())
        out = (y - STUDIO_LO) / STUDIO_SPAN if full_range_luma else y
        rest = x[:, 1:]
    if rest.shape[1]:
        out = torch.cat([out, planes_fn(rest)], dim=1)
    return out, stats
