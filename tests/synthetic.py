"""Small generated models and frames for the core's tests: random networks (so every route
computes something different) with made-up Edge-to-PSNR tables, and frames with known structure."""

from __future__ import annotations

import dataclasses

import torch

from vidsr.engine import Engine
from vidsr.models import registry
from vidsr.models.descriptor import Upscaler
from vidsr.routing import build_router
from vidsr.routing.edge import EdgePSNRTable


def randomize(module: torch.nn.Module, seed: int = 0, std: float = 0.1) -> torch.nn.Module:
    """Fresh random weights everywhere (zero-initialised output layers would hide bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return module.eval()


def synthetic_arm(scale=2, widths=(8, 16), randomized=False) -> Upscaler:
    """An ARM supernet (``randomized``: random weights, else as initialised) with a made-up
    Edge-to-PSNR table: heavier routes gain more on edgier tiles."""
    cfg = {"widths": list(widths), "blocks": 1}
    module = registry.build_module("arm-wdsr", scale, cfg)
    if randomized:
        randomize(module)
    desc = registry.describe("arm-wdsr", "arm-wdsr", scale, cfg)
    names = tuple(r.name for r in desc.routes)
    bins = 30
    edges = torch.linspace(0, 60, bins + 1)
    edges[-1] = float("inf")
    centre = (edges[:-1].clamp(max=60) + torch.linspace(0, 60, bins + 1)[1:]) / 2
    psnr = torch.stack([45 - 0.3 * centre + r * 0.02 * centre for r in range(len(names))])
    return Upscaler(desc, module, EdgePSNRTable(edges, psnr, names).to_tensors())


def named_arm_engine(name: str, offset_db: float) -> Engine:
    """A small random ARM engine named ``name`` whose Edge-to-PSNR table predicts ``offset_db`` more
    than a base table (routes bicubic, w4, w8; wider is better)."""
    cfg = {"widths": [4, 8], "blocks": 1}
    desc = dataclasses.replace(registry.describe("arm-wdsr", "arm-wdsr", 2, cfg), name=name)
    names = tuple(r.name for r in desc.routes)
    edges = torch.tensor([0.0, 10.0, 20.0, float("inf")])
    psnr = torch.stack([torch.tensor([40.0, 35.0, 30.0]) + r + offset_db for r in range(len(names))])
    up = Upscaler(desc, registry.build_module("arm-wdsr", 2, cfg), EdgePSNRTable(edges, psnr, names).to_tensors())
    return Engine(up, tile=16, router=build_router(up))


def synthetic_pcsr(scale=2) -> Upscaler:
    """A small PCSR model with random weights (light MLP [4], heavy [8, 8], classifier [4])."""
    cfg = {"channels": 8, "blocks": 1, "upsamplers": [[4], [8, 8]], "classifier": [4]}
    module = randomize(registry.build_module("pcsr-wdsr", scale, cfg), std=0.2)
    return Upscaler(registry.describe("pcsr-wdsr", "pcsr-wdsr", scale, cfg), module)


def textured_frame(h=96, w=128, seed=0) -> torch.Tensor:
    """(1, 1, h, w): left half flat, right half increasingly busy texture."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((1, 1, h, w), 0.5)
    ramp = torch.linspace(0, 0.4, w // 2)
    x[..., w // 2 :] += (torch.rand(1, 1, h, w // 2, generator=g) - 0.5) * ramp
    return x.clamp(0, 1)


def natural_ish_frame(h=80, w=112, seed=3) -> torch.Tensor:
    """Smooth gradients, hard-edged rectangles and fine texture: what the networks see in photos."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    x = 0.3 + 0.3 * yy + 0.1 * torch.sin(6 * xx + 3 * yy)
    for _ in range(12):
        y0, x0 = int(torch.randint(0, h - 8, (1,), generator=g)), int(torch.randint(0, w - 8, (1,), generator=g))
        x[y0 : y0 + 4 + y0 % 20, x0 : x0 + 4 + x0 % 24] = float(torch.rand(1, generator=g))
    x += 0.04 * torch.randn(h, w, generator=g) * (xx > 0.5)
    return x.clamp(0, 1)[None, None]
