"""PCSR routing (``vidsr.routing.pcsr``): per-pixel choice between upsamplers from the model's own
classifier, under a budget (ours: whole LR pixels) or the published k rule and ADM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidsr.budget import MacBudget
from vidsr.engine import Engine
from vidsr.errors import SettingsError
from vidsr.models.interpolation import upscale
from vidsr.models.pcsr import PCSR
from vidsr.routing import build_router
from vidsr.routing.pcsr import PCSRRouter, adm_choice, k_rule_choice, kth_largest, top_indices

from .synthetic import synthetic_pcsr, textured_frame


def test_pcsr_budget_ends_are_interpolation_and_full_network():
    up = synthetic_pcsr()
    engine = Engine(up, tile=16, router=build_router(up))
    x = textured_frame(48, 64)
    y0, s0 = engine.upscale(x, MacBudget(0.0))
    assert s0.route_shares["bicubic"] == 1.0
    assert torch.allclose(y0, upscale(x, 2).clamp(0, 1), atol=1e-6)
    y1, s1 = engine.upscale(x, MacBudget(1.0))
    assert s1.route_shares["heavy"] == 1.0
    with torch.no_grad():
        dense = up.module(x, "heavy").clamp(0, 1)
    assert torch.allclose(y1, dense, atol=1e-4)


@pytest.mark.parametrize("scale", [2, 4])
def test_pcsr_refines_by_default_only_at_x4(scale):
    # the published 3x3 refinement blurs across 1.5 LR pixels at x2 (measured: up to -1.6 dB on val)
    up = synthetic_pcsr(scale)
    engine = Engine(up, tile=16, router=build_router(up))
    _, stats = engine.upscale(textured_frame(48, 64), MacBudget(0.8))
    assert 0 < stats.route_shares["heavy"] < 1
    assert (stats.counts["refined_px"] > 0) == (scale == 4)


def unrefined_pcsr_engine():
    up = synthetic_pcsr()
    return up, Engine(up, tile=16, router=PCSRRouter(up, refinement=False))


@pytest.mark.parametrize("budget", [0.2, 0.5, 0.7, 0.9])
def test_pcsr_stays_under_budget_and_gives_heavy_to_likely_pixels(budget):
    _, engine = unrefined_pcsr_engine()
    _, stats = engine.upscale(textured_frame(48, 64), MacBudget(budget))
    assert stats.budget <= budget + 1e-6  # the fraction of full-network MACs actually bought
    assert stats.budget >= budget - 0.1  # and not far below it


@pytest.mark.parametrize("budget", [0.3, 0.7])
def test_pcsr_routed_pixels_equal_the_dense_output_of_their_route(budget):
    """Routed tiles run merged into rectangles (neighbours share their context); every output pixel
    must still be exactly what its route gives on the whole frame, and the pixels that only the
    heavy upsampler explains are at least the heavy share the router reports."""
    up, engine = unrefined_pcsr_engine()
    x = textured_frame(48, 80)
    y, stats = engine.upscale(x, MacBudget(budget))
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
    up = synthetic_pcsr(scale)
    engine = Engine(up, tile=16, router=PCSRRouter(up, refinement=False))
    x = textured_frame(32, 48)
    y, stats = engine.upscale(x, MacBudget(0.8))
    assert 0 < stats.route_shares["heavy"] < 1
    with torch.no_grad():
        light = torch.minimum((up.module(x, "light").clamp(0, 1) - y).abs(), (upscale(x, scale).clamp(0, 1) - y).abs())
        heavy = (up.module(x, "heavy").clamp(0, 1) - y).abs()
    only_heavy = ((heavy < 1e-4) & (light >= 1e-4))[0, 0].reshape(32, scale, 48, scale)
    only_light = ((light < 1e-4) & (heavy >= 1e-4))[0, 0].reshape(32, scale, 48, scale)
    assert only_heavy.any() and only_light.any()
    assert not (only_heavy.any(dim=(1, 3)) & only_light.any(dim=(1, 3))).any()


@pytest.mark.parametrize("mode", ["k", "adm"])
def test_the_published_rules_choose_per_hr_pixel_and_ignore_the_budget(mode):
    """``--pcsr-mode k|adm``: the router is built in that mode, chooses per HR pixel from the
    classifier's probabilities (not the budget's per-LR-pixel score), and gives the same output
    whatever the budget."""
    up = synthetic_pcsr(4)
    x = textured_frame(32, 48)
    engine = Engine(up, tile=16, router=build_router(up, "auto", pcsr_mode=mode, pcsr_k=0.5))
    a, sa = engine.upscale(x, MacBudget(0.3))
    b, sb = engine.upscale(x, MacBudget(0.8))
    assert torch.equal(a, b) and sa.route_shares == sb.route_shares
    assert sa.macs_per_pixel > up.descriptor.route("light").macs_per_pixel  # scored per HR pixel, every tile routed
    budget_mode = Engine(up, tile=16, router=build_router(up)).upscale(x, MacBudget(0.3))[1]
    assert sa.route_shares != budget_mode.route_shares


def test_an_unknown_pcsr_mode_is_refused():
    with pytest.raises(SettingsError, match="unknown PCSR mode"):
        build_router(synthetic_pcsr(), "pcsr", pcsr_mode="fast")


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
    refined, n = PCSR.refine(out, choice)
    changed = (refined != out)[0, 0]
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[2:5, 2:5] = True
    expected[3, 3] = False  # the heavy pixel itself stays
    assert torch.equal(changed, expected) and n == 8
    mean = out[0, 0, 1:4, 1:4].mean()
    assert torch.isclose(refined[0, 0, 2, 2], mean)
    # at the frame's edge the mean replicates the border, as an average pool over a padded frame does
    choice[0, 0], choice[0, 1] = 1, 0
    refined, _ = PCSR.refine(out, choice)
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
        _, stats = engine.upscale(frame, MacBudget(0.8 + 0.02 * (i % 2)))  # the controller's jitter
        outs.append(stats.route_shares["heavy"])
    assert len(set(outs)) == 1  # the same heavy share every frame


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
