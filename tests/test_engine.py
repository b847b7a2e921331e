"""The engine: tiles (merged into regions) equal an untiled run; integer planes in and out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidsr.engine import STUDIO_LO, STUDIO_SPAN, Engine
from vidsr.models import registry
from vidsr.models.descriptor import Upscaler
from vidsr.tiling import TileGrid

from .test_models import randomize


def engine_for(arch, scale=2, config=None, **kw):
    module = randomize(registry.build_module(arch, scale, config))
    return Engine(Upscaler(registry.describe(arch, arch, scale, config), module), **kw), module


@pytest.mark.parametrize("arch,config", [("wdsr", {"channels": 8, "blocks": 2}), ("plain", {"channels": 8, "convs": 2}),
                                         ("espcn", None)])
@pytest.mark.parametrize("tile", [8, 16, 100])
def test_tiled_network_equals_untiled(arch, config, tile):
    engine, module = engine_for(arch, config=config, tile=tile)
    x = torch.rand(1, 1, 37, 45, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = module(x).clamp(0, 1)
    out, stats = engine.upscale(x)
    assert torch.allclose(out, whole, atol=1e-5)
    assert stats.route_shares == {"full": 1.0}


def test_too_little_context_shows_seams():
    engine, module = engine_for("plain", config={"channels": 8, "convs": 3}, tile=8, context=1)
    engine.max_region = 1  # no merging: every tile its own window
    x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = module(x).clamp(0, 1)
    assert (engine.upscale(x)[0] - whole).abs().max() > 1e-3


def test_regions_cover_each_requested_tile_once_and_stay_bounded():
    grid = TileGrid(100, 130, 16, 4)
    rng = np.random.default_rng(0)
    ids = np.nonzero(rng.random(len(grid)) < 0.6)[0]
    regions = grid.regions(ids, max_side=3)
    covered = sorted(t for g in regions for t in g.tiles)
    assert covered == sorted(ids.tolist())
    longest = max(max(t.h, t.w) for t in grid.tiles)
    for g in regions:
        assert g.h <= 3 * longest and g.w <= 3 * longest
        assert g.wy0 == max(0, g.y0 - 4) and g.wy1 == min(100, g.y0 + g.h + 4)
    assert len(grid.regions(range(len(grid)), max_side=100)) == 1  # everything wanted: one window


@pytest.mark.parametrize("bits,dtype", [(8, np.uint8), (10, np.uint16)])
def test_integer_planes_round_trip_through_bicubic(bits, dtype):
    engine, _ = engine_for("bicubic")
    peak = (1 << bits) - 1
    plane = np.full((20, 30), peak // 2, dtype)
    out, _ = engine.upscale_plane(plane, bits)
    assert out.dtype == dtype and out.shape == (40, 60)
    assert (out == peak // 2).all()  # a flat plane stays exactly flat


def test_full_range_planes_are_mapped_into_studio_range_for_the_network():
    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x, route=None):
            seen["min"], seen["max"] = x.min().item(), x.max().item()
            return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")

    up = Upscaler(registry.describe("bicubic", "bicubic", 2), Probe())
    engine = Engine(up)
    plane = np.array([[0, 255], [255, 0]], dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    out, _ = engine.upscale_plane(plane, 8, full_range=True)
    assert seen["min"] == pytest.approx(STUDIO_LO) and seen["max"] == pytest.approx(STUDIO_LO + STUDIO_SPAN)
    assert out.min() == 0 and out.max() == 255  # and back to full range on the way out


def test_tiny_frames_are_padded_to_the_models_minimum():
    engine, module = engine_for("bsrn-s", config={"channels": 8, "blocks": 1})
    x = torch.rand(1, 1, 9, 11)
    out, _ = engine.upscale(x)
    assert out.shape == (1, 1, 18, 22)


def natural_ish_frame(h=80, w=112, seed=3):
    """Smooth gradients, hard-edged rectangles and fine texture: what the networks see in photos."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    x = 0.3 + 0.3 * yy + 0.1 * torch.sin(6 * xx + 3 * yy)
    for _ in range(12):
        y0, x0 = int(torch.randint(0, h - 8, (1,), generator=g)), int(torch.randint(0, w - 8, (1,), generator=g))
        x[y0 : y0 + 4 + y0 % 20, x0 : x0 + 4 + x0 % 24] = float(torch.rand(1, generator=g))
    x += 0.04 * torch.randn(h, w, generator=g) * (xx > 0.5)
    return x.clamp(0, 1)[None, None]


@pytest.mark.parametrize("name, scale", [(n, s) for n in ("arm-wdsr", "pcsr-wdsr") for s in (2, 4)] + [("arm-plain", 2), ("arm-plain", 4), ("arm-plain-wide", 2), ("arm-plain-wide", 4)])
def test_shipped_context_is_seamless(name, scale):
    """The shipped routed models declare less context than their receptive radius (context is most
    of a small tile's cost). With every 16-px tile in its own window, the output must stay within
    one 8-bit level of the untiled network on every route, and off by one on few pixels; weights
    that come to need more context fail here."""
    up = registry.load(name, scale)
    engine = Engine(up, tile=16)
    engine.max_region = 1  # no merging: every tile pays its own seams
    x = natural_ish_frame()
    grid = engine.grid(*x.shape[-2:])
    for route in [r.name for r in up.descriptor.routes[1:]]:
        with torch.no_grad():
            whole = torch.round(up(x, route).clamp(0, 1) * 255)
        out = grid.new_output(x, scale)
        engine.run_tiles(x, grid, range(len(grid)), route, out)
        diff = (torch.round(out.clamp(0, 1) * 255) - whole).abs()
        assert diff.max() <= 1, (route, float(diff.max()))
        assert (diff > 0).float().mean() < 0.01, route



def test_a_pass_with_no_routing_takes_the_larger_tiles_and_regions():
    """Budget 1 on a routed engine runs as an unrouted engine does (128-px tiles, regions up to 512
    LR px a side: a 360x640 frame in two windows), while routed passes keep the router's tiles and
    256-px regions; a tile the user chose applies to both."""
    from vidsr.engine import REGION_SIDE, UNROUTED_REGION_SIDE
    from vidsr.routing import build_router
    from vidsr.routing.edge import EdgePSNRTable

    cfg = {"widths": [4, 8], "convs": 2}
    desc = registry.describe("arm-plain", "arm-plain", 2, cfg)
    names = tuple(r.name for r in desc.routes)
    psnr = torch.arange(len(names), dtype=torch.float32)[:, None] + 30  # one bin, wider is better
    table = EdgePSNRTable(torch.tensor([0.0, float("inf")]), psnr, names)
    up = Upscaler(desc, randomize(registry.build_module("arm-plain", 2, cfg)), table.to_tensors())
    routed, plain = Engine(up, router=build_router(up)), Engine(up)
    x = torch.rand(1, 1, 360, 640, generator=torch.Generator().manual_seed(0))
    for engine in (routed, plain):
        grid = engine.grid(360, 640, engine.single_tile)
        assert engine.single_tile == 128 and engine.region_limit(grid, UNROUTED_REGION_SIDE) == 4
        _, stats = engine.upscale(x, 1.0)
        assert stats.executed_macs_per_pixel < 1.03 * up.descriptor.macs_per_pixel  # two windows, one seam
    assert routed.tile == 64 and routed.region_limit(routed.grid(360, 640)) == REGION_SIDE // 64
    chosen = Engine(up, tile=32, router=build_router(up))
    assert chosen.single_tile == 32 and chosen.tile == 32
