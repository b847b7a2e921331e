"""The sharpened Lanczos base: what a video's tiles show where the router runs no network.

Every shipped network is trained to invert the antialiased bicubic downscale, and Lanczos-3 alone
leaves most of that blur in. A linear prefilter on the low-resolution luma, fitted by least squares
on the training images so that Lanczos-3 of the prefiltered plane comes nearest the source
(``vidsr train --sharpen``), undoes much of it for the price of two 7-tap passes: on the validation
images +0.83 dB PSNR-Y over Lanczos at x2, +0.51 at x3 and +0.44 at x4, which puts it above
``arm-espcn`` and ``arm-plain``'s w8 at x2. The fitted 2-D filter is separable to within 1% (its
second singular value is under 1% of the first), so it ships as one 7-tap filter run along both
axes. swscale's Lanczos then upscales the prefiltered plane, with the prefilter folded into its
coefficients where PyAV's libswscale is at hand (``vidsr.io.folded_scale``: one pass instead of
three, and no rounding of the prefiltered plane); a torch Lanczos of the luma costs ten times more
on a CPU.

The router prices interpolated tiles from its Edge-to-PSNR table, whose interpolation row is
bicubic's. With this base under them they are better than that row says, by an amount that depends
on the tile's edge score, so each base also ships its gain over bicubic per edge-score bin, measured
on the validation patches the tables are made from, and ``corrected_table`` moves the row by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import av
import numpy as np
import torch
import torch.nn.functional as F

from ..io.folded_scale import FoldedScaler
from ..routing.edge import EdgePSNRTable

TAPS = 7
LABEL = "sharp"  # the route name a video's interpolated tiles report when this base is under them


def separable_filter(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """``taps`` (odd length) correlated along both axes of a (H, W) float plane, edges replicated:
    ``out[i] = sum_k taps[k] * x[i + k - r]``. Written as shifted adds, not a conv: a one-channel
    conv is a poor fit for oneDNN (a 5x5 one took twice as long as these two passes at 640x360)."""
    r = len(taps) // 2
    h, w = x.shape
    weights = [float(t) for t in taps]
    p = F.pad(x[None, None], (r, r, 0, 0), mode="replicate")[0, 0]
    rows = p[:, 0:w] * weights[0]
    for k in range(1, len(weights)):
        rows.add_(p[:, k : k + w], alpha=weights[k])
    p = F.pad(rows[None, None], (0, 0, r, r), mode="replicate")[0, 0]
    out = p[0:h] * weights[0]
    for k in range(1, len(weights)):
        out.add_(p[k : k + h], alpha=weights[k])
    return out


@dataclass(frozen=True)
class SharpBase:
    scale: int
    taps: torch.Tensor  # (TAPS,) float32, summing to 1
    gain: EdgePSNRTable  # routes ("bicubic", "sharp"): PSNR per edge-score bin of validation patches

    def prefilter(self, plane: np.ndarray, bits: int) -> np.ndarray:
        """An integer luma plane prefiltered, rounded and clamped to ``bits`` (same dtype). The taps
        sum to 1, so studio and full range alike keep their levels."""
        x = torch.from_numpy(np.asarray(plane, dtype=np.float32))
        peak = float((1 << bits) - 1)
        out = separable_filter(x, self.taps).round_().clamp_(0, peak).numpy()
        return out.astype(plane.dtype)

    @cached_property
    def folded(self) -> FoldedScaler | None:
        """swscale's Lanczos with the prefilter in its coefficients, or None without PyAV's libswscale."""
        return FoldedScaler.load(self.taps)

    def upscale(self, plane: np.ndarray, bits: int, width: int, height: int) -> np.ndarray:
        """An integer luma plane -> the (height, width) base at the same bits, clamped to them: in
        one folded swscale pass where it can, else ``two_pass_upscale``."""
        if self.folded is not None:
            return self.folded.scale(plane, bits, width, height)
        return self.two_pass_upscale(plane, bits, width, height)

    def two_pass_upscale(self, plane: np.ndarray, bits: int, width: int, height: int) -> np.ndarray:
        """The prefiltered plane (rounded) through swscale's Lanczos (gray16 above 8 bits: the
        filter is linear, so levels keep; the result is clamped to ``bits``)."""
        pre = self.prefilter(plane, bits)
        frame = av.VideoFrame.from_ndarray(pre, format="gray" if bits <= 8 else "gray16le")
        out = frame.reformat(width=width, height=height, interpolation="LANCZOS").to_ndarray()
        return out if bits <= 8 else np.minimum(out, (1 << bits) - 1).astype(out.dtype)

    def corrected_table(self, table: EdgePSNRTable) -> EdgePSNRTable:
        """``table`` (a routed model's) with its interpolation row raised by this base's gain over
        bicubic at each of its bins' centres (the open last bin: its lower edge plus half the bin
        before it)."""
        edges = table.edges.float()
        lower = edges[:-1]
        widths = edges[1:] - edges[:-1]
        widths[-1] = widths[-2] if len(widths) > 1 else 1.0
        centres = lower + widths / 2
        rows = self.gain.lookup(centres)
        psnr = table.psnr.clone().float()
        psnr[0] = psnr[0] + (rows[1] - rows[0])
        return EdgePSNRTable(table.edges, psnr, table.routes)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {"taps": self.taps.float(), "gain.edges": self.gain.edges.float(), "gain.psnr": self.gain.psnr.float()}

    @classmethod
    def from_tensors(cls, scale: int, tensors: dict[str, torch.Tensor]) -> "SharpBase":
        taps = tensors["taps"].float()
        if taps.ndim != 1 or len(taps) % 2 == 0:
            raise ValueError(f"prefilter taps must be one odd-length row, not shape {tuple(taps.shape)}")
        return cls(scale, taps, EdgePSNRTable(tensors["gain.edges"], tensors["gain.psnr"], ("bicubic", LABEL)))
