"""Which model runs (``vidsr.policy``): the choice the CLI and the VapourSynth filter share, and the
one-time switch to a dearer model under a frame-rate target."""

from __future__ import annotations

import pytest
import torch

from vidsr.errors import SettingsError
from vidsr.models import registry
from vidsr.budget import TimeBudget
from vidsr.policy import MARGIN_DB, choose_model, pick_dearer, predicted_psnr, uniform_psnr

from .synthetic import named_arm_engine


def test_a_budget_or_fps_target_without_a_model_picks_a_routed_model(monkeypatch):
    shipped = [{"name": "plain", "scale": 2, "architecture": "plain", "validation": {"psnr_y": 39.0}},
               {"name": "arm-wdsr", "scale": 2, "architecture": "arm-wdsr", "validation": {"psnr_y": 38.0}},
               {"name": "pcsr-wdsr", "scale": 2, "architecture": "pcsr-wdsr", "validation": {"psnr_y": 37.0}},
               {"name": "plain", "scale": 4, "architecture": "plain", "validation": {"psnr_y": 32.0}}]
    monkeypatch.setattr(registry, "shipped_models", lambda: shipped)
    assert choose_model(2) == "plain"  # full budget: the best network
    assert choose_model(2, routed=True) == "arm-wdsr"  # the best routed one
    assert choose_model(2, router="pcsr", routed=True) == "pcsr-wdsr"
    assert choose_model(2, router="arm") == "arm-wdsr"  # a router named: the best of its family
    assert choose_model(2, router="none", routed=True) == "plain"
    assert choose_model(4, routed=True) == "plain"  # no routed x4: the caller then says so
    assert choose_model(2, model="anything", routed=True) == "anything"  # a named model is never replaced
    with pytest.raises(SettingsError, match="no PCSR model ships for x4"):
        choose_model(4, router="pcsr")


def test_a_budget_or_fps_target_picks_the_model_that_routes_best(best_full_is_not_best_routed):
    # the best full network is not the best under a partial budget: routed models are compared by
    # their validation PSNR under their router at the reference cost, where the export measured it
    shipped = best_full_is_not_best_routed
    assert choose_model(2) == "pcsr-wdsr"  # full budget: the best full network
    assert choose_model(2, routed=True) == "arm-wdsr"
    shipped[0]["validation"]["routed"]["psnr_y"] = 38.9
    assert choose_model(2, routed=True) == "pcsr-wdsr"


def test_no_network_for_the_scale_falls_back_to_lanczos_and_says_so(monkeypatch):
    monkeypatch.setattr(registry, "shipped_models", lambda: [])
    said = []
    assert choose_model(3, warn=said.append) == "lanczos"
    assert said == ["no network ships for x3; using Lanczos interpolation"]


def test_a_dearer_model_is_taken_only_when_the_current_one_has_time_over_and_it_predicts_more():
    x = torch.rand(1, 1, 48, 64, generator=torch.Generator().manual_seed(0))
    current = named_arm_engine("cheap", 0.0)
    prices = current.calibrate(x)
    built = []

    def dearer(offset):
        def build():
            built.append(offset)
            return named_arm_engine("dear", offset)
        return build

    # time for the full network everywhere and more: the better-predicting model is taken
    engine, units, note = pick_dearer(current, [dearer(1.0)], x, 1e6, prices)
    assert engine.descriptor.name == "dear" and {"w4", "w8"} <= set(units)
    assert "switched to dear" in note and "cheap runs its full network everywhere" in note
    # a gain below the margin is not worth a switch
    engine, units, note = pick_dearer(current, [dearer(MARGIN_DB / 2)], x, 1e6, prices)
    assert engine is current and units is None and note is None
    # a dearer model is judged on its routes everywhere only: one whose routes do not fit on every
    # tile in the time is not taken, however much its routed plan predicts (the tables overrate
    # routed plans). Prices fixed, so the plans are fixed
    fixed = {"w4": 1.0, "w8": 2.0, "uniform w4": 8.0, "uniform w8": 16.0, "interpolation": 0.1}
    dear_units = {unit: ms * 3 for unit, ms in fixed.items()}  # no dear width fits everywhere in 20 ms
    budget = TimeBudget(20.0, fixed)
    current_psnr, full = predicted_psnr(current, x, budget)
    assert full
    far_above = named_arm_engine("dear", 5.0)
    routed_psnr, full = predicted_psnr(far_above, x, TimeBudget(20.0, dear_units))
    # no route of it fits everywhere, so its plan routes, and predicts far above the current model
    assert uniform_psnr(far_above, x, TimeBudget(20.0, dear_units)) is None
    assert not full and routed_psnr > current_psnr + MARGIN_DB + 1.0
    engine, units, note = pick_dearer(current, [lambda: far_above], x, 20.0, fixed, calibrated={"dear": dear_units})
    assert engine is current and units is None and note is None
    # its narrower width fits everywhere: judged on that width's prediction
    narrow_fits = dict(dear_units, **{"uniform w4": 8.0})
    engine, units, note = pick_dearer(current, [lambda: far_above], x, 20.0, fixed, calibrated={"dear": narrow_fits})
    assert engine is far_above and units == narrow_fits
    assert f"{uniform_psnr(far_above, x, TimeBudget(20.0, narrow_fits)):.2f} dB" in note
    # no time over (the current model cannot even pay for its full network): candidates are not built
    built.clear()
    engine, units, note = pick_dearer(current, [dearer(1.0)], x, 1e-6, prices)
    assert engine is current and units is None and note is None and built == []
