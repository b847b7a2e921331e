"""Validation: PSNR-Y / SSIM of a model on whole images, next to bicubic in the same run."""

from __future__ import annotations

import torch

from ..metrics import psnr, ssim
from ..models.interpolation import upscale
from .data import Pair, quantize8


@torch.inference_mode()
def upscale_image(run, lr: torch.Tensor, tile: int = 256, context: int = 16) -> torch.Tensor:
    """``run`` on a (h, w) plane, in overlapping tiles to bound memory; 8-bit rounded output."""
    from ..tiling import TileGrid

    x = lr[None, None]
    grid = TileGrid(x.shape[-2], x.shape[-1], tile, context)
    out = None
    for i in range(len(grid)):
        y = run(grid.extract(x, [i]))
        if out is None:
            scale = y.shape[-1] // grid.win_w
            out = grid.new_output(x, scale)
        grid.place(out, [i], y, scale)
    return quantize8(out[0, 0])


def evaluate(run, pairs: list[Pair], scale: int, with_ssim: bool = False) -> dict:
    """Mean PSNR-Y (and SSIM) of ``run`` over ``pairs``, with bicubic on the same pairs."""
    rows = []
    for p in pairs:
        out = upscale_image(run, p.lr)
        bic = quantize8(upscale(p.lr[None, None], scale)[0, 0])
        row = {"image": p.name, "psnr_y": psnr(out, p.hr, scale), "bicubic_psnr_y": psnr(bic, p.hr, scale)}
        if with_ssim:
            row["ssim"] = ssim(out, p.hr, scale)
            row["bicubic_ssim"] = ssim(bic, p.hr, scale)
        rows.append(row)
    keys = [k for k in rows[0] if k != "image"]
    summary = {k: sum(r[k] for r in rows) / len(rows) for k in keys}
    summary["gain_db"] = summary["psnr_y"] - summary["bicubic_psnr_y"]
    summary["images"] = rows
    return summary


# The cost at which routed models are compared when a frame-rate target or a budget below 1 asks
# for one. Full-network PSNR says nothing about how well a router trades quality for cost, and a
# fraction of each model's own cost favours the dearest model, so every model of a scale gets the
# same MACs: 28,000 per input pixel, about what a 2-core CPU affords per frame at a few fps on 360p
# input (x2: 7,000 per output pixel, x4: 1,750); a model cheaper than that runs full.
ROUTED_MACS_PER_INPUT_PIXEL = 28_000


def routed_reference(descriptor) -> tuple[float, float]:
    """(MACs per output pixel, budget) at which ``descriptor``'s model is compared under its router."""
    macs = ROUTED_MACS_PER_INPUT_PIXEL / descriptor.scale**2
    return macs, min(1.0, macs / descriptor.full_route.macs_per_pixel)


def evaluate_routed(upscaler, pairs: list[Pair], budget: float) -> tuple[float, int]:
    """(mean PSNR-Y, tile side) of ``upscaler`` under its own router at ``budget`` (a fraction of
    full-network MACs), run through the engine as the CLI runs it (its default tiles)."""
    from ..budget import MacBudget
    from ..engine import Engine
    from ..routing import build_router

    engine = Engine(upscaler, router=build_router(upscaler))
    scale = upscaler.scale
    values = [psnr(quantize8(engine.upscale(p.lr[None, None], MacBudget(budget))[0][0, 0]), p.hr, scale) for p in pairs]
    return sum(values) / len(values), engine.tile


def routed_validation(upscaler, pairs: list[Pair]) -> dict:
    """The manifest's ``validation.routed``: PSNR-Y under the model's router at the reference cost."""
    macs, budget = routed_reference(upscaler.descriptor)
    value, tile = evaluate_routed(upscaler, pairs, budget)
    return {"macs_per_pixel": round(macs), "budget": round(budget, 4), "psnr_y": round(value, 4), "tile": tile}
