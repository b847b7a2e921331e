"""``vidsr train --sharpen``: fit the sharpened Lanczos base's prefilter (``vidsr.models.sharpen``).

Lanczos-3 of a plane is linear in it, so the best 2-D prefilter is a least-squares problem: each
filter tap's feature is Lanczos-3 of the LR plane shifted by that tap, and the target is the
source. The normal equations are summed over random pixels of every training image (closed form,
seconds), then the filter's best separable approximation (its leading singular pair, the two axes
averaged, scaled to sum to 1) is what ships. Training images are downscaled first as the networks'
are (``--predownscale``), and the gain table comes from the validation patches the routed models'
Edge-to-PSNR tables come from.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..metrics import psnr
from ..models import weights
from ..models.interpolation import upscale
from ..models.sharpen import LABEL, TAPS, SharpBase, separable_filter
from ..routing.edge import EdgePSNRTable
from .data import Pair, load_pairs, quantize8
from .trainer import ARM_TABLE_PATCH, edge_psnr_table  # the gain table is made as the routed models' tables

PIXELS_PER_IMAGE = 300_000  # random target pixels per training image in the normal equations


def _shifted_lanczos(lr: torch.Tensor, scale: int, taps: int) -> torch.Tensor:
    """(taps * taps, H*s, W*s): Lanczos-3 of ``lr`` shifted by each 2-D tap (row-major), edges
    replicated. Shifting the LR by one pixel shifts its upscale by ``scale``."""
    r = taps // 2
    h, w = lr.shape
    up = upscale(F.pad(lr[None, None], (r, r, r, r), mode="replicate"), scale, "lanczos")[0, 0]
    return torch.stack([up[scale * i : scale * (i + h), scale * j : scale * (j + w)]
                        for i in range(taps) for j in range(taps)])


def fit_taps(pairs: list[Pair], scale: int, taps: int = TAPS, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(separable taps, the full 2-D filter's singular values): the least-squares 2-D prefilter
    for Lanczos-3 at ``scale`` over ``pairs``, reduced to one row."""
    n = taps * taps
    normal = torch.zeros(n, n, dtype=torch.float64)
    target = torch.zeros(n, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    for p in pairs:
        feats = _shifted_lanczos(p.lr, scale, taps).reshape(n, -1)
        idx = torch.randint(0, feats.shape[1], (min(PIXELS_PER_IMAGE, feats.shape[1]),), generator=g)
        x, y = feats[:, idx].double(), p.hr.flatten()[idx].double()
        normal += x @ x.T
        target += x @ y
    full = torch.linalg.solve(normal + 1e-9 * torch.eye(n, dtype=torch.float64), target).reshape(taps, taps)
    u, sv, v = torch.linalg.svd(full)
    rows, cols = u[:, 0], v[0]
    row = (rows / rows.sum() + cols / cols.sum()) / 2  # both axes alike: the downscale was
    return (row / row.sum()).float(), sv.float()


def sharp_output(lr: torch.Tensor, scale: int, taps: torch.Tensor) -> torch.Tensor:
    """What the video base makes of an 8-bit LR plane (H, W) in [0, 1], as its two-pass form does:
    prefiltered, rounded to 8 bits, Lanczos-3 (torch's, which swscale's matches to within rounding;
    the folded pass the video uses skips the rounding and agrees to within it)."""
    pre = quantize8(separable_filter(lr * 255, taps) / 255)
    return upscale(pre[None, None], scale, "lanczos")[0, 0].clamp(0, 1)


def gain_table(pairs: list[Pair], scale: int, taps: torch.Tensor, patch: int = ARM_TABLE_PATCH) -> EdgePSNRTable:
    """Bicubic's and the base's PSNR per edge-score bin of every ``patch`` LR cell of ``pairs``."""
    outputs = {"bicubic": lambda lr: upscale(lr[None, None], scale, "bicubic")[0, 0].clamp(0, 1),
               LABEL: lambda lr: sharp_output(lr, scale, taps)}
    return edge_psnr_table(pairs, scale, outputs, patch)


def fit(train_dir: Path, val_dir: Path, scale: int, out: Path, predownscale: int = 2) -> dict:
    """Fit the base for ``scale``, write ``out/sharp-x<scale>.safetensors`` and its manifest entry
    (section "bases"); returns the entry."""
    train = load_pairs(train_dir, scale, predownscale)
    val = load_pairs(val_dir, scale)
    taps, singular = fit_taps(train, scale)
    base = SharpBase(scale, taps, gain_table(val, scale, taps))
    scores = {k: [] for k in ("bicubic", "lanczos", LABEL)}
    for p in val:
        scores["bicubic"].append(psnr(upscale(p.lr[None, None], scale, "bicubic")[0, 0].clamp(0, 1), p.hr, scale))
        scores["lanczos"].append(psnr(upscale(p.lr[None, None], scale, "lanczos")[0, 0].clamp(0, 1), p.hr, scale))
        scores[LABEL].append(psnr(sharp_output(p.lr, scale, taps), p.hr, scale))
    out.mkdir(parents=True, exist_ok=True)
    file = f"{LABEL}-x{scale}.safetensors"
    sha = weights.save(out / file, base.to_tensors())
    mean = {k: round(sum(v) / len(v), 4) for k, v in scores.items()}
    entry = {
        "name": LABEL, "scale": scale, "file": file, "sha256": sha, "taps": len(taps),
        "training": {"data": f"{Path(train_dir).name}/ ({len(train)} images, downscaled x{predownscale} first)",
                     "second_singular_value_share": round(float(singular[1] / singular[0]), 5)},
        "validation": {"data": f"{Path(val_dir).name}/ ({len(val)} images)", "psnr_y": mean[LABEL],
                       "lanczos_psnr_y": mean["lanczos"], "bicubic_psnr_y": mean["bicubic"]},
    }
    others = [e for e in weights.read_manifest(out, "bases") if e["scale"] != scale]
    weights.write_manifest(out, others + [entry], "bases")
    return entry
