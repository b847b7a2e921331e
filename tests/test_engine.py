"""The engine (``vidsr.engine``): integer planes in and out in the networks' luma range, tiny frames,
typed budgets, a router's plan or the full network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidsr.budget import MacBudget
from vidsr.engine import STUDIO_LO, STUDIO_SPAN, Engine
from vidsr.models import registry
from vidsr.models.descriptor import Upscaler

from .synthetic import randomize


def engine_for(arch, scale=2, config=None, **kw):
    module = randomize(registry.build_module(arch, scale, config))
    return Engine(Upscaler(registry.describe(arch, arch, scale, config), module), **kw), module


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


@pytest.mark.parametrize("budget", [0.5, 1, None, "0.5"])
def test_a_budget_must_say_what_it_is(budget):
    """A bare number could be a share or milliseconds: the engine takes only typed budgets."""
    engine, _ = engine_for("plain", config={"channels": 4, "convs": 1})
    with pytest.raises(TypeError, match="MacBudget or a TimeBudget"):
        engine.upscale(torch.rand(1, 1, 8, 8), budget)
    with pytest.raises(TypeError, match="MacBudget or a TimeBudget"):
        engine.upscale_plane(np.zeros((8, 8), np.uint8), budget=budget)


def test_one_route_everywhere_is_that_route_of_the_model():
    """``upscale_uniform``: a width of a supernet on every tile is that width's network on the frame."""
    module = randomize(registry.build_module("arm-plain", 2, {"widths": [4, 8], "convs": 2}))
    up = Upscaler(registry.describe("arm-plain", "arm-plain", 2, {"widths": [4, 8], "convs": 2}), module)
    engine = Engine(up, tile=16)
    x = torch.rand(1, 1, 40, 52, generator=torch.Generator().manual_seed(4))
    for route in ("bicubic", "w4", "w8"):
        out, stats = engine.upscale_uniform(x, route)
        with torch.no_grad():
            assert torch.allclose(out, module(x, route).clamp(0, 1), atol=1e-5)
        assert stats.route_shares == {r: float(r == route) for r in ("bicubic", "w4", "w8")}  # every route, in order
        assert stats.macs_per_pixel == up.descriptor.route(route).macs_per_pixel
        assert stats.full_network == (route == "w8")  # a narrower width everywhere is not the full network
    assert engine.upscale_uniform(x, "w8")[1].budget == 1.0 == engine.upscale(x, MacBudget(1.0))[1].budget
