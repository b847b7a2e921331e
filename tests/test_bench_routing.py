"""``vidsr bench routing``: the oracle bound, paired timing, and which models it measures."""

from __future__ import annotations

import pytest
import torch

from vidsr.budget import MacBudget
from vidsr.engine import Engine
from vidsr.models import registry
from vidsr.routing import build_router

from .synthetic import synthetic_arm, textured_frame


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
    res = measure(router, pairs, 2, MacBudget(0.3), 2, outputs, paired=full)
    assert order == ["full", "full", "router", "router"] * 2
    assert res["paired_seconds"] > 0 and res["seconds"] > 0
    assert len(outputs) == 2 and 0 < res["macs"] < up.descriptor.full_route.macs_per_pixel
    assert "paired_seconds" not in measure(router, pairs, 2, MacBudget(0.3), 1)


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
