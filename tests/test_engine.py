"""The engine: tiles (merged into regions) equal an untiled run; integer planes in and out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidsr.engine import STUDIO_LO, STUDIO_SPAN, Engine
from vidsr.models import registry
from vidsr.models.base import Upscaler
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
    # WDSR-B has no unpadded form, so every tile runs padded in its window of the declared context
    engine, module = engine_for("wdsr", config={"channels": 8, "blocks": 2}, tile=8, context=1)
    engine.max_region = 1  # no merging: every tile its own window
    x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = module(x).clamp(0, 1)
    assert (engine.upscale(x)[0] - whole).abs().max() > 1e-3


@pytest.mark.parametrize("arch,config,radius", [("plain", {"channels": 8, "convs": 2}, 4), ("espcn", None, 4)])
@pytest.mark.parametrize("scale", [2, 3])
def test_unpadded_stack_gives_the_padded_nets_core_exactly(arch, config, radius, scale):
    module = randomize(registry.build_module(arch, scale, config))
    valid = module.valid_stack()
    assert valid.radius == radius
    x = torch.rand(2, 1, 19 + 2 * radius, 23 + 2 * radius, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        core = module(x)[..., radius * scale : -radius * scale, radius * scale : -radius * scale]
        assert torch.allclose(valid(x), core, atol=1e-5)


def test_unpadded_work_is_each_layers_shrunken_area():
    # 1->8 (72 MACs/px) leaves 8x8 of a 10x10 window, 8->4 (288 MACs/px) leaves 6x6
    module = registry.build_module("plain", 2, {"channels": 8, "convs": 0})
    assert module.valid_stack().padded_pixels(10, 10) == pytest.approx((72 * 64 + 288 * 36) / (72 + 288))


def test_only_plain_conv_stacks_have_an_unpadded_form():
    def up(arch, config):
        return Upscaler(registry.describe(arch, arch, 2, config), registry.build_module(arch, 2, config))

    assert up("wdsr", {"channels": 8, "blocks": 1}).valid_stack(None) is None
    slim = up("arm-plain", {"widths": [8, 16], "convs": 2})
    assert slim.valid_stack("bicubic") is None
    assert slim.valid_stack("w8").radius == 4 and slim.valid_stack("w8").body[0].out_channels == 8
    espcn = up("arm-espcn", None)
    assert espcn.valid_stack("bicubic") is None and espcn.valid_stack("full") is not None


@pytest.mark.parametrize("tile", [3, 8])  # 3: cores 3 px from the frame edge, one short of the radius
def test_tiles_inside_the_frame_run_unpadded_same_output_less_work(monkeypatch, tile):
    """Interior regions take the unpadded stack: the output is the same (context = radius, so both
    ways are exact) and the executed MACs are those of the shrinking layers, not of whole windows."""
    engine, module = engine_for("plain", config={"channels": 8, "convs": 2}, tile=tile, context=4)
    engine.max_region = 1
    x = torch.rand(1, 1, 40, 48, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        whole = module(x).clamp(0, 1)
    out, stats = engine.upscale(x)
    assert torch.allclose(out, whole, atol=1e-5)
    monkeypatch.setattr(Upscaler, "valid_stack", lambda self, route: None)
    padded_out, padded_stats = engine.upscale(x)
    assert torch.allclose(padded_out, whole, atol=1e-5)
    assert stats.executed_macs_per_pixel < 0.85 * padded_stats.executed_macs_per_pixel


@pytest.mark.parametrize("tile,exact", [(8, True), (3, False)])
def test_plain_stacks_are_exact_whatever_the_declared_context(tile, exact):
    """Plain conv stacks run unpadded with their whole radius (frame-edge sides padded as the net
    pads them), so a declared context of 1 still merges exactly; only a region with some frame
    beyond it but less than the radius (3 px from the edge, radius 4) runs padded and shows seams."""
    engine, module = engine_for("plain", config={"channels": 8, "convs": 2}, tile=tile, context=1)
    engine.max_region = 1
    x = torch.rand(1, 1, 40, 40, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = module(x).clamp(0, 1)
    diff = (engine.upscale(x)[0] - whole).abs().max()
    assert (diff < 1e-5) if exact else (diff > 1e-3)


@pytest.mark.parametrize("edges", [(False, False, False, False), (True, False, True, False),
                                   (False, True, False, True), (True, True, True, True)])
def test_unpadded_stack_pads_frame_edge_sides_as_the_net_does(edges):
    module = randomize(registry.build_module("plain", 2, {"channels": 8, "convs": 2}))
    valid = module.valid_stack()
    r, (h, w) = valid.radius, (30, 34)
    x = torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(5))
    top, bottom, left, right = edges
    # a core that lies on the frame edge where ``edges`` says so and 4 px (= radius) inside elsewhere
    y0, y1 = (0 if top else r), (h if bottom else h - r)
    x0, x1 = (0 if left else r), (w if right else w - r)
    window = x[..., y0 - (0 if top else r) : y1 + (0 if bottom else r), x0 - (0 if left else r) : x1 + (0 if right else r)]
    with torch.no_grad():
        whole = module(x)
        core = valid(window, edges)
    assert torch.allclose(core, whole[..., y0 * 2 : y1 * 2, x0 * 2 : x1 * 2], atol=1e-5)
    wh, ww = window.shape[-2:]
    pixels = [(wh - (2 - top - bottom) * k) * (ww - (2 - left - right) * k) for k in (1, 2, 3, 4)]
    assert valid.padded_pixels(wh, ww, edges) == pytest.approx(
        (72 * pixels[0] + 576 * (pixels[1] + pixels[2]) + 288 * pixels[3]) / (72 + 576 * 2 + 288))


def test_regions_cover_each_requested_tile_once_and_stay_bounded():
    grid = TileGrid(100, 130, 16, 4)
    rng = np.random.default_rng(0)
    ids = np.nonzero(rng.random(len(grid)) < 0.6)[0]
    regions = grid.regions(ids, max_side=3)
    covered = sorted(t for g in regions for t in g.tiles)
    assert covered == sorted(ids.tolist())
    for g in regions:
        assert g.h <= 48 and g.w <= 48
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


@pytest.mark.parametrize("name, scale", [(n, s) for n in ("arm-wdsr", "pcsr-wdsr") for s in (2, 4)] + [("arm-plain", 2), ("arm-plain", 4)])
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
