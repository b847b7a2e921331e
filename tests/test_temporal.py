"""Video-aware compute (``vidsr.temporal``, ``ARMRouter``): unchanged tiles keep their output and
their time goes to the tiles that changed; reuse is bounded (by input change and by age); a frame
never gets less than the best fixed configuration its budget buys."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidsr.budget import MacBudget, TimeBudget
from vidsr.engine import Engine
from vidsr.routing import build_router
from vidsr.routing.protocol import uniform_unit
from vidsr.temporal import MAX_AGE, REUSE_DIFF, STILL_MAX_SKIP, StreamState

from .synthetic import synthetic_arm, textured_frame


def ran(stats) -> dict[str, float]:
    """The routes a frame ran, with their shares (its stats name every route, the others at 0)."""
    return {name: share for name, share in stats.route_shares.items() if share}


def arm_engine():
    up = synthetic_arm(randomized=True)
    return up, Engine(up, tile=16, router=build_router(up))


def moved(x: torch.Tensor, rows=slice(0, 32), cols=slice(64, 128)) -> torch.Tensor:
    """``x`` with one block of tiles changed (its texture shifted by a pixel)."""
    y = x.clone()
    y[..., rows, cols] = torch.roll(x[..., rows, cols], 1, dims=-1)
    return y


def test_unchanged_tiles_keep_their_output_and_the_changed_ones_get_the_time():
    up, engine = arm_engine()
    x = textured_frame(seed=1)
    stream = StreamState()
    budget = MacBudget(0.3)
    first, s1 = engine.upscale(x, budget, stream=stream)
    second, s2 = engine.upscale(moved(x), budget, stream=stream)
    assert "reused" not in s1.counts and s2.counts["reused"] > 0
    grid = engine.grid(*x.shape[-2:])
    changed = np.array([t.y0 < 32 and t.x0 + t.w > 64 for t in grid.tiles])
    kept = stream.age == 1  # the tiles this frame reused
    assert kept.sum() == s2.counts["reused"] and not (kept & changed).any()  # never a changed tile
    kept_px = torch.from_numpy(grid.core_mask(kept, 2))
    assert torch.equal(second[0, 0][kept_px], first[0, 0][kept_px])  # exactly the last frame's output
    # the same budget, spent on fewer tiles: the changed tiles get more than without reuse
    fresh, s3 = Engine(up, tile=16, router=build_router(up)).upscale(moved(x), budget)
    assert s2.macs_per_pixel <= s3.macs_per_pixel * (1 + 1e-6)
    assert s2.predicted_psnr >= s3.predicted_psnr - 1e-6


def test_a_change_between_the_sampled_pixels_still_makes_its_tile_run_again():
    """``reusable`` looks at every few pixels first; a change none of them sees must still count."""
    _, engine = arm_engine()
    x = textured_frame(seed=5)
    stream = StreamState()
    engine.upscale(x, MacBudget(0.4), stream=stream)
    y = x.clone()
    y[..., 1, 1] = (y[..., 1, 1] + 0.5) % 1.0  # off every sampled row and column, in the first tile
    grid = engine.grid(*x.shape[-2:])
    keep, _, _ = stream.reusable(y, grid, stream.key)
    assert not keep[0] and keep[1:].any()
    moving = torch.roll(x, 1, dims=-1)  # every tile changed: settled by the sampled pixels
    keep, _, due = stream.reusable(moving, grid, stream.key)
    assert not keep.any() and not due.any()


def test_a_static_clip_comes_out_identical_frame_after_frame():
    _, engine = arm_engine()
    x = textured_frame(seed=2)
    stream = StreamState()
    outs = [engine.upscale(x, MacBudget(0.4), stream=stream)[0] for _ in range(4)]
    assert all(torch.equal(o, outs[0]) for o in outs[1:])


def test_a_tile_drifting_slowly_is_computed_again_once_it_has_moved_past_the_bound():
    """The bound is on the change since a tile was last computed, not since the frame before: many
    small steps cannot pile up."""
    _, engine = arm_engine()
    x = textured_frame(seed=3)
    stream = StreamState()
    engine.upscale(x, MacBudget(0.5), stream=stream)
    step = REUSE_DIFF * 0.4
    reused = []
    for k in range(1, 6):
        _, stats = engine.upscale((x + k * step).clamp(0, 1), MacBudget(0.5), stream=stream)
        reused.append(stats.counts.get("reused", 0))
    assert reused[0] > 0 and reused[1] > 0  # 0.4 and 0.8 of the bound: kept
    assert reused[2] == 0  # 1.2 of the bound since they were computed: every tile runs again


def test_no_tile_is_kept_for_more_than_max_age_frames():
    _, engine = arm_engine()
    x = textured_frame(seed=4)
    stream = StreamState()
    reused, ages = [], []
    for _ in range(MAX_AGE + 3):
        reused.append(engine.upscale(x, MacBudget(0.5), stream=stream)[1].counts.get("reused", 0))
        ages.append(stream.age.copy())
    ages = np.stack(ages)
    assert reused[0] == 0 and all(r > 0 for r in reused[1:])  # a static frame keeps tiles throughout
    assert ages.max() <= MAX_AGE  # and none longer than MAX_AGE frames in a row:
    kept = ages.max(axis=0) > 0  # (interpolated tiles are never kept)
    assert kept.sum() >= len(kept) // 2
    assert ((ages[1:] == 0) & (ages[:-1] > 0)).any(axis=0)[kept].all()  # each was computed again in time


def test_a_tile_kept_from_a_poorer_frame_is_upgraded_when_the_budget_allows():
    _, engine = arm_engine()
    x = textured_frame(seed=5)
    stream = StreamState()
    _, cheap = engine.upscale(x, MacBudget(0.05), stream=stream)
    _, rich = engine.upscale(x, MacBudget(0.8), stream=stream)
    assert rich.predicted_psnr > cheap.predicted_psnr + 0.1  # bought better routes, not stuck with the old ones


def test_the_integer_path_keeps_tiles_as_the_float_path_does():
    _, engine = arm_engine()
    x = textured_frame(seed=6)
    plane = np.round(x[0, 0].numpy() * 255).astype(np.uint8)
    base = np.full((plane.shape[0] * 2, plane.shape[1] * 2), 128, np.uint8)
    stream = StreamState()
    first, _ = engine.upscale_plane(plane, budget=MacBudget(0.3), base=base, stream=stream)
    second, stats = engine.upscale_plane(plane, budget=MacBudget(0.3), base=base, stream=stream)
    assert stats.counts.get("reused", 0) > 0 and np.array_equal(first, second)


CORNER = (slice(60, 62), slice(124, 126))  # a 2x2 block at the corner of a 32-px tile in the busy half


def touched(x: torch.Tensor, k: int = 1) -> torch.Tensor:
    """``x`` with the ``CORNER`` block changed by ``k`` times four reuse bounds."""
    y = x.clone()
    y[..., CORNER[0], CORNER[1]] += k * 4 * REUSE_DIFF
    return y.clamp(0, 1)


def corner_engine() -> Engine:
    up = synthetic_arm(randomized=True)
    return Engine(up, tile=32, router=build_router(up))


def split_tile(engine, x: torch.Tensor) -> tuple[int, torch.Tensor, torch.Tensor]:
    """(the tile ``touched`` changes, its output pixels beyond the receptive radius of the change,
    those within it) as (H*2, W*2) masks."""
    grid = engine.grid(*x.shape[-2:])
    y, x0 = CORNER[0].start, CORNER[1].start
    tile = next(i for i, t in enumerate(grid.tiles) if t.y0 <= y < t.y0 + t.h and t.x0 <= x0 < t.x0 + t.w)
    t, r = grid.tiles[tile], engine.context
    in_tile = torch.zeros(x.shape[-2:], dtype=torch.bool)
    in_tile[t.y0 : t.y0 + t.h, t.x0 : t.x0 + t.w] = True
    near = torch.zeros_like(in_tile)
    near[max(0, y - r) : y + 2 + r, max(0, x0 - r) : x0 + 2 + r] = True
    up = lambda m: m.repeat_interleave(2, 0).repeat_interleave(2, 1)  # noqa: E731
    far = up(in_tile & ~near)
    assert far.sum() >= 4 * 200  # a test of something
    return tile, far, up(in_tile & near)


def corner_moves(seed: int, before: float, after: float):
    """A frame at MAC budget ``before``, then the same frame ``touched`` at ``after``, through one
    stream: (engine, stream, the touched tile, its far and near pixels, both outputs, the tile's
    route in the first frame)."""
    engine = corner_engine()
    x = textured_frame(seed=seed)
    tile, far, near = split_tile(engine, x)
    stream = StreamState()
    first, _ = engine.upscale(x, MacBudget(before), stream=stream)
    route = int(stream.routes[tile])
    second, _ = engine.upscale(touched(x), MacBudget(after), stream=stream)
    return engine, stream, tile, far, near, first[0, 0], second[0, 0], route


def test_a_tile_that_runs_again_keeps_its_still_pixels_from_a_dearer_route():
    """Something moves in a corner of a tile computed on a dear route; the frame after has less
    time, so the tile runs on a cheaper route. Its pixels beyond the network's reach of the change
    keep their output (a route swap there is shimmer the source does not have); the rest is new."""
    engine, stream, tile, far, near, first, second, dear = corner_moves(7, 0.5, 0.0)
    assert int(stream.routes[tile]) < dear  # computed again, on a cheaper route
    assert torch.equal(second[far], first[far])
    assert not torch.equal(second[near], first[near])
    fresh, _ = Engine(engine.upscaler, tile=32, router=build_router(engine.upscaler)).upscale(
        touched(textured_frame(seed=7)), MacBudget(0.0))
    assert not torch.equal(fresh[0, 0][far], first[far])  # what the tile's pixels were without it
    kept = far[::2, ::2]
    assert (stream.pixel_routes[kept] == dear).all() and (stream.pixel_age[kept] == 1).all()


def test_still_pixels_take_a_dearer_routes_output_when_their_tile_gets_one():
    engine, stream, tile, far, _, first, second, cheap = corner_moves(8, 0.02, 0.5)
    assert int(stream.routes[tile]) > cheap
    assert not torch.equal(second[far], first[far])  # upgraded, not kept
    grid = engine.grid(*stream.reference.shape[-2:])
    in_tile = torch.from_numpy(grid.core_mask(np.arange(len(grid)) == tile))
    assert (stream.pixel_routes[in_tile] == int(stream.routes[tile])).all()


def test_no_still_pixel_is_kept_for_more_than_max_age_frames():
    """A tile whose corner changes every frame runs every frame; its still pixels stay at most
    MAX_AGE frames in a row, then are computed again."""
    engine = corner_engine()
    x = textured_frame(seed=9)
    tile, far, _ = split_tile(engine, x)
    stream = StreamState()
    ages = []
    for k in range(MAX_AGE + 3):
        engine.upscale(touched(x, k % 2), MacBudget(0.5), stream=stream)
        ages.append(int(stream.pixel_age[far[::2, ::2]].max()))
    assert max(ages) == MAX_AGE and ages[MAX_AGE + 1] == 0


def test_a_still_pixel_at_its_age_limit_waits_until_its_tile_runs_as_dear_a_route():
    """A tile whose corner changes every frame runs every frame, first on a dear route, then on the
    cheapest: its still pixels keep the dear output past MAX_AGE (a refresh would swap them to the
    cheap route, a loss and a flicker) until twice MAX_AGE; a frame that runs the tile dear again
    refreshes them at once."""
    engine = corner_engine()
    x = textured_frame(seed=9)
    tile, far, _ = split_tile(engine, x)
    far_lr = far[::2, ::2]

    def run(k: int, budget: float) -> tuple[int, int]:
        engine.upscale(touched(x, k % 2), MacBudget(budget), stream=stream)
        return int(stream.pixel_age[far_lr].max()), int(stream.routes[tile])

    stream = StreamState()
    _, dear = run(0, 0.5)
    seen = [run(k, 0.0) for k in range(1, 2 * MAX_AGE + 2)]
    assert all(route < dear for _, route in seen)
    ages = [age for age, _ in seen]
    assert max(ages) == 2 * MAX_AGE and ages[2 * MAX_AGE] == 0  # waited, then refreshed at twice the limit
    assert ages[MAX_AGE] == MAX_AGE + 1

    stream = StreamState()
    run(0, 0.5)
    for k in range(1, MAX_AGE + 3):
        run(k, 0.0)
    age, route = run(MAX_AGE + 3, 0.5)
    assert route == dear and age == 0  # its route again: refreshed on it
    assert (stream.pixel_routes[far_lr] == dear).all()


def test_the_still_test_waits_while_it_finds_almost_nothing_and_resumes_when_it_finds_pixels(monkeypatch):
    """A pan (every pixel moves): the still-pixel test, which then keeps nothing, skips 1, 2, 4,
    then STILL_MAX_SKIP frames between tries; once a frame has still pixels again, the next try
    keeps them and the test runs on every frame after."""
    engine = corner_engine()
    x = textured_frame(seed=11)
    tile, far, _ = split_tile(engine, x)
    tries = []
    probe = StreamState._still_in
    monkeypatch.setattr(StreamState, "_still_in", lambda self, *a, **k: tries.append(frame) or probe(self, *a, **k))
    stream, frame = StreamState(), 0
    engine.upscale(x, MacBudget(0.5), stream=stream)
    wobble = 4 * REUSE_DIFF * (torch.arange(x.shape[-1]) % 2 * 2 - 1)  # every pixel moves past the bound
    for frame in range(1, 24):
        engine.upscale((x + wobble * (-1) ** frame).clamp(0, 1), MacBudget(0.5), stream=stream)
    assert tries == [1, 3, 6, 11, 20]
    assert stream.still_wait == STILL_MAX_SKIP
    # the picture stops; only the corner keeps changing: within the wait the test tries again, keeps
    # the touched tile's far pixels, and from then on runs every frame
    outs = {}
    for frame in range(24, 24 + STILL_MAX_SKIP + 6):
        outs[frame] = engine.upscale(touched(x, frame % 2), MacBudget(0.5), stream=stream)[0][0, 0]
    resumed = [f for f in tries if f >= 24]
    assert resumed and resumed[0] <= 24 + STILL_MAX_SKIP and stream.still_wait == 0
    last = 24 + STILL_MAX_SKIP + 5
    assert tries[-3:] == [last - 2, last - 1, last]
    assert torch.equal(outs[last][far], outs[last - 1][far])


def test_dilate_marks_every_pixel_within_the_radius_of_a_marked_one():
    from vidsr.temporal import dilate

    g = torch.Generator().manual_seed(0)
    for shape in [(37, 53), (5, 3), (1, 1), (40, 9)]:
        for r in (0, 1, 2, 7, 20):
            mask = torch.rand(shape, generator=g) > 0.95
            brute = torch.zeros(shape, dtype=torch.bool)
            for y, x in torch.nonzero(mask).tolist():
                brute[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1] = True
            assert torch.equal(dilate(mask, r), brute), (shape, r)


# unit prices where w16 on every tile costs 40 ms, twice w8's
UNIFORM_PRICES = {"interpolation": 1.0, "w8": 1.0, "w16": 2.0, uniform_unit("w8"): 20.0, uniform_unit("w16"): 40.0}


def flat_table_engine(psnr=(30.0, 33.0, 35.0)) -> Engine:
    """An engine whose table gains the same on every tile (``psnr`` per route): routing buys
    nothing but context, so one width everywhere is the best plan whenever it is affordable."""
    from vidsr.models.descriptor import Upscaler
    from vidsr.routing.edge import EdgePSNRTable

    up = synthetic_arm()
    names = tuple(r.name for r in up.descriptor.routes)
    flat = EdgePSNRTable(torch.tensor([0.0, float("inf")]), torch.tensor([[p] for p in psnr]), names)
    up = Upscaler(up.descriptor, up.module, flat.to_tensors())
    return Engine(up, tile=16, router=build_router(up))


def test_the_plan_is_never_worse_than_the_best_fixed_configuration_the_budget_buys():
    """At a time that affords one width everywhere, that is what runs, in the large windows."""
    engine, x = flat_table_engine(), textured_frame()
    _, stats = engine.upscale(x, TimeBudget(ms=45.0, unit_ms=UNIFORM_PRICES))
    assert ran(stats) == {"w16": 1.0} and stats.work == {uniform_unit("w16"): 1}
    engine.router.reset()
    _, stats = engine.upscale(x, TimeBudget(ms=25.0, unit_ms=UNIFORM_PRICES))  # w16 everywhere no longer fits
    assert stats.route_shares.get("w16", 0) < 1 and stats.predicted_psnr >= 33.0 - 1e-6  # at least w8 everywhere


def test_one_route_everywhere_may_spend_the_controllers_margin_a_routed_plan_may_not():
    """A width that runs at exactly the target frame rate: its whole-frame price is over the
    margin-reduced allowance but within the period. It runs; without the margin it would not."""
    engine, x = flat_table_engine(), textured_frame()
    _, stats = engine.upscale(x, TimeBudget(ms=39.0, unit_ms=UNIFORM_PRICES, margin_ms=1.5))
    assert ran(stats) == {"w16": 1.0}
    engine.router.reset()
    _, stats = engine.upscale(x, TimeBudget(ms=39.0, unit_ms=UNIFORM_PRICES))
    assert stats.route_shares.get("w16", 0) < 1
    engine.router.reset()
    _, stats = engine.upscale(x, TimeBudget(ms=37.0, unit_ms=UNIFORM_PRICES, margin_ms=1.5))  # beyond the margin too
    assert stats.route_shares.get("w16", 0) < 1


@pytest.mark.parametrize("order", ["sequential", "reversed"])
def test_the_vapoursynth_filter_keeps_tiles_only_for_the_frame_after_the_last_computed(order):
    """Frames asked for in order reuse; in any other order every frame is computed alone. For a
    clip whose frames differ by less than the reuse bound, the two orders' outputs differ by at
    most the network's answer to that difference (here under twice the bound on any pixel)."""
    vs = pytest.importorskip("vapoursynth")
    import vsvidsr

    from .test_vapoursynth import make_clip, planes_of

    core = vs.core
    base = make_clip(core, vs.GRAYS, length=1, width=96, height=64)
    noise = [core.std.Expr(base, f"x {k * REUSE_DIFF * 0.3} +") for k in range(4)]
    clip = core.std.Splice(noise)
    out = vsvidsr.upscale(clip, scale=2, model="arm-plain", device="cpu", tile=16, budget=0.5)
    frames = range(4) if order == "sequential" else reversed(range(4))
    got = {n: planes_of(out.get_frame(n)) for n in frames}
    alone = vsvidsr.upscale(clip, scale=2, model="arm-plain", device="cpu", tile=16, budget=0.5)
    for n in (3, 1):  # asked for out of order: computed alone
        ref = planes_of(alone.get_frame(n))
        diff = np.abs(got[n] - ref).max()
        assert diff <= (0 if order == "reversed" else 2 * REUSE_DIFF), (n, diff)


def test_one_route_everywhere_is_kept_without_solving_until_the_recheck(monkeypatch):
    """A width that ran and still fits runs again unplanned (the solve costs milliseconds a frame);
    a full plan re-decides every RECHECK_FRAMES frames, and at once when the budget no longer
    affords the width or affords a dearer one."""
    from vidsr.routing import arm

    engine, x = flat_table_engine(), textured_frame()
    solves = []
    real = arm.solve
    monkeypatch.setattr(arm, "solve", lambda *a, **k: (solves.append(1), real(*a, **k))[1])
    scored = []  # a kept frame scores no edges either (they only fed its predicted PSNR)
    real_scores = arm.tile_edge_scores
    monkeypatch.setattr(arm, "tile_edge_scores", lambda *a, **k: (scored.append(1), real_scores(*a, **k))[1])
    planned = []
    for _ in range(2 * arm.RECHECK_FRAMES + 1):
        before, before_scored = len(solves), len(scored)
        _, stats = engine.upscale(x, TimeBudget(ms=45.0, unit_ms=UNIFORM_PRICES))
        # a kept frame reports the last planned frame's prediction
        assert ran(stats) == {"w16": 1.0} and stats.predicted_psnr == pytest.approx(35.0, abs=1e-4)
        planned.append(len(solves) > before)
        assert (len(scored) > before_scored) == planned[-1]
    assert [i for i, p in enumerate(planned) if p] == [0, arm.RECHECK_FRAMES, 2 * arm.RECHECK_FRAMES]
    before = len(solves)
    _, stats = engine.upscale(x, TimeBudget(ms=25.0, unit_ms=UNIFORM_PRICES))  # w16 no longer fits
    assert len(solves) > before and ran(stats) == {"w8": 1.0}
    engine.upscale(x, TimeBudget(ms=25.0, unit_ms=UNIFORM_PRICES))
    before = len(solves)
    _, stats = engine.upscale(x, TimeBudget(ms=45.0, unit_ms=UNIFORM_PRICES))  # w16 fits again
    assert len(solves) > before and ran(stats) == {"w16": 1.0}


def test_a_routed_plan_must_beat_a_width_that_fits_by_the_routing_margin():
    """Routing runs instead of a width that fits only when the table predicts it ROUTED_MARGIN_DB
    better, unless it keeps tiles from the frame before (then its time really is less); scaled by
    the plan's network share only where that width is within the margin of the base everywhere."""
    from vidsr.routing.arm import ROUTED_MARGIN_DB

    router = flat_table_engine().router
    pixels = np.full(4, 100.0)
    mse = np.array([[1e-3] * 4, [5e-4] * 4, [3e-4] * 4])  # interpolation, w8, w16 on every tile
    budget = MacBudget(0.5)  # affords w8 everywhere, not w16
    w8 = float((mse[1] * pixels).sum())

    def choice(db_better, keeps_tiles=False, network_share=1.0):
        router.reset()
        return router._configuration(budget, mse, pixels, w8 * 10 ** (-db_better / 10), keeps_tiles, network_share)

    assert choice(ROUTED_MARGIN_DB - 0.2) == 1
    assert choice(ROUTED_MARGIN_DB + 0.2) is None
    assert choice(ROUTED_MARGIN_DB - 0.2, keeps_tiles=True) is None
    # w8 is predicted 3 dB above the base everywhere: the base's tiles lose to it too, so the whole
    # margin applies whatever share of the pixels the plan runs networks on
    assert choice(ROUTED_MARGIN_DB - 0.2, network_share=0.2) == 1
    assert choice(ROUTED_MARGIN_DB + 0.2, network_share=0.2) is None
    # a width within the margin of the base (the narrowest under the sharpened base): the margin is
    # the network tiles'. Interpolation everywhere has none to earn, and a plan with a fifth of its
    # pixels on networks a fifth of it
    mse[0] = mse[1] * 10 ** ((ROUTED_MARGIN_DB - 0.1) / 10)
    assert choice(0.05, network_share=0.0) is None
    assert choice(ROUTED_MARGIN_DB * 0.2 + 0.05, network_share=0.2) is None
    assert choice(ROUTED_MARGIN_DB * 0.2 - 0.05, network_share=0.2) == 1


@pytest.mark.parametrize("gain_db, routes", [(0.2, False), (3.0, True)])
def test_interpolation_everywhere_runs_unless_a_routed_plan_beats_it_by_its_share_of_the_margin(gain_db, routes):
    """A video frame (the caller makes the base) at a time that buys the networks on a few tiles and
    no width everywhere: the routed plan runs only if the table predicts it better than the base
    everywhere by the routing margin scaled by its network share (what the table overrates is its
    network tiles). An image's plan stands."""
    engine, x = flat_table_engine((30.0, 30.0 + gain_db, 30.0 + 2 * gain_db)), textured_frame()
    grid, budget = engine.grid(*x.shape[-2:]), TimeBudget(ms=10.0, unit_ms=UNIFORM_PRICES)
    plan = engine.router.plan(x, grid, budget, has_base=True)
    assert bool((plan.routes > 0).any()) == routes
    assert routes or plan.predicted_psnr(grid.core_pixels) == pytest.approx(30.0, abs=1e-3)
    engine.router.reset()
    assert (engine.router.plan(x, grid, budget).routes > 0).any()


@pytest.mark.parametrize("keep_over", [0.25, 0.0])
def test_a_width_that_runs_goes_on_within_the_keep_allowance(keep_over):
    """At a width's own frame rate its price is over the allowance on about half the frames: a width
    that runs goes on while priced within the budget's keep allowance (the fps controller's, within
    its debt bound), where a width that does not run yet needs to fit. A fixed budget keeps none."""
    from vidsr.routing.arm import RECHECK_FRAMES

    engine, x = flat_table_engine(), textured_frame()
    prices = {**UNIFORM_PRICES, "w8": 100.0, "w16": 200.0}  # tiles too dear to route: widths everywhere only

    def frame(ms):
        return ran(engine.upscale(x, TimeBudget(ms=ms, unit_ms=prices, keep_over=keep_over))[1])

    assert frame(44.0) == {"w16": 1.0}  # fits: runs
    # 40 ms against 36 allowed: 11% over; goes on within 25%, falls back to w8 without
    assert [frame(36.0) for _ in range(RECHECK_FRAMES + 1)] == [{"w16" if keep_over else "w8": 1.0}] * (RECHECK_FRAMES + 1)
    assert frame(30.0) == {"w8": 1.0}  # 33% over: off, even within the keep allowance
    assert frame(36.0) == {"w8": 1.0}  # and back only once it fits (or is tried)


@pytest.mark.parametrize("price, tried", [(52.0, True), (60.0, False)])
def test_a_width_priced_just_beyond_the_budget_is_tried_now_and_then(price, tried):
    """A calibrated price can be too dear, and a width never bought is never measured again: one
    priced within the budget's try allowance (25% over) is run now and then, first after TRY_EVERY
    frames and then twice as long after each try (a try that found it too dear is repaid by poorer
    frames); one priced further out never is."""
    from vidsr.routing.arm import RECHECK_FRAMES, TRY_BACKOFF, TRY_EVERY

    engine, x = flat_table_engine(), textured_frame()
    # tiles bought one by one too dear to route: the choice is between the widths everywhere
    prices = {**UNIFORM_PRICES, "w8": 100.0, "w16": 200.0, uniform_unit("w16"): price}
    frames = TRY_EVERY * (2 ** (TRY_BACKOFF + 1) + 2 ** TRY_BACKOFF)
    runs = [ran(engine.upscale(x, TimeBudget(ms=44.0, unit_ms=prices))[1]) for _ in range(frames)]
    tries = [i for i, r in enumerate(runs) if r == {"w16": 1.0}]
    assert all(r in ({"w8": 1.0}, {"w16": 1.0}) for r in runs)
    if tried:
        # (up to RECHECK_FRAMES later: a kept width is re-planned, and so may give way to a try,
        # every RECHECK_FRAMES frames)
        expected = [TRY_EVERY * 2 ** min(k, TRY_BACKOFF) for k in range(len(tries))]
        assert len(tries) == TRY_BACKOFF + 2
        assert all(e <= w <= e + RECHECK_FRAMES for w, e in zip(np.diff([0] + tries), expected))
    else:
        assert tries == []


def test_a_budget_behind_its_schedule_tries_no_dearer_width():
    """A try's overrun adds to the run's debt, which the next frames repay with poorer plans: behind
    schedule (the fps controller's ``try_over`` 0) a width priced beyond the allowance is not tried."""
    from vidsr.routing.arm import TRY_EVERY

    engine, x = flat_table_engine(), textured_frame()
    prices = {**UNIFORM_PRICES, "w8": 100.0, "w16": 200.0, uniform_unit("w16"): 52.0}
    runs = [ran(engine.upscale(x, TimeBudget(ms=44.0, unit_ms=prices, try_over=0.0))[1])
            for _ in range(3 * TRY_EVERY)]
    assert runs == [{"w8": 1.0}] * len(runs)


def test_kept_tiles_fall_due_on_different_frames():
    """A static scene's tiles, all computed on one frame, must not all be computed again on one
    later frame: their age limits spread over half of MAX_AGE."""
    from vidsr.temporal import STAGGER, age_limits

    limits = age_limits(60)
    assert limits.max() == MAX_AGE and limits.min() == MAX_AGE - STAGGER + 1
    assert np.bincount(limits).max() <= 60 // STAGGER + 1


def test_a_still_tile_refreshed_at_its_age_limit_does_not_fall_to_a_cheaper_route():
    """A still tile computed on a dear route is kept until its age limit, then computed again. Its
    input has not changed, so a cheaper route then would only change its picture (flicker) and the
    time keeping frees would buy the dear route back later: it runs on its route or a dearer one,
    even while the budget is short and a moving part of the frame could use the time."""
    _, engine = arm_engine()
    x = textured_frame(seed=11)
    stream = StreamState()
    grid = engine.grid(*x.shape[-2:])
    still = np.array([not (t.y0 < 32 and t.x0 + t.w > 64) for t in grid.tiles])
    engine.upscale(x, MacBudget(0.9), stream=stream)
    refreshed = 0
    for k in range(1, MAX_AGE + 3):
        before, ages = stream.routes.copy(), stream.age.copy()
        engine.upscale(moved(x) if k % 2 else x, MacBudget(0.15), stream=stream)
        due = still & (ages > 0) & (stream.age == 0) & (before > 0)  # kept until now, computed this frame
        refreshed += int(due.sum())
        assert (stream.routes[due] >= before[due]).all(), k
    assert refreshed >= still.sum() // 2


def test_the_benchmarks_flicker_counts_only_change_the_truth_does_not_have():
    from vidsr.bench.video import flicker

    truth = np.zeros((5, 8, 8), np.uint8)
    truth[:, :, :4] = np.arange(5)[:, None, None] * 10  # the left half moves, the right half is still
    outs = truth.astype(np.float32).copy()
    assert flicker(outs, truth) == 0  # the left half's change is the truth's
    outs[3, 0, 4] += 6  # one still pixel of 32 changes in frame 3 and back in frame 4
    assert flicker(outs, truth) == pytest.approx((6 / 32 + 6 / 32) / 4)  # frames 1-4, WARMUP skips frame 0 only


def test_the_still_pixels_benchmark_runs_each_way_on_the_same_budgets(tmp_path):
    """On a clip whose subject moves over a still background, keeping still pixels of the tiles
    that run again gives less flicker than computing them again."""
    import av

    from vidsr.bench.video import still_pixels, still_report

    h, w, n = 128, 192, 10
    background = (textured_frame(h, w, seed=3)[0, 0].numpy() * 219 + 16).astype(np.uint8)
    frames = []
    for i in range(n):
        f = background.copy()
        f[40:72, 10 + 12 * i : 42 + 12 * i] = 200  # a flat block crossing the frame
        frames.append(f)
    path = tmp_path / "clip.mkv"
    with av.open(str(path), "w") as out:
        s = out.add_stream("ffv1", rate=30)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i, f in enumerate(frames):
            yuv = np.concatenate([f, np.full((h // 2, w), 128, np.uint8)])
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = i
            out.mux(s.encode(frame))
        out.mux(s.encode(None))
    truth = np.stack([np.kron(f, np.ones((2, 2), np.uint8)) for f in frames])
    res = still_pixels(path, truth)
    assert res["on"]["flicker"] < res["off"]["flicker"]
    assert abs(res["on"]["psnr_y"] - res["off"]["psnr_y"]) < 0.5
    assert res["reference"]["run"] == "arm-espcn full everywhere" and res["reference"]["flicker"] is not None
    row = still_report({"clips": {"moving-block": {"still_pixels": res}}}).splitlines()[-1]
    assert row.startswith("| moving-block |") and f"{res['on']['flicker']:.3f}" in row
    assert row.endswith(f"| arm-espcn full everywhere | {res['reference']['psnr_y']:.3f} | {res['reference']['flicker']:.3f} |")
