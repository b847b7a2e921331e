"""Predicting from the last frame (``vidsr.routing.evidence``): tiles where recent frames' networks
changed the output more than the table expected are predicted to gain more from the dear routes, and
less where they changed it less; evidence expires with age and with a change of content; the router
and a stream use it; and the benchmark's predictors are judged on real route outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidsr.budget import MacBudget
from vidsr.engine import Engine, disagreement
from vidsr.routing import build_router
from vidsr.routing.evidence import GATE, MAX_AGE, RouteEvidence
from vidsr.temporal import StreamState

from .synthetic import synthetic_arm, textured_frame


def table(tiles: int = 4) -> np.ndarray:
    """A table's prediction for three routes (interpolation, a light and a full network) on
    ``tiles`` alike tiles: the full network gains twice what the light one does."""
    return np.repeat(np.array([[4e-3], [3e-3], [2e-3]]), tiles, axis=1)


def observed(dis: list[float], routes=None) -> RouteEvidence:
    ev = RouteEvidence()
    mse = table(len(dis))
    ev.adjust(mse)
    ev.observe(np.full(len(dis), 2) if routes is None else np.asarray(routes), np.asarray(dis))
    return ev


def test_without_evidence_the_table_stands():
    mse = table()
    out = RouteEvidence().adjust(mse)
    assert np.array_equal(out, mse) and out is not mse


def test_a_tile_the_network_changed_more_is_predicted_to_gain_more():
    ev = observed([1.0, 1.0, 4.0, 0.25])  # the typical tile: 1; one changed 4x as much, one a quarter
    out = ev.adjust(table())
    gains = out[0] - out[2]
    assert np.allclose(out[0], table()[0])  # interpolation's prediction is the table's
    assert np.isclose(gains[0], 2e-3) and np.isclose(gains[1], 2e-3)  # the median tile keeps the table's gain
    assert np.isclose(gains[2], 8e-3) and np.isclose(gains[3], 0.5e-3)
    # every route's gain scales alike: the light route keeps its share of the full one's
    assert np.allclose((out[0] - out[1]) / gains, 0.5)


def test_evidence_expires_with_age_and_with_a_change_of_content():
    ev = observed([1.0, 1.0, 4.0, 1.0])
    for _ in range(MAX_AGE):  # frames that ran interpolation only: the evidence ages
        ev.adjust(table())
        ev.observe(np.zeros(4, int), np.zeros(4))
    assert not np.allclose(ev.adjust(table()), table())  # still evidence at MAX_AGE
    ev.observe(np.zeros(4, int), np.zeros(4))
    assert np.allclose(ev.adjust(table()), table())  # one frame older: the table alone

    ev = observed([1.0, 1.0, 4.0, 1.0])
    other = table()
    other[:, 2] *= np.exp(GATE * 1.5)  # tile 2's content changed (its edge score, in effect)
    assert np.allclose(ev.adjust(other)[:, 2], other[:, 2])


def test_interpolated_and_kept_tiles_bring_no_evidence():
    ev = observed([1.0, 1.0, 4.0, 1.0], routes=[2, 2, 0, 2])  # tile 2 was interpolated
    assert np.allclose(ev.adjust(table())[:, 2], table()[:, 2])
    ev = RouteEvidence()
    ev.adjust(table())
    ev.observe(np.full(4, 2), np.array([1.0, 1.0, 4.0, 1.0]), computed=np.array([True, True, False, True]))
    assert np.allclose(ev.adjust(table()), table())


def test_a_frame_not_planned_from_the_table_only_ages_the_evidence():
    ev = observed([1.0, 1.0, 4.0, 1.0])
    ev.observe(np.full(4, 2), np.array([9.0, 9.0, 9.0, 9.0]))  # no adjust before it: not evidence
    assert np.isclose((lambda o: o[0, 2] - o[2, 2])(ev.adjust(table())), 8e-3)


def test_the_router_moves_a_dear_route_to_where_the_evidence_says_it_pays(monkeypatch):
    monkeypatch.setattr("vidsr.routing.arm.ROUTED_MARGIN_DB", 0.0)  # so that this budget routes
    up = synthetic_arm(randomized=True)
    router = build_router(up)
    engine = Engine(up, tile=16, router=router)
    x = torch.full((1, 1, 32, 64), 0.5)  # four alike tiles: the table cannot tell them apart
    x[..., :, :] += 0.2 * torch.sin(torch.arange(64.0) * 1.7)[None, None, None, :]
    grid = engine.grid(*x.shape[-2:])
    budget = MacBudget(0.3)
    ev = RouteEvidence()
    plan = router.plan(x, grid, budget, evidence=ev)
    top = len(router.names) - 1
    routes = np.full(len(grid), top)
    dis = np.ones(len(grid))
    target = int(np.argmin(plan.routes))  # a tile the table-only plan left cheapest
    dis[target] = 8.0
    ev.observe(routes, dis)
    router.reset()
    again = router.plan(x, grid, budget, evidence=ev)
    assert again.routes[target] > plan.routes[target]


def test_a_stream_gathers_evidence_from_the_tiles_it_computed():
    up = synthetic_arm(randomized=True)
    engine = Engine(up, tile=16, router=build_router(up))
    x = textured_frame(seed=4)
    plane = np.round(x[0, 0].numpy() * 255).astype(np.uint8)
    base = np.repeat(np.repeat(plane, 2, 0), 2, 1)  # nearest: a base the network surely moves from
    stream = StreamState(reuse=False, evidence=True)
    out, _ = engine.upscale_plane(plane, budget=MacBudget(0.4), base=base, stream=stream)
    ev = stream.evidence
    grid = engine.grid(*plane.shape)
    ran = ev.age == 0
    assert ran.any() and (ev.routes[ran] > 0).all() and (ev.routes[~ran] == 0).all()
    assert np.allclose(ev.disagreement[ran], disagreement(out, base, grid, 2)[ran])
    assert (ev.disagreement[ran] > 0).all()
    # without reuse nothing is kept, but the next frame is planned with the evidence
    _, stats = engine.upscale_plane(plane, budget=MacBudget(0.4), base=base, stream=stream)
    assert "reused" not in stats.counts


def test_disagreement_is_per_tile_mean_squared_difference():
    up = synthetic_arm()
    engine = Engine(up, tile=16, router=build_router(up))
    grid = engine.grid(32, 48)
    base = np.zeros((64, 96), np.uint8)
    out = base.copy()
    out[:32, :32] = 3  # the first tile's core, at scale 2
    d = disagreement(out, base, grid, 2)
    assert np.isclose(d[0], 9.0) and np.allclose(d[1:], 0.0)


def test_the_predictor_benchmark_ranks_the_oracle_first_and_blind_below_it():
    from vidsr.bench.video import predictor_psnr

    rng = np.random.default_rng(0)
    frames = []
    for _ in range(3):
        base_err = rng.uniform(1e-3, 5e-3, 12)
        frac = rng.uniform(0.1, 0.9, 12)  # how much the full network removes, tile by tile
        mse = np.stack([base_err, base_err * (1 - frac / 2), base_err * (1 - frac)])
        frames.append({"mse": mse, "disagreement": np.stack([np.zeros(12), frac * base_err / 4, frac * base_err]),
                       "table": np.repeat(mse.mean(1, keepdims=True), 12, 1), "pixels": np.full(12, 64.0)})
    macs = np.array([1.0, 10.0, 20.0])
    r = {p: predictor_psnr(frames, macs, 0.4, p) for p in ("blind", "edge", "last-frame", "same-frame", "oracle")}
    assert r["oracle"] >= max(r.values()) - 1e-9
    # the table here knows nothing per tile (it picks alike tiles in any order, about as blind does);
    # the disagreement, here proportional to each tile's gain, knows where the full network pays
    assert abs(r["edge"] - r["blind"]) < 0.05 and r["same-frame"] > r["edge"] + 0.1
    assert r["same-frame"] > r["oracle"] - 0.01  # a perfect correlate reaches the oracle
    assert r["blind"] < r["oracle"] - 0.1


def test_the_table_levels_compare_predicted_and_measured_gains_per_third_of_the_tiles():
    from vidsr.bench.video import table_levels

    # six tiles: the table predicts a 3 dB gain everywhere; measured, the flattest third gains nothing
    table = np.repeat(np.array([[2e-3], [1e-3]]), 6, axis=1) * np.array([1, 1, 2, 2, 3, 3])
    mse = table.copy()
    mse[1, :2] = mse[0, :2]
    levels = table_levels([{"mse": mse, "table": table}], ("bicubic", "w16"), shown=("w16",))
    assert [r["third"] for r in levels] == ["flattest", "middle", "edgiest"]
    assert all(abs(r["w16"]["table"] - 10 * np.log10(2)) < 1e-9 for r in levels)
    assert abs(levels[0]["w16"]["measured"]) < 1e-9 and abs(levels[2]["w16"]["measured"] - 10 * np.log10(2)) < 1e-9


def test_routing_gains_compare_the_routed_plan_with_the_width_its_share_affords():
    from vidsr.bench.video import routing_gains

    # four tiles; the table says the middle width gains nothing on the two flat ones and the full
    # network gains most on the others, so at w16's share it routes: flat tiles interpolated, the
    # rest on w32. Measured, w16 gains on every tile and w32 only a little more.
    table = np.array([[1, 1, 1, 1], [1, 1, 0.5, 0.5], [1, 1, 0.1, 0.1]]) * 1e-3
    mse = np.array([[1, 1, 1, 1], [0.5, 0.5, 0.5, 0.5], [0.4, 0.4, 0.4, 0.4]]) * 1e-3
    frames = [{"mse": mse, "table": table, "pixels": np.ones(4)}]
    rows = routing_gains(frames, np.array([0.0, 100.0, 200.0]), ("bicubic", "w16", "w32"), budgets=(0.5,))
    assert rows[0]["width"] == "w16"
    assert rows[0]["predicted"] == pytest.approx(10 * np.log10(3.0 / 2.2))
    assert rows[0]["measured"] == pytest.approx(10 * np.log10(2.0 / 2.8))
