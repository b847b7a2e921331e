"""A differentiable stand-in for the video codec between the downscaler and the client's upscaler.

What a block-transform codec does to a frame, in a form gradients pass: the frame (8-bit levels)
is cut into 8x8 blocks, each block's orthonormal DCT coefficients are quantised with a step
``qstep`` (a dead zone below it, as H.264's encoder rounds inter blocks down), and the blocks go
back; then the frame is rounded to 8 bits. Both roundings are straight-through: the forward pass
is the quantised frame, the backward pass the identity. So training sees detail the codec would
throw away as thrown away, while still learning where to move.

``rate`` is a smooth proxy for the bits those coefficients cost: sum over AC coefficients of
log2(1 + |c| / qstep), per pixel. A downscaler trained with it does not add detail that costs more
bits than it gives back in picture. Most frames of a video are coded against a motion-compensated
prediction from another frame, so ``inter_rate`` counts the same on the residual of a frame against
its moved predecessor: detail that aliases differently as the picture moves costs bits there that
an intra-only proxy does not see.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

BLOCK = 8
DEAD_ZONE = 1 / 6  # rounding offset of H.264's inter quantiser (1/3 for intra): coefficients round down more
# qstep in 8-bit levels: H.264 doubles it every 6 QP; 0.625 at QP 0. CRF 18-30 quantises at about
# QP 18-30, so steps of about 5 to 20 levels.
QP_LEVEL0 = 0.625


def qstep_of_qp(qp: float) -> float:
    return QP_LEVEL0 * 2 ** (qp / 6)


@functools.lru_cache(maxsize=8)
def _dct_matrix(n: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    m = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m.to(device=device, dtype=dtype)


def _blocks(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """(N, 1, H, W) -> (N, Hb, Wb, 8, 8) blocks of the frame padded (replicated) to multiples of 8."""
    h, w = x.shape[-2:]
    x = F.pad(x, (0, -w % BLOCK, 0, -h % BLOCK), mode="replicate") if (h % BLOCK or w % BLOCK) else x
    n, _, hp, wp = x.shape
    b = x.reshape(n, hp // BLOCK, BLOCK, wp // BLOCK, BLOCK).permute(0, 1, 3, 2, 4)
    return b, (h, w)


def _unblocks(b: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    n, hb, wb = b.shape[:3]
    x = b.permute(0, 1, 3, 2, 4).reshape(n, 1, hb * BLOCK, wb * BLOCK)
    return x[..., : size[0], : size[1]]


def dct(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """Blockwise orthonormal DCT of a frame in 8-bit levels: (coefficients, original size)."""
    b, size = _blocks(x)
    m = _dct_matrix(BLOCK, str(x.device), x.dtype)
    return m @ b @ m.T, size


def idct(c: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    m = _dct_matrix(BLOCK, str(c.device), c.dtype)
    return _unblocks(m.T @ c @ m, size)


def straight_through(x: torch.Tensor, rounded: torch.Tensor) -> torch.Tensor:
    """``rounded`` forward, the identity backward."""
    return x + (rounded - x).detach()


def quantise_levels(x: torch.Tensor, peak: int = 255) -> torch.Tensor:
    """Round a [0, 1] frame to integer levels (8 bits: ``peak`` 255), straight-through."""
    return straight_through(x, torch.round(x.clamp(0, 1) * peak) / peak)


def _qstep_tensor(qstep, n: int, like: torch.Tensor) -> torch.Tensor:
    q = torch.as_tensor(qstep, dtype=like.dtype, device=like.device)
    return q.reshape(-1, 1, 1, 1, 1).expand(n, 1, 1, 1, 1) if q.ndim else q


def codec(x: torch.Tensor, qstep, peak: int = 255) -> torch.Tensor:
    """What decoding an encoded (N, 1, H, W) frame in [0, 1] gives back, differentiably.
    ``qstep``: a number or one per frame of the batch, in 8-bit levels; 0 for the rounding to
    integer levels (``peak``: 255 for 8 bits) alone."""
    c, size = dct(x * 255)
    q = _qstep_tensor(qstep, x.shape[0], c)
    safe = torch.where(q > 0, q, torch.ones_like(q)) if torch.is_tensor(q) else (q or 1.0)
    kept = torch.sign(c) * torch.floor(c.abs() / safe + DEAD_ZONE) * safe
    if torch.is_tensor(q):
        kept = torch.where(q > 0, kept, c)
    elif not q:
        kept = c
    y = idct(straight_through(c, kept), size) / 255
    return quantise_levels(y, peak)


def rate(x: torch.Tensor, qstep) -> torch.Tensor:
    """Bits-per-pixel proxy of coding (N, 1, H, W) frames at ``qstep`` (per frame, shape (N,))."""
    c, _ = dct(x * 255)
    q = _qstep_tensor(qstep, x.shape[0], c).clamp_min(1e-3)
    ac = torch.ones(BLOCK, BLOCK, dtype=c.dtype, device=c.device)
    ac[0, 0] = 0  # the DC coefficient is predicted from neighbours by the codec; its cost hardly varies
    bits = torch.log2(1 + c.abs() / q) * ac
    return bits.sum(dim=(1, 2, 3, 4)) / (x.shape[-1] * x.shape[-2])


def shift(x: torch.Tensor, dy: float, dx: float) -> torch.Tensor:
    """``x`` moved by (dy, dx) pixels, sub-pixel by bilinear interpolation (edges replicated): the
    motion-compensated prediction an inter frame is coded against."""
    n, _, h, w = x.shape
    ys = torch.arange(h, dtype=x.dtype, device=x.device) - dy
    xs = torch.arange(w, dtype=x.dtype, device=x.device) - dx
    gy = (2 * ys / max(h - 1, 1) - 1).view(1, h, 1).expand(n, h, w)
    gx = (2 * xs / max(w - 1, 1) - 1).view(1, 1, w).expand(n, h, w)
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def inter_rate(current: torch.Tensor, previous: torch.Tensor, dy, dx, qstep, margin: int = 2) -> torch.Tensor:
    """Bits-per-pixel proxy of coding ``current`` as an inter frame: its residual against
    ``previous`` moved by the known motion (per frame of the batch: ``dy``, ``dx`` in pixels),
    all coefficients counted, away from the edges the motion uncovers."""
    pred = torch.stack([shift(previous[i : i + 1], float(dy[i]), float(dx[i]))[0] for i in range(len(previous))])
    residual = (current - pred)[..., margin:-margin, margin:-margin]
    c, _ = dct(residual * 255)
    q = _qstep_tensor(qstep, current.shape[0], c).clamp_min(1e-3)
    bits = torch.log2(1 + c.abs() / q)
    return bits.sum(dim=(1, 2, 3, 4)) / (residual.shape[-1] * residual.shape[-2])
