"""Routers: the budget solver, ARM per-tile routing, PCSR per-pixel routing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from vidsr.engine import Engine, TimeBudget
from vidsr.models import registry
from vidsr.models.descriptor import Upscaler
from vidsr.routing import arm as arm_module
from vidsr.routing import build_router
from vidsr.routing.edge import EdgePSNRTable, tile_edge_scores
from vidsr.routing.solver import solve, solve_price, upper_hull

# -- solver -------------------------------------------------------------------------------------


def random_instance(rng, routes=4, items=12):
    base = np.sort(rng.random(routes)) * 10
    costs = base[:, None] * rng.uniform(0.5, 1.5, (1, items))
    costs[0] = 0.0
    values = np.sort(rng.random((routes, items)), axis=0) * rng.uniform(1, 5, (1, items))
    return costs, values


@pytest.mark.parametrize("seed", range(20))
def test_solver_never_exceeds_its_budget_and_spends_it_well(seed):
    rng = np.random.default_rng(seed)
    costs, values = random_instance(rng)
    top = costs.max(axis=0).sum()
    previous = -np.inf
    for frac in np.linspace(0, 1, 11):
        budget = frac * top
        choice = solve(costs, values, budget)
        spent = costs[choice, np.arange(costs.shape[1])].sum()
        assert spent <= budget + 1e-9
        value = values[choice, np.arange(costs.shape[1])].sum()
        assert value >= previous - 1e-9  # more budget never buys less quality
        previous = value
        # at least as good as spending the same budget on one uniform route
        for r in range(costs.shape[0]):
            if costs[r].sum() <= budget:
                assert value >= values[r].sum() - 1e-9


def test_solver_is_near_optimal_on_small_instances():
    rng = np.random.default_rng(7)
    for _ in range(30):
        costs, values = random_instance(rng, routes=3, items=5)
        budget = rng.uniform(0.2, 0.8) * costs.max(axis=0).sum()
        choice = solve(costs, values, budget)
        got = values[choice, np.arange(5)].sum()
        best = max(
            values[list(c), np.arange(5)].sum()
            for c in itertools.product(range(3), repeat=5)
            if costs[list(c), np.arange(5)].sum() <= budget
        )
        # greedy on hulls loses at most one upgrade step against the exact optimum
        assert got >= best - np.max(np.diff(np.sort(values, axis=0), axis=0)) - 1e-9


def test_upper_hull_drops_dominated_and_concave_points():
    costs = np.array([0.0, 1.0, 2.0, 3.0, 2.5])
    values = np.array([0.0, 0.9, 1.2, 3.0, 0.5])
    assert upper_hull(costs, values) == [0, 3]  # 1 and 2 lie under the segment 0 -> 3; 4 dominated
    values[1] = 1.0  # on the segment: kept, it lets a budget stop half way
    assert upper_hull(costs, values) == [0, 1, 3]


def test_price_rule_is_the_published_eta_rule():
    costs = np.array([[0.0, 0.0], [1.0, 1.0], [4.0, 4.0]])
    values = np.array([[30.0, 20.0], [31.0, 24.0], [31.5, 27.0]])
    assert solve_price(costs, values, eta=1.5).tolist() == [1, 2]
    assert solve_price(costs, values, eta=0.1).tolist() == [0, 0]


# -- ARM ----------------------------------------------------------------------------------------


def synthetic_arm(scale=2, widths=(8, 16)):
    """A random ARM supernet with a made-up Edge-to-PSNR table: heavier routes gain more on
    edgier tiles."""
    module = registry.build_module("arm-wdsr", scale, {"widths": list(widths), "blocks": 1})
    desc = registry.describe("arm-wdsr", "arm-wdsr", scale, {"widths": list(widths), "blocks": 1})
    names = tuple(r.name for r in desc.routes)
    bins = 30
    edges = torch.linspace(0, 60, bins + 1)
    edges[-1] = float("inf")
    centre = (edges[:-1].clamp(max=60) + torch.linspace(0, 60, bins + 1)[1:]) / 2
    psnr = torch.stack([45 - 0.3 * centre + r * 0.02 * centre for r in range(len(names))])
    table = EdgePSNRTable(edges, psnr, names)
    return Upscaler(desc, module, table.to_tensors())


def textured_frame(h=96, w=128, seed=0):
    """Left half flat, right half increasingly busy texture."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((1, 1, h, w), 0.5)
    ramp = torch.linspace(0, 0.4, w // 2)
    x[..., w // 2 :] += (torch.rand(1, 1, h, w // 2, generator=g) - 0.5) * ramp
    return x.clamp(0, 1)


def test_arm_budget_zero_is_interpolation_and_one_is_full_network():
    up = synthetic_arm()
    router = build_router(up)
    engine = Engine(up, tile=16, router=router)
    x = textured_frame()
    y0, s0 = engine.upscale(x, 0.0)
    assert s0.route_shares["bicubic"] == 1.0
    from vidsr.models.interpolation import upscale

    assert torch.allclose(y0, upscale(x, 2).clamp(0, 1), atol=1e-6)
    router.reset()
    y1, s1 = engine.upscale(x, 1.0)
    assert s1.route_shares["w16"] == 1.0
    full = Engine(up, tile=16, context=up.descriptor.tile.context).upscale(x)[0]
    assert torch.allclose(y1, full, atol=1e-5)


def test_budget_one_runs_the_full_network_even_where_the_table_prefers_a_cheaper_route():
    up = synthetic_arm()
    names = tuple(r.name for r in up.descriptor.routes)
    table = EdgePSNRTable.from_tensors(up.extras, names)
    flipped = EdgePSNRTable(table.edges, table.psnr.flip(0), names)  # cheaper routes predicted better
    up = Upscaler(up.descriptor, up.module, flipped.to_tensors())
    router = build_router(up)
    assert router.plan(textured_frame(), Engine(up, tile=16).grid(96, 128), 0.99).routes.max() < 2
    y1, s1 = Engine(up, tile=16, router=router).upscale(textured_frame(), 1.0)
    assert s1.route_shares == {"w16": 1.0}
    full = Engine(up, tile=16, context=up.descriptor.tile.context).upscale(textured_frame())[0]
    assert torch.allclose(y1, full, atol=1e-5)


def test_arm_spends_the_budget_on_edgy_tiles_and_stays_under_it():
    up = synthetic_arm()
    router = build_router(up)
    engine = Engine(up, tile=16, router=router)
    x = textured_frame()
    grid = engine.grid(96, 128)
    d = up.descriptor
    for budget in (0.1, 0.3, 0.6):
        router.reset()
        plan = router.plan(x, grid, budget)
        px = np.array([t.h * t.w for t in grid.tiles]) * 4
        macs = np.array([r.macs_per_pixel for r in d.routes])
        cap = macs[0] * px.sum() + budget * (macs[-1] - macs[0]) * px.sum()
        assert (macs[plan.routes] * px).sum() <= cap * (1 + 1e-9)
        scores = tile_edge_scores(x, 16).flatten().numpy()
        # tiles given a network are the edgier ones
        net = plan.routes > 0
        if net.any() and (~net).any():
            assert scores[net].mean() > scores[~net].mean()


def test_halo_pixels_price_the_sides_that_face_another_route():
    from vidsr.tiling import TileGrid

    grid = TileGrid(48, 48, tile=16, context=4)  # 3x3 tiles
    routes = np.ones(9, dtype=int)
    routes[4] = 2  # the centre on the wider route
    halo = arm_module.halo_pixels(grid, routes, 3)
    side = 4 * 16  # context x side length
    assert (halo[0] == 0).all()  # interpolation runs once over the frame: no windows
    assert halo[2, 4] == 4 * side and halo[1, 4] == 0  # the centre: four route-1 neighbours, shared windows on route 1
    assert halo[1, 1] == side and halo[2, 1] == 2 * side  # an edge tile: faces the centre, and two route-1 tiles
    assert halo[1, 0] == 0 and halo[2, 0] == 2 * side  # a corner: frame edges cost nothing


def test_arm_prices_tile_context_and_runs_less_of_it_at_the_same_budget():
    """Under a MAC budget each window's context counts: the plan fits the budget with it, and a real
    run executes fewer MACs than a plan that counts cores only."""
    up = synthetic_arm()
    x = textured_frame(seed=3)
    d = up.descriptor
    executed = {}
    for priced in (True, False):
        router = arm_module.ARMRouter(up, price_context=priced)
        engine = Engine(up, tile=16, router=router)
        grid = engine.grid(96, 128)
        px = np.array([t.h * t.w for t in grid.tiles]) * 4
        macs = np.array([r.macs_per_pixel for r in d.routes])
        executed[priced] = []
        for budget in (0.3, 0.5, 0.7):
            router.reset()
            plan = router.plan(x, grid, budget)
            cap = macs[0] * px.sum() + budget * (macs[-1] - macs[0]) * px.sum()
            with_halo = macs[:, None] * (px + arm_module.halo_pixels(grid, plan.routes, len(macs)) * 4)
            if priced:
                assert with_halo[plan.routes, np.arange(len(px))].sum() <= cap * (1 + 1e-9)
            router.reset()
            executed[priced].append(engine.upscale(x, budget)[1].executed_macs_per_pixel)
    assert sum(executed[True]) < sum(executed[False])


def test_arm_time_budget_uses_calibrated_costs():
    up = synthetic_arm()
    router = build_router(up)
    grid = Engine(up, tile=16, router=router).grid(96, 128)
    x = textured_frame()
    unit = {"w8": 2.0, "w16": 5.0, arm_module.INTERP_UNIT: 1.0}
    plan = router.plan(x, grid, TimeBudget(ms=21.0, unit_ms=unit))
    spent = sum(unit[router.names[r]] for r in plan.routes if r > 0)
    assert 0 < spent <= 20.0


def test_arm_time_budget_charges_interpolation_only_when_it_runs():
    """With the caller's base plane (swscale's, in the pipeline) ARM runs no interpolation pass, so
    a dear interpolation unit must not eat the budget: the tiles it pays for still run. Without a
    base the pass runs and is charged."""
    up = synthetic_arm()
    engine = Engine(up, tile=16, router=build_router(up))
    x = textured_frame()
    plane = (x[0, 0] * 255).round().to(torch.uint8).numpy()
    base = np.zeros((plane.shape[0] * 2, plane.shape[1] * 2), np.uint8)
    budget = TimeBudget(ms=21.0, unit_ms={"w8": 2.0, "w16": 5.0, arm_module.INTERP_UNIT: 30.0})
    _, with_base = engine.upscale_plane(plane, budget=budget, base=base)
    assert len(with_base.network_tiles) > 0
    _, without = engine.upscale_plane(plane, budget=budget)
    assert without.route_shares["bicubic"] == 1.0


def test_arm_routes_do_not_flicker_on_a_static_clip(monkeypatch):
    up = synthetic_arm()
    x = textured_frame(seed=3)
    noise = torch.Generator().manual_seed(5)

    def changes(hysteresis, deadband):
        monkeypatch.setattr(arm_module, "HYSTERESIS", hysteresis)
        monkeypatch.setattr(arm_module, "DEADBAND", deadband)
        router = build_router(up)
        grid = Engine(up, tile=16, router=router).grid(96, 128)
        routes, flips = None, 0
        for i in range(12):
            frame = (x + (torch.rand(x.shape, generator=noise) - 0.5) / 255).clamp(0, 1)  # sensor noise
            plan = router.plan(frame, grid, 0.35 + 0.01 * (i % 2))  # a controller's small jitter
            if routes is not None:
                flips += int((plan.routes != routes).sum())
            routes = plan.routes
        return flips

    stable = changes(arm_module.HYSTERESIS, arm_module.DEADBAND)
    assert stable == 0
    assert changes(0.0, 0.0) > 5  # without the memory the marginal tiles toggle every frame


def test_edge_table_lookup_returns_the_table_value():
    edges = torch.tensor([0.0, 10.0, 20.0, float("inf")])
    psnr = torch.tensor([[30.0, 25.0, 20.0], [31.0, 27.0, 23.0]])
    table = EdgePSNRTable(edges, psnr, ("bicubic", "w8"))
    got = table.lookup(torch.tensor([0.0, 9.9, 10.0, 15.0, 20.0, 500.0]))
    assert got.tolist() == [[30, 30, 25, 25, 20, 20], [31, 31, 27, 27, 23, 23]]


def test_edge_table_fit_bins_and_fills_gaps():
    scores = torch.tensor([1.0, 1.5, 9.0, 9.5])
    psnrs = torch.tensor([[40.0, 42.0, 30.0, 32.0]])
    table = EdgePSNRTable.fit(scores, psnrs, ("r",), bins=4)
    assert table.lookup(torch.tensor([1.2]))[0, 0] == pytest.approx(41.0)
    assert table.lookup(torch.tensor([9.2]))[0, 0] == pytest.approx(31.0)
    mid = table.lookup(torch.tensor([5.0]))[0, 0].item()
    assert 31.0 < mid < 41.0  # an empty bin between two filled ones is interpolated


def test_edge_score_is_mean_absolute_laplacian_on_0_255():
    x = torch.zeros(1, 1, 8, 8)
    x[..., 4, 4] = 1.0 / 255  # one grey level up in the middle of the left-top 8x8 tile
    s = tile_edge_scores(x, 8)
    # |Laplacian| is 4 at the centre and 1 at its 4 neighbours: 8 over 64 pixels
    assert s.item() == pytest.approx(8 / 64)


def test_laplacian_equals_the_3x3_kernel_with_replicated_edges():
    from vidsr.routing.edge import laplacian_abs

    x = torch.rand(2, 1, 13, 17, generator=torch.Generator().manual_seed(0))
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    reference = torch.nn.functional.conv2d(torch.nn.functional.pad(x * 255, (1, 1, 1, 1), mode="replicate"), kernel).abs()
    assert torch.allclose(laplacian_abs(x), reference, atol=1e-3)


# -- PCSR ---------------------------------------------------------------------------------------

from vidsr.routing.pcsr import adm_choice, k_rule_choice, kth_largest, refine, top_indices  # noqa: E402


def synthetic_pcsr(scale=2):
    cfg = {"channels": 8, "blocks": 1, "upsamplers": [[4], [8, 8]], "classifier": [4]}
    module = registry.build_module("pcsr-wdsr", scale, cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return Upscaler(registry.describe("pcsr-wdsr", "pcsr-wdsr", scale, cfg), module)


def test_pcsr_budget_ends_are_interpolation_and_full_network():
    up = synthetic_pcsr()
    engine = Engine(up, tile=16, router=build_router(up))
    x = textured_frame(48, 64)
    from vidsr.models.interpolation import upscale

    y0, s0 = engine.upscale(x, 0.0)
    assert s0.route_shares["bicubic"] == 1.0
    assert torch.allclose(y0, upscale(x, 2).clamp(0, 1), atol=1e-6)
    y1, s1 = engine.upscale(x, 1.0)
    assert s1.route_shares["heavy"] == 1.0
    with torch.no_grad():
        dense = up.module(x, "heavy").clamp(0, 1)
    assert torch.allclose(y1, dense, atol=1e-4)


@pytest.mark.parametrize("scale", [2, 4])
def test_pcsr_refines_by_default_only_at_x4(scale):
    # the published 3x3 refinement blurs across 1.5 LR pixels at x2 (measured: up to -1.6 dB on val)
    up = synthetic_pcsr(scale)
    engine = Engine(up, tile=16, router=build_router(up))
    _, stats = engine.upscale(textured_frame(48, 64), 0.8)
    assert 0 < stats.route_shares["heavy"] < 1
    assert (stats.counts["refined_px"] > 0) == (scale == 4)


def unrefined_pcsr_engine():
    up = synthetic_pcsr()
    router = build_router(up)
    router.refinement = False
    return up, Engine(up, tile=16, router=router)


@pytest.mark.parametrize("budget", [0.2, 0.5, 0.7, 0.9])
def test_pcsr_stays_under_budget_and_gives_heavy_to_likely_pixels(budget):
    _, engine = unrefined_pcsr_engine()
    _, stats = engine.upscale(textured_frame(48, 64), budget)
    assert stats.budget <= budget + 1e-6  # the fraction of full-network MACs actually bought
    assert stats.budget >= budget - 0.1  # and not far below it


@pytest.mark.parametrize("budget", [0.3, 0.7])
def test_pcsr_routed_pixels_equal_the_dense_output_of_their_route(budget):
    """Routed tiles run merged into rectangles (neighbours share their context); every output pixel
    must still be exactly what its route gives on the whole frame, and the pixels that only the
    heavy upsampler explains are at least the heavy share the router reports."""
    from vidsr.models.interpolation import upscale

    up, engine = unrefined_pcsr_engine()
    x = textured_frame(48, 80)
    y, stats = engine.upscale(x, budget)
    with torch.no_grad():
        routes = torch.stack([upscale(x, 2), up.module(x, "light"), up.module(x, "heavy")]).clamp(0, 1)
    match = (routes - y).abs() < 1e-4
    assert match.any(dim=0).all()
    only_heavy = (match[2] & ~match[1] & ~match[0]).float().mean().item()
    assert only_heavy >= stats.route_shares["heavy"] - 0.01
    assert stats.route_shares["bicubic"] < 1
    assert (stats.route_shares["heavy"] > 0) == (budget > 0.5)  # low budgets: some tiles light, none heavy


@pytest.mark.parametrize("scale", [2, 4])
def test_pcsr_budget_routes_whole_lr_pixels(scale):
    """Under a budget every LR pixel's s*s HR pixels take one route: no block mixes pixels that
    only the heavy head explains with pixels that only the light head (or bicubic) explains."""
    from vidsr.models.interpolation import upscale

    up = synthetic_pcsr(scale)
    router = build_router(up)
    router.refinement = False
    engine = Engine(up, tile=16, router=router)
    x = textured_frame(32, 48)
    y, stats = engine.upscale(x, 0.8)
    assert 0 < stats.route_shares["heavy"] < 1
    with torch.no_grad():
        light = torch.minimum((up.module(x, "light").clamp(0, 1) - y).abs(), (upscale(x, scale).clamp(0, 1) - y).abs())
        heavy = (up.module(x, "heavy").clamp(0, 1) - y).abs()
    only_heavy = ((heavy < 1e-4) & (light >= 1e-4))[0, 0].reshape(32, scale, 48, scale)
    only_light = ((light < 1e-4) & (heavy >= 1e-4))[0, 0].reshape(32, scale, 48, scale)
    assert only_heavy.any() and only_light.any()
    assert not (only_heavy.any(dim=(1, 3)) & only_light.any(dim=(1, 3))).any()


@pytest.mark.parametrize("scale", [2, 4])
def test_pcsr_counts_the_macs_it_executes(scale):
    """The executed MACs a routed PCSR frame reports are what torch's FLOP counter sees it run:
    backbone and bicubic over every window, the score, each head's LR part over the windows (or
    only its own rows where it gathers them) and its per-pixel part on its pixels."""
    from torch.utils.flop_counter import FlopCounterMode

    up = synthetic_pcsr(scale)
    x = textured_frame(48, 64)
    for budget in (0.3, 0.6, 0.8, 0.95):
        engine = Engine(up, tile=16, router=build_router(up))
        counter = FlopCounterMode(display=False)
        with counter:
            _, stats = engine.upscale(x, budget)
        seen = counter.get_total_flops() / 2 / (48 * 64 * scale**2)
        assert stats.executed_macs_per_pixel == pytest.approx(seen, rel=0.01), budget


@pytest.mark.parametrize("mode", ["k", "adm"])
def test_pcsr_mode_set_after_construction_runs_as_that_mode(mode):
    """The CLI builds the router and then sets ``--pcsr-mode`` on it; everything that depends on
    the mode (per-HR-pixel choice for the published rules, what the classifier costs) must follow."""
    from vidsr.routing.pcsr import PCSRRouter

    up = synthetic_pcsr(4)
    x = textured_frame(32, 48)
    late = build_router(up)
    late.mode, late.k = mode, 0.5
    outputs = []
    for router in (late, PCSRRouter(up, mode=mode, k=0.5)):
        y, stats = Engine(up, tile=16, router=router).upscale(x, 0.8)
        outputs.append((y, stats.route_shares, stats.macs_per_pixel))
    assert torch.equal(outputs[0][0], outputs[1][0])
    assert outputs[0][1:] == outputs[1][1:]


def test_adm_is_deterministic_and_splits_modes():
    g = torch.Generator().manual_seed(0)
    p = torch.cat([torch.rand(500, generator=g) * 0.2, 0.8 + torch.rand(300, generator=g) * 0.2])
    a, b = adm_choice(p), adm_choice(p.clone())
    assert torch.equal(a, b)
    assert a[:500].sum() == 0 and a[500:].sum() == 300


def test_k_rule_moves_pixels_to_the_light_upsampler_as_k_grows():
    probs = torch.tensor([[0.3, 0.45, 0.6], [0.7, 0.55, 0.4]])  # (light, heavy) x pixels
    costs = np.array([1.0, 3.0])
    assert k_rule_choice(probs, costs, 0).tolist() == [1, 1, 0]
    assert k_rule_choice(probs, costs, 1).tolist() == [0, 0, 0]


def test_refinement_changes_only_light_pixels_next_to_heavy_ones():
    g = torch.Generator().manual_seed(1)
    out = torch.rand(1, 1, 8, 8, generator=g)
    choice = torch.full((8, 8), -1)
    choice[2:6, 2:6] = 0  # light block
    choice[3, 3] = 1  # one heavy pixel inside it
    refined, n = refine(out, choice)
    changed = (refined != out)[0, 0]
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[2:5, 2:5] = True
    expected[3, 3] = False  # the heavy pixel itself stays
    assert torch.equal(changed, expected) and n == 8
    mean = out[0, 0, 1:4, 1:4].mean()
    assert torch.isclose(refined[0, 0, 2, 2], mean)
    # at the frame's edge the mean replicates the border, as an average pool over a padded frame does
    choice[0, 0], choice[0, 1] = 1, 0
    refined, _ = refine(out, choice)
    pooled = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(out, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    assert torch.isclose(refined[0, 0, 0, 1], pooled[0, 0, 0, 1])


def test_pcsr_routes_do_not_flicker_on_a_static_clip():
    up = synthetic_pcsr()
    router = build_router(up)
    engine = Engine(up, tile=16, router=router)
    x = textured_frame(48, 64)
    noise = torch.Generator().manual_seed(2)
    outs = []
    for i in range(6):
        frame = (x + (torch.rand(x.shape, generator=noise) - 0.5) / 255).clamp(0, 1)
        _, stats = engine.upscale(frame, 0.8 + 0.02 * (i % 2))  # the controller's jitter
        outs.append(stats.route_shares["heavy"])
    assert len(set(outs)) == 1  # the same heavy share every frame


@pytest.mark.parametrize("make", [synthetic_arm, synthetic_pcsr])
def test_calibration_measures_every_unit_the_router_buys(make):
    up = make()
    router = build_router(up)
    engine = Engine(up, tile=16, router=router)
    x = textured_frame(48, 64)
    units = router.calibrate(engine, x)
    assert set(units) == set(router.unit_macs(engine.grid(48, 64)))
    assert all(v > 0 for v in units.values())
    # a calibrated time budget plans without complaint and stays inside it
    _, stats = engine.upscale(x, TimeBudget(ms=sum(units.values()), unit_ms=units))
    assert 0 <= stats.budget <= 1


@pytest.mark.parametrize("bits,full_range", [(8, False), (8, True), (10, False)])
def test_arm_leaves_interpolated_tiles_to_the_integer_base_and_matches_the_float_path(bits, full_range):
    """With a base plane, ARM writes only its network tiles into a copy of it; the result equals
    the path that converts the whole frame to float and back."""
    from .test_models import randomize

    up = synthetic_arm()
    randomize(up.module)
    up = Upscaler(up.descriptor, up.module, up.extras)
    peak = (1 << bits) - 1
    plane = np.round(textured_frame()[0, 0].numpy() * peak).astype(np.uint8 if bits == 8 else np.uint16)
    rng = np.random.default_rng(0)
    base = rng.integers(0, peak + 1, (plane.shape[0] * 2, plane.shape[1] * 2)).astype(plane.dtype)
    base_before = base.copy()
    fast = Engine(up, tile=16, router=build_router(up))
    slow = Engine(up, tile=16, router=build_router(up))
    slow.router.fills_from_base = False
    for budget in (0.0, 0.5, TimeBudget(5.0, {"interpolation": 1.0, "w8": 0.5, "w16": 1.0})):
        a, sa = fast.upscale_plane(plane, bits, full_range, budget, base=base)
        b, sb = slow.upscale_plane(plane, bits, full_range, budget, base=base)
        assert a.dtype == plane.dtype and np.array_equal(a, b), budget
        assert sa.route_shares == sb.route_shares
        network = fast.grid(*plane.shape).core_mask(np.isin(np.arange(len(fast.grid(*plane.shape))), sa.network_tiles), 2)
        assert np.array_equal(a[~network], base[~network])  # interpolated tiles: the base, untouched
        if budget == 0.0:
            assert not network.any()
        else:
            assert network.any() and not np.array_equal(a[network], base[network])
    assert np.array_equal(base, base_before)  # the caller's base itself is not modified


def test_networks_get_all_threads_and_frame_bookkeeping_one(monkeypatch):
    up = synthetic_arm()
    engine = Engine(up, tile=16, router=build_router(up))
    seen = {"network": set(), "planning": set()}
    net, scores = Upscaler.__call__, arm_module.tile_edge_scores
    monkeypatch.setattr(Upscaler, "__call__", lambda self, *a: seen["network"].add(torch.get_num_threads()) or net(self, *a))
    monkeypatch.setattr(arm_module, "tile_edge_scores", lambda *a: seen["planning"].add(torch.get_num_threads()) or scores(*a))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        engine.threads = 2
        plane = np.round(textured_frame()[0, 0].numpy() * 255).astype(np.uint8)
        engine.upscale_plane(plane, 8, budget=0.5)
        assert seen == {"network": {2}, "planning": {1}}
        assert torch.get_num_threads() == 2  # restored for whatever the process does next
    finally:
        torch.set_num_threads(before)


# -- the routing benchmark's oracle bound --------------------------------------------------------


def test_oracle_routing_picks_each_tiles_best_route_within_budget():
    """The oracle bound in ``vidsr bench routing``: the cheap route is exact on the left half and
    poor on the right, the dear route is slightly off everywhere. With just enough budget to upgrade
    the right half, the oracle upgrades only there and beats both routes used alone; more budget
    buys nothing (the dear route is worse on the left); at budget 0 it is the cheap route. Edge
    tiles smaller than a full tile count by their real size."""
    from vidsr.bench.routing import oracle_psnr, oracle_tiles
    from vidsr.metrics import psnr
    from vidsr.train.data import Pair

    g = torch.Generator().manual_seed(0)
    scale, tile = 2, 4
    hr = torch.rand(36, 44, generator=g)  # 8-px HR tiles: partial tiles at the right and bottom
    cheap, dear = hr.clone(), hr + 0.01 * torch.randn(hr.shape, generator=g)
    cheap[:, 24:] += 0.2 * torch.randn(36, 20, generator=g)
    pairs = [Pair("p", hr, torch.zeros(18, 22))]
    outputs = oracle_tiles([[cheap], [dear]], pairs, tile, scale)
    macs = [1.0, 101.0]
    p0, m0 = oracle_psnr(outputs, pairs, macs, scale, 0.0)
    assert (p0, m0) == pytest.approx((psnr(cheap, hr, scale), 1.0))
    right = 20 / 44  # share of pixels in the right-hand tiles (columns 24..43)
    mixed = torch.cat([cheap[:, :24], dear[:, 24:]], dim=1)
    for budget in (right, 1.0):
        p, m = oracle_psnr(outputs, pairs, macs, scale, budget)
        assert m == pytest.approx(1 + 100 * right)
        assert p == pytest.approx(psnr(mixed, hr, scale))
    assert p > max(p0, psnr(dear, hr, scale))
    assert oracle_psnr(outputs, pairs, macs, scale, right * 0.99)[1] < m  # never over budget


def test_routing_bench_times_the_full_network_beside_every_pass():
    """Time ratios are to the full network timed just before each of the router's passes (this
    machine's speed drifts over a sweep), and the router's outputs are the ones scored."""
    from vidsr.bench.routing import measure
    from vidsr.train.data import make_pair

    up = synthetic_arm()
    pairs = [make_pair("a", textured_frame(64, 64, seed=1)[0, 0], 2), make_pair("b", textured_frame(64, 64, seed=2)[0, 0], 2)]
    full, router = Engine(up), Engine(up, router=build_router(up))
    order = []
    for engine, name in ((full, "full"), (router, "router")):
        engine.upscale = (lambda f, name: lambda *a, **k: (order.append(name), f(*a, **k))[1])(engine.upscale, name)
    outputs = []
    res = measure(router, pairs, 2, 0.3, 2, outputs, paired=full)
    assert order == ["full", "full", "router", "router"] * 2
    assert res["paired_seconds"] > 0 and res["seconds"] > 0
    assert len(outputs) == 2 and 0 < res["macs"] < up.descriptor.full_route.macs_per_pixel
    assert "paired_seconds" not in measure(router, pairs, 2, 0.3, 1)


def test_pcsr_heavy_quota_takes_the_highest_probabilities():
    values = torch.rand(1000, generator=torch.Generator().manual_seed(3))
    for k in (1, 333, 1000):
        picked = top_indices(values, k)
        assert len(picked) == k and len(set(picked.tolist())) == k
        assert set(picked.tolist()) == set(torch.topk(values, k).indices.tolist())
    # ties at the k-th value (and context pixels at -1 below everything): exactly k, the highest first
    tied = torch.tensor([0.5] * 10 + [0.75] * 3 + [-1.0] * 5)
    picked = top_indices(tied, 5)
    assert len(set(picked.tolist())) == 5 and sorted(tied[picked].tolist()) == [0.5, 0.5, 0.75, 0.75, 0.75]


def test_kth_largest_is_exact_on_large_arrays_whatever_the_sample_sees():
    """The bracketed k-th value (large arrays) equals a full partition's, on spread values, on
    many ties at the top (saturated probabilities), and on sorted input, where a strided sample
    sees the values in order."""
    rng = np.random.default_rng(5)
    spread = rng.random(200_000).astype(np.float32)
    spread[:30_000] = -1.0  # context pixels
    saturated = np.concatenate([np.ones(90_000, np.float32), rng.random(110_000).astype(np.float32)])
    for v in (spread, saturated, np.sort(spread), np.sort(spread)[::-1].copy()):
        for k in (1, 7, 1_000, 89_999, 90_000, 90_001, 150_000, v.size):
            assert kth_largest(v, k) == np.partition(v, v.size - k)[v.size - k], k


def test_network_passes_run_on_the_thread_count_the_budget_names():
    """The fps controller may give a frame's networks fewer threads than torch has (a busy CPU);
    the engine runs every network pass of that frame on them and restores torch's count after."""
    up = synthetic_arm()
    seen = []
    runner = up.runner

    def recording(route):
        def run(tiles):
            seen.append(torch.get_num_threads())
            return runner(route)(tiles)
        return run

    up.runner = recording
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        engine = Engine(up, tile=16, router=build_router(up))
        assert engine.thread_options() == (2, 1)
        x = textured_frame(48, 64)
        units = {"interpolation": 1.0, "w8": 0.5, "w16": 1.0}
        plane = np.round(x[0, 0].numpy() * 255).astype(np.uint8)
        for threads in (1, 2, None):
            budget = TimeBudget(ms=100.0, unit_ms=units, threads=threads)
            for run in (lambda: engine.upscale(x, budget), lambda: engine.upscale_plane(plane, 8, False, budget)):
                seen.clear()
                run()
                assert seen and set(seen) == {threads or 2}
                assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_routing_bench_measures_the_asked_routed_models_at_their_scales(tmp_path, monkeypatch):
    from vidsr.bench.routing import _routed_models
    from vidsr.models import weights as weights_module

    shipped = [{"name": n, "scale": s, "architecture": n} for n, s in
               (("arm-wdsr", 2), ("arm-wdsr", 4), ("pcsr-wdsr", 2), ("plain", 2))]
    monkeypatch.setattr(registry, "shipped_models", lambda: shipped)
    weights_module.write_manifest(tmp_path, [{"name": "pcsr-wdsr", "scale": 4, "architecture": "pcsr-wdsr",
                                              "file": "candidate.safetensors"}])
    candidate = str(tmp_path / "candidate.safetensors")
    assert _routed_models(2, None) == ["arm-wdsr", "pcsr-wdsr"]  # every shipped routed one, no plain
    assert _routed_models(4, None) == ["arm-wdsr"]
    assert _routed_models(2, ["plain", "pcsr-wdsr", candidate]) == ["pcsr-wdsr"]
    assert _routed_models(4, ["pcsr-wdsr", candidate]) == [candidate]
