"""The executor (``vidsr.executor``): runs any plan, merges without seams, counts what it ran, prices
units of work, and runs networks on the threads the frame's budget names."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vidsr.budget import MacBudget, TimeBudget
from vidsr.engine import Engine
from vidsr.executor import REGION_SIDE, UNROUTED_REGION_SIDE
from vidsr.models import registry
from vidsr.models.descriptor import Upscaler
from vidsr.routing import arm as arm_module
from vidsr.routing import build_router
from vidsr.routing.edge import EdgePSNRTable

from .synthetic import natural_ish_frame, randomize, synthetic_arm, synthetic_pcsr, textured_frame


@pytest.mark.parametrize("make", [synthetic_arm, synthetic_pcsr])
def test_calibration_measures_every_unit_the_router_buys(make):
    up = make()
    engine = Engine(up, tile=16, router=build_router(up))
    x = textured_frame(48, 64)
    units = engine.calibrate(x)
    assert set(units) == set(engine.unit_macs(48, 64))
    assert all(v > 0 for v in units.values())
    # a calibrated time budget plans without complaint and stays inside it
    _, stats = engine.upscale(x, TimeBudget(ms=sum(units.values()), unit_ms=units))
    assert 0 <= stats.budget <= 1


@pytest.mark.parametrize("bits,full_range", [(8, False), (8, True), (10, False)])
def test_arm_leaves_interpolated_tiles_to_the_integer_base_and_matches_the_float_path(bits, full_range):
    """With a base plane, ARM writes only its network tiles into a copy of it; the result equals
    converting the whole frame to float, upscaling it with the float base, and converting back."""
    up = synthetic_arm(randomized=True)
    peak = (1 << bits) - 1
    plane = np.round(textured_frame()[0, 0].numpy() * peak).astype(np.uint8 if bits == 8 else np.uint16)
    rng = np.random.default_rng(0)
    base = rng.integers(0, peak + 1, (plane.shape[0] * 2, plane.shape[1] * 2)).astype(plane.dtype)
    base_before = base.copy()
    fast = Engine(up, tile=16, router=build_router(up))
    slow = Engine(up, tile=16, router=build_router(up))
    for budget in (MacBudget(0.0), MacBudget(0.5), TimeBudget(5.0, {"interpolation": 1.0, "w8": 0.5, "w16": 1.0})):
        a, sa = fast.upscale_plane(plane, bits, full_range, budget, base=base)
        with torch.inference_mode():
            y, sb = slow.upscale(slow.to_unit(plane, bits, full_range), budget, slow.to_unit(base, bits, full_range))
            b = slow.from_unit(y[0, 0], bits, full_range)
        assert a.dtype == plane.dtype and np.array_equal(a, b), budget
        assert sa.route_shares == sb.route_shares
        grid = fast.grid(*plane.shape)
        network = grid.core_mask(np.isin(np.arange(len(grid)), sa.network_tiles), 2)
        assert np.array_equal(a[~network], base[~network])  # interpolated tiles: the base, untouched
        if budget.as_share(sa.budget) == 0.0:
            assert not network.any()
        else:
            assert network.any() and not np.array_equal(a[network], base[network])
    assert np.array_equal(base, base_before)  # the caller's base itself is not modified


def _spy_threads(monkeypatch):
    """Records torch's thread count at every network call and every edge-score (planning) call."""
    seen = {"network": [], "planning": []}
    net, scores = Upscaler.__call__, arm_module.tile_edge_scores
    monkeypatch.setattr(Upscaler, "__call__", lambda self, *a: seen["network"].append(torch.get_num_threads()) or net(self, *a))
    monkeypatch.setattr(arm_module, "tile_edge_scores",
                        lambda *a: seen["planning"].append(torch.get_num_threads()) or scores(*a))
    return seen


@pytest.fixture
def two_threads():
    """torch on two threads for the test, whatever the machine has; restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_networks_get_all_threads_and_frame_bookkeeping_one(monkeypatch, two_threads):
    seen = _spy_threads(monkeypatch)
    up = synthetic_arm()
    engine = Engine(up, tile=16, router=build_router(up))
    plane = np.round(textured_frame()[0, 0].numpy() * 255).astype(np.uint8)
    engine.upscale_plane(plane, 8, budget=MacBudget(0.5))
    assert set(seen["network"]) == {2} and set(seen["planning"]) == {1}
    assert torch.get_num_threads() == 2  # restored for whatever the process does next


def test_network_passes_run_on_the_thread_count_the_budget_names(monkeypatch, two_threads):
    """The fps controller may give a frame's networks fewer threads than torch has (a busy CPU);
    every network pass of that frame runs on them and torch's count is restored after."""
    seen = _spy_threads(monkeypatch)
    up = synthetic_arm()
    engine = Engine(up, tile=16, router=build_router(up))
    assert engine.threads.options() == (2, 1)
    x = textured_frame(48, 64)
    units = {"interpolation": 1.0, "w8": 0.5, "w16": 1.0}
    plane = np.round(x[0, 0].numpy() * 255).astype(np.uint8)
    for threads in (1, 2, None):
        budget = TimeBudget(ms=100.0, unit_ms=units, threads=threads)
        for run in (lambda: engine.upscale(x, budget), lambda: engine.upscale_plane(plane, 8, False, budget)):
            seen["network"].clear()
            run()
            assert seen["network"] and set(seen["network"]) == {threads or 2}
            assert torch.get_num_threads() == 2


@pytest.mark.parametrize("scale", [2, 4])
def test_pcsr_counts_the_macs_it_executes(scale):
    """The executed MACs a routed PCSR frame reports are what torch's FLOP counter sees it run:
    backbone and bicubic over every window, the score, each head's LR part over the windows (or
    only its own rows where it gathers them) and its per-pixel part on its pixels."""
    up = synthetic_pcsr(scale)
    x = textured_frame(48, 64)
    for budget in (0.3, 0.6, 0.8, 0.95):
        engine = Engine(up, tile=16, router=build_router(up))
        counter = FlopCounterMode(display=False)
        with counter:
            _, stats = engine.upscale(x, MacBudget(budget))
        seen = counter.get_total_flops() / 2 / (48 * 64 * scale**2)
        assert stats.executed_macs_per_pixel == pytest.approx(seen, rel=0.01), budget


def test_arm_counts_the_macs_it_executes():
    """ARM's executed MACs are its windows' (context included) plus the interpolation pass, as
    torch's FLOP counter sees them, and above the MACs counted once per pixel."""
    up = synthetic_arm()
    x = textured_frame(48, 64)
    for budget in (0.2, 0.6):
        engine = Engine(up, tile=16, router=build_router(up))
        counter = FlopCounterMode(display=False)
        with counter:
            _, stats = engine.upscale(x, MacBudget(budget))
        seen = counter.get_total_flops() / 2 / (48 * 64 * 4)
        assert stats.executed_macs_per_pixel == pytest.approx(seen, rel=0.01), budget
        assert stats.executed_macs_per_pixel > stats.macs_per_pixel


@pytest.mark.parametrize("arch,config", [("wdsr", {"channels": 8, "blocks": 2}), ("plain", {"channels": 8, "convs": 2}),
                                         ("espcn", None)])
@pytest.mark.parametrize("tile", [8, 16, 100])
def test_tiled_network_equals_untiled(arch, config, tile):
    module = randomize(registry.build_module(arch, 2, config))
    engine = Engine(Upscaler(registry.describe(arch, arch, 2, config), module), tile=tile)
    x = torch.rand(1, 1, 37, 45, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = module(x).clamp(0, 1)
    out, stats = engine.upscale(x)
    assert torch.allclose(out, whole, atol=1e-5)
    assert stats.route_shares == {"full": 1.0}


def test_too_little_context_shows_seams():
    module = randomize(registry.build_module("plain", 2, {"channels": 8, "convs": 3}))
    up = Upscaler(registry.describe("plain", "plain", 2, {"channels": 8, "convs": 3}), module)
    engine = Engine(up, tile=8, context=1, region_tiles=1)  # every tile its own window
    x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = module(x).clamp(0, 1)
    assert (engine.upscale(x)[0] - whole).abs().max() > 1e-3


@pytest.mark.parametrize("name, scale", [(n, s) for n in ("arm-wdsr", "pcsr-wdsr") for s in (2, 4)]
                         + [("arm-plain", 2), ("arm-plain", 4), ("arm-plain-wide", 2), ("arm-plain-wide", 4)])
def test_shipped_context_is_seamless(name, scale):
    """The shipped routed models declare less context than their receptive radius (context is most
    of a small tile's cost). With every 16-px tile in its own window, the output must stay within
    one 8-bit level of the untiled network on every route, and off by one on few pixels; weights
    that come to need more context fail here."""
    up = registry.load(name, scale)
    engine = Engine(up, tile=16, region_tiles=1)  # no merging: every tile pays its own seams
    x = natural_ish_frame()
    for route in [r.name for r in up.descriptor.routes[1:]]:
        with torch.no_grad():
            whole = torch.round(up(x, route).clamp(0, 1) * 255)
        out, _ = engine.upscale_uniform(x, route)
        diff = (torch.round(out * 255) - whole).abs()
        assert diff.max() <= 1, (route, float(diff.max()))
        assert (diff > 0).float().mean() < 0.01, route


def test_a_pass_with_no_routing_takes_the_larger_tiles_and_regions():
    """Budget 1 on a routed engine runs as an unrouted engine does (128-px tiles, regions up to 512
    LR px a side: a 360x640 frame in two windows, 1.02x its nominal MACs), while routed passes keep
    the router's 64-px tiles and 256-px regions (more windows, more context); a tile the user chose
    applies to both."""
    cfg = {"widths": [4, 8], "convs": 2}
    desc = registry.describe("arm-plain", "arm-plain", 2, cfg)
    names = tuple(r.name for r in desc.routes)
    psnr = torch.arange(len(names), dtype=torch.float32)[:, None] + 30  # one bin, wider is better
    table = EdgePSNRTable(torch.tensor([0.0, float("inf")]), psnr, names)
    up = Upscaler(desc, randomize(registry.build_module("arm-plain", 2, cfg)), table.to_tensors())
    x = torch.rand(1, 1, 360, 640, generator=torch.Generator().manual_seed(0))
    full = up.descriptor.macs_per_pixel
    for engine in (Engine(up, router=build_router(up)), Engine(up)):
        _, stats = engine.upscale(x, MacBudget(1.0))
        assert stats.executed_macs_per_pixel < 1.03 * full  # two windows, one seam
    routed = Engine(up, router=build_router(up))
    _, stats = routed.upscale(x, MacBudget(0.99))  # routed: small windows, each with its own context
    assert stats.executed_macs_per_pixel > 1.05 * stats.macs_per_pixel
    assert routed.tile == 64 and REGION_SIDE // 64 < UNROUTED_REGION_SIDE // 128 * 2
    chosen = Engine(up, tile=32, router=build_router(up))
    assert chosen.tile == 32 and chosen.unrouted_tile == 32


def test_an_engine_made_during_another_engines_bookkeeping_still_gets_every_thread(two_threads):
    """The dearer-model switch builds an engine mid-frame; it must not take the one thread the
    running engine's bookkeeping holds as its own count."""
    up = synthetic_arm()
    outer = Engine(up, router=build_router(up))
    with outer.threads.light():
        assert torch.get_num_threads() == 1
        inner = Engine(up, router=build_router(up))
    assert inner.threads.options() == (2, 1)
