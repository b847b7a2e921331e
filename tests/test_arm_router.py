"""ARM routing (``vidsr.routing.arm``): a route per tile from the Edge-to-PSNR table, under a MAC or
a time budget, with tile context priced and no flicker on static content."""

from __future__ import annotations

import numpy as np
import torch

from vidsr.budget import MacBudget, TimeBudget
from vidsr.engine import Engine
from vidsr.models.descriptor import Upscaler
from vidsr.models.interpolation import upscale
from vidsr.routing import arm as arm_module
from vidsr.routing import build_router
from vidsr.routing.edge import EdgePSNRTable, tile_edge_scores
from vidsr.routing.protocol import INTERPOLATION_UNIT
from vidsr.tiling import TileGrid

from .synthetic import synthetic_arm, textured_frame


def test_arm_budget_zero_is_interpolation_and_one_is_full_network():
    up = synthetic_arm()
    router = build_router(up)
    engine = Engine(up, tile=16, router=router)
    x = textured_frame()
    y0, s0 = engine.upscale(x, MacBudget(0.0))
    assert s0.route_shares["bicubic"] == 1.0
    assert torch.allclose(y0, upscale(x, 2).clamp(0, 1), atol=1e-6)
    router.reset()
    y1, s1 = engine.upscale(x, MacBudget(1.0))
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
    assert router.plan(textured_frame(), Engine(up, tile=16).grid(96, 128), MacBudget(0.99)).routes.max() < 2
    y1, s1 = Engine(up, tile=16, router=router).upscale(textured_frame(), MacBudget(1.0))
    assert s1.route_shares["w16"] == 1.0 and s1.full_network
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
        plan = router.plan(x, grid, MacBudget(budget))
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
            plan = router.plan(x, grid, MacBudget(budget))
            cap = macs[0] * px.sum() + budget * (macs[-1] - macs[0]) * px.sum()
            with_halo = macs[:, None] * (px + arm_module.halo_pixels(grid, plan.routes, len(macs)) * 4)
            if priced:
                assert with_halo[plan.routes, np.arange(len(px))].sum() <= cap * (1 + 1e-9)
            router.reset()
            executed[priced].append(engine.upscale(x, MacBudget(budget))[1].executed_macs_per_pixel)
    assert sum(executed[True]) < sum(executed[False])


def test_arm_time_budget_uses_calibrated_costs_and_prices_shared_context():
    """A tile's measured price is for a tile alone in its window; beside neighbours on its route it
    computes less of that window, and the plan counts only what it computes: it fits the budget so
    counted, and buys more tiles than pricing every tile alone would."""
    up = synthetic_arm()
    grid = Engine(up, tile=16, router=build_router(up)).grid(96, 128)
    x = textured_frame()
    unit = {"w8": 2.0, "w16": 5.0, INTERPOLATION_UNIT: 1.0}
    bought = {}
    for priced in (True, False):
        router = arm_module.ARMRouter(up, price_context=priced)
        plan = router.plan(x, grid, TimeBudget(ms=21.0, unit_ms=unit))
        alone = np.array([unit[router.names[r]] if r else 0.0 for r in plan.routes])
        computed = (grid.core_pixels + arm_module.halo_pixels(grid, plan.routes, 3)[plan.routes, np.arange(len(grid))])
        spent = (alone * (computed / grid.window_pixels() if priced else 1.0)).sum()
        assert 0 < spent <= 20.0
        bought[priced] = int((plan.routes > 0).sum())
    assert bought[True] > bought[False]


def test_arm_time_budget_charges_interpolation_only_when_it_runs():
    """With the caller's base plane (swscale's, in the pipeline) ARM runs no interpolation pass, so
    a dear interpolation unit must not eat the budget: the tiles it pays for still run. Without a
    base the pass runs and is charged."""
    up = synthetic_arm()
    engine = Engine(up, tile=16, router=build_router(up))
    x = textured_frame()
    plane = (x[0, 0] * 255).round().to(torch.uint8).numpy()
    base = np.zeros((plane.shape[0] * 2, plane.shape[1] * 2), np.uint8)
    budget = TimeBudget(ms=21.0, unit_ms={"w8": 2.0, "w16": 5.0, INTERPOLATION_UNIT: 30.0})
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
            plan = router.plan(frame, grid, MacBudget(0.35 + 0.01 * (i % 2)))  # a controller's small jitter
            if routes is not None:
                flips += int((plan.routes != routes).sum())
            routes = plan.routes
        return flips

    stable = changes(arm_module.HYSTERESIS, arm_module.DEADBAND)
    assert stable == 0
    assert changes(0.0, 0.0) > 5  # without the memory the marginal tiles toggle every frame


def test_a_plan_predicts_the_psnr_of_the_routes_it_chose():
    """The plan's predicted PSNR is the Edge-to-PSNR table's, averaged as MSE over the frame: all
    interpolation predicts the bicubic row, and more budget predicts more."""
    up = synthetic_arm()
    router = build_router(up)
    engine = Engine(up, tile=16, router=router)
    x = textured_frame()
    predicted = []
    for budget in (0.0, 0.3, 0.9):
        router.reset()
        predicted.append(engine.upscale(x, MacBudget(budget))[1].predicted_psnr)
    table = EdgePSNRTable.from_tensors(up.extras, router.names)
    grid = engine.grid(96, 128)
    mse = torch.pow(10.0, -table.lookup(tile_edge_scores(x, grid).flatten())[0] / 10).double().numpy()
    px = grid.core_pixels
    assert abs(predicted[0] - 10 * np.log10(1 / ((mse * px).sum() / px.sum()))) < 1e-6
    assert predicted[0] < predicted[1] < predicted[2]


def test_moving_tiles_beside_static_ones_do_not_swap_routes_with_the_budgets_jitter():
    """While static tiles keep their routes, only the moving ones are planned. What the frame's
    budget leaves them is a small difference of two large numbers: given that, a budget's jitter
    of a few percent moved it by tens of percent and the moving tiles swapped routes frame to frame
    (flicker around a moving subject). Their share moves with the budget's relative change instead."""
    up = synthetic_arm()
    g = torch.Generator().manual_seed(4)
    x = torch.full((1, 1, 96, 128), 0.5)
    texture = (torch.rand(1, 1, 96, 128, generator=g) - 0.5) * torch.linspace(0.05, 0.45, 128)
    inner = torch.zeros(96, 128, dtype=torch.bool)
    for y0 in range(0, 96, 16):
        for x0 in range(0, 128, 16):
            inner[y0 + 1:y0 + 15, x0 + 1:x0 + 15] = True  # each tile's ring stays 0.5
    x = torch.where(inner, x + texture, x)
    moving = torch.zeros(96, 128, dtype=torch.bool)
    moving[80:] = True  # the bottom row of tiles changes every frame
    router = arm_module.ARMRouter(up, price_context=False)  # the context's own rounds aside
    grid = Engine(up, tile=16, router=router).grid(96, 128)
    bottom = np.arange(len(grid)) >= len(grid) - grid.cols
    flips, routes = 0, None
    for i in range(12):
        # inverted about 0.5 on odd frames: every tile's edge score (|Laplacian|) stays exactly the
        # same, so only the budget can move a route
        frame = torch.where(moving & torch.tensor(i % 2 == 1), 1.0 - x, x)
        plan = router.plan(frame, grid, MacBudget(0.6 + 0.02 * (i % 2)))  # a controller's jitter
        if routes is not None:
            assert (plan.routes[~bottom] == routes[~bottom]).all()  # static tiles are kept
            flips += int((plan.routes[bottom] != routes[bottom]).sum())
        routes = plan.routes
    assert 0 < (routes[bottom] > 0).sum() < bottom.sum()  # the moving row is routed, not all one way
    assert flips == 0


def test_moving_tiles_with_near_equal_routes_keep_their_route_from_frame_to_frame(monkeypatch):
    """A moving subject's tiles are re-planned every frame, and their still background changes with
    each route swap: every re-planned tile values its previous route by HYSTERESIS, so the tiles at
    the budget's margin, whose edge scores move by a hair with the content, do not toggle."""
    up = synthetic_arm()
    x = textured_frame(seed=7)
    noise = torch.Generator().manual_seed(9)

    def flips(hysteresis):
        monkeypatch.setattr(arm_module, "HYSTERESIS", hysteresis)
        router = build_router(up)
        grid = Engine(up, tile=16, router=router).grid(96, 128)
        routes, n = None, 0
        for i in range(12):
            # every pixel changes (inverted about 0.5 on odd frames: no tile is static), and a hair of
            # noise moves each tile's edge score a little
            frame = x if i % 2 == 0 else 1.0 - x
            frame = (frame + (torch.rand(x.shape, generator=noise) - 0.5) * 4 / 255).clamp(0, 1)
            plan = router.plan(frame, grid, MacBudget(0.35))
            if routes is not None:
                n += int((plan.routes != routes).sum())
            routes = plan.routes
        return n

    shipped = arm_module.HYSTERESIS
    assert flips(0.0) > 5  # without it the marginal tiles toggle
    assert flips(shipped) <= 1


def test_a_budget_that_affords_no_tile_plans_interpolation_without_solving(monkeypatch):
    """Below every tile's cheapest network route priced at its core alone (its least possible
    price) no plan buys a tile: the router says so without running the solver (a frame the encoder
    left no time still paid a few milliseconds of solves). Above that bound the plans are the
    solver's, and at every budget they are the ones the solver gives."""
    up = synthetic_arm()
    x = textured_frame(seed=5)
    unit = {"w8": 2.0, "w16": 5.0, INTERPOLATION_UNIT: 0.0}
    grid = Engine(up, tile=16, router=build_router(up)).grid(96, 128)
    least = 2.0 * grid.core_pixels.min() / grid.window_pixels()
    for priced in (True, False):
        for ms in (0.0, 0.5 * least, 0.99 * least, 1.01 * least, 3.0, 21.0):
            plans = {}
            for skip in (True, False):
                router = arm_module.ARMRouter(up, price_context=priced)
                if not skip:
                    monkeypatch.setattr(router, "_nothing_affordable", lambda *a: False)
                plans[skip] = router.plan(x, grid, TimeBudget(ms=ms, unit_ms=unit), has_base=True).routes
            assert np.array_equal(plans[True], plans[False])
            bound = least if priced else 2.0
            if ms < bound:
                assert (plans[True] == 0).all()

    calls = []
    monkeypatch.setattr(arm_module, "solve", lambda *a: calls.append(1) or np.zeros(a[0].shape[1], dtype=np.int64))
    router = arm_module.ARMRouter(up)
    plan = router.plan(x, grid, TimeBudget(ms=0.9 * least, unit_ms=unit), has_base=True)
    assert (plan.routes == 0).all() and not calls
    router.plan(x, grid, TimeBudget(ms=21.0, unit_ms=unit), has_base=True)
    assert calls  # with a budget that buys tiles the solver runs


def test_the_uniform_plan_is_the_best_predicted_route_that_fits_on_every_tile():
    """What a switch of models is judged on: the best route that fits everywhere under the budget's
    uniform allowance, None when none does; planning it leaves the router's memory as it was."""
    from .synthetic import named_arm_engine

    engine = named_arm_engine("m", 0.0)
    x = torch.rand(1, 1, 48, 64, generator=torch.Generator().manual_seed(1))
    grid, router = engine.grid(48, 64), engine.router
    prices = {"w4": 1.0, "w8": 2.0, "uniform w4": 8.0, "uniform w8": 16.0, "interpolation": 0.1}
    names = [router.names[int(p.routes[0])] if p is not None else None
             for p in (router.uniform_plan(x, grid, TimeBudget(ms, prices)) for ms in (20.0, 10.0, 5.0))]
    assert names == ["w8", "w4", None]
    assert router.uniform_plan(x, grid, TimeBudget(5.0, prices, margin_ms=3.0)) is not None  # the uniform allowance
    assert router._frames == 0 and router._previous is None
