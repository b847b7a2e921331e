"""Presets, and the CLI with routed models: --budget, --fps-target, --stats."""

from __future__ import annotations

import json
import re

import pytest

from vidsr import presets
from vidsr.errors import SettingsError
from vidsr.models import registry

from .media import video_frames


def test_shipped_presets_are_valid_and_listed(cli):
    names = presets.available()
    assert {"realtime", "balanced", "quality", "draft", "archive"} <= set(names)
    for name in names:
        presets.load(name)
    r = cli("--list-presets")
    assert r.code == 0 and all(n in r.out for n in names)


@pytest.mark.parametrize("text,needle", [
    ("bogus = 1", "unknown key 'bogus'"),
    ("budget = 1.5", "budget must be <= 1.0"),
    ("budget = 'half'", "budget must be a number"),
    ("router = 'fast'", "router must be one of"),
    ("fps_target = 0", "fps_target must be > 0"),
    ("tile = 12.5", "tile must be an integer"),
    ("tile = 4", "tile must be >= 8"),
    ("[encoder]\ncrf = 99", "encoder.crf must be <= 63"),
    ("[encoder]\nspeed = 1", "unknown key 'encoder.speed'"),
    ("budget = ", "not valid TOML"),
])
def test_preset_validation_errors(tmp_path, text, needle):
    path = tmp_path / "mine.toml"
    path.write_text(text + "\n")
    with pytest.raises(SettingsError, match="preset mine") as e:
        presets.load(str(path))
    assert needle in str(e.value)


def test_unknown_preset_name(cli, media, tmp_path):
    r = cli(media["cfr.mp4"], "-o", tmp_path / "o.mp4", "--preset", "nosuch")
    assert r.code == 2 and "unknown preset 'nosuch'" in r.error_lines[0]


def test_budget_and_stats_file(cli, media, tmp_path, arm_weights):
    dst, stats = tmp_path / "o.mp4", tmp_path / "stats.jsonl"
    r = cli(media["cfr.mp4"], "-o", dst, "--model", arm_weights, "--budget", 0.4, "--tile", 16, "--stats", stats)
    assert r.code == 0, r.err
    lines = [json.loads(line) for line in stats.read_text().splitlines()]
    assert [rec["frame"] for rec in lines] == list(range(12))
    for rec in lines:
        assert rec["budget"] <= 0.4 + 1e-6
        assert abs(sum(rec["route_shares"].values()) - 1) < 1e-6
        assert {"decode", "swscale", "encode", "route"} <= set(rec["ms"])
        assert "predicted_psnr" in rec
    assert "routes" in r.err and "mean budget" in r.err
    assert len(video_frames(dst)) == 12


def test_fps_target_runs_every_frame_with_time_budgets(cli, media, tmp_path, arm_weights):
    dst, stats = tmp_path / "o.mp4", tmp_path / "s.jsonl"
    r = cli(media["cfr.mp4"], "-o", dst, "--model", arm_weights, "--fps-target", 200, "--tile", 16, "--stats", stats)
    assert r.code == 0, r.err
    lines = [json.loads(line) for line in stats.read_text().splitlines()]
    assert len(lines) == 12 and len(video_frames(dst)) == 12
    assert all("budget_ms" in rec for rec in lines[1:])  # the first frame measures with no network
    assert "target 200" in r.err
    steady = (len(lines) - 1) / (lines[-1]["t"] - lines[0]["t"])  # the summary's fps after start-up
    shown = re.search(r"([0-9.]+) fps after start-up", r.err)
    assert shown and float(shown.group(1)) == pytest.approx(steady, rel=0.01, abs=0.06)


def test_flags_override_the_preset(cli, media, tmp_path, arm_weights):
    dst, stats = tmp_path / "o.mp4", tmp_path / "s.jsonl"
    # the realtime preset asks for an fps target; --budget on the command line wins
    r = cli(media["cfr.mp4"], "-o", dst, "--preset", "realtime", "--model", arm_weights, "--budget", 0.0,
            "--tile", 16, "--stats", stats)
    assert r.code == 0, r.err
    lines = [json.loads(line) for line in stats.read_text().splitlines()]
    assert all(rec["route_shares"]["bicubic"] == 1.0 and "budget_ms" not in rec for rec in lines)


def test_fps_target_needs_a_router(cli, media, tmp_path, arm_weights):
    r = cli(media["cfr.mp4"], "-o", tmp_path / "o.mp4", "--model", arm_weights, "--router", "none", "--fps-target", 30)
    assert r.code == 2 and "routed model" in r.error_lines[0]
    r = cli(media["cfr.mp4"], "-o", tmp_path / "o.mp4", "--model", arm_weights, "--router", "pcsr")
    assert r.code == 2 and "arm router, not pcsr" in r.error_lines[0]
    r = cli(media["cfr.mp4"], "-o", tmp_path / "o.mp4", "--budget", 0.5, "--fps-target", 30)
    assert r.code == 2 and "not both" in r.error_lines[0]
    r = cli(media["cfr.mp4"], "-o", tmp_path / "o.mp4", "--model", arm_weights, "--router", "none", "--budget", 0.5,
            "--tile", 16, "-y")
    assert r.code == 0 and "--budget 0.5 has no effect" in r.err


def test_output_cut_short_by_a_closed_pipe_is_not_a_crash():
    # `vidsr --list-models | head -1`: the reader goes away; no traceback, the shell's SIGPIPE status
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "vidsr", "--list-models"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, bufsize=0)
    proc.stdout.close()  # gone before vidsr has even started: its first write hits a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and "Traceback" not in err, err


def test_list_models_shows_shipped_models_with_costs(cli):
    r = cli("--list-models")
    assert r.code == 0
    for entry in registry.shipped_models():
        line = next(line for line in r.out.splitlines() if line.split()[:2] == [entry["name"], f"x{entry['scale']}"])
        assert f"{entry['validation']['psnr_y']:.2f}" in line
        if "routed" in entry["validation"]:  # quality under its own router at the reference cost
            assert f"{entry['validation']['routed']['psnr_y']:.2f}" in line
    assert "lanczos" in r.out and "bicubic" in r.out
    for scale in (2, 4):  # each scale names its default and its routed default
        assert sum("(default" in line and f"x{scale}" in line for line in r.out.splitlines()) == 1
        assert sum("routed default" in line and f" x{scale} " in line for line in r.out.splitlines()) == 1


def test_a_budget_or_fps_target_without_a_model_picks_a_routed_model(monkeypatch):
    from vidsr.cli.upscale import Settings, _choose_model

    shipped = [{"name": "plain", "scale": 2, "architecture": "plain", "validation": {"psnr_y": 39.0}},
               {"name": "arm-wdsr", "scale": 2, "architecture": "arm-wdsr", "validation": {"psnr_y": 38.0}},
               {"name": "pcsr-wdsr", "scale": 2, "architecture": "pcsr-wdsr", "validation": {"psnr_y": 37.0}},
               {"name": "plain", "scale": 4, "architecture": "plain", "validation": {"psnr_y": 32.0}}]
    monkeypatch.setattr(registry, "shipped_models", lambda: shipped)
    assert _choose_model(Settings(scale=2)) == "plain"  # full budget: the best network
    assert _choose_model(Settings(scale=2, fps_target=30)) == "arm-wdsr"  # the best routed one
    assert _choose_model(Settings(scale=2, budget=0.5)) == "arm-wdsr"
    assert _choose_model(Settings(scale=2, budget=0.5, router="pcsr")) == "pcsr-wdsr"
    assert _choose_model(Settings(scale=2, budget=0.5, router="none")) == "plain"
    assert _choose_model(Settings(scale=4, fps_target=30)) == "plain"  # no routed x4: the CLI then says so


def test_a_budget_or_fps_target_picks_the_model_that_routes_best(best_full_is_not_best_routed):
    # the best full network is not the best under a partial budget: routed models are compared by
    # their validation PSNR under their router at the reference cost, where the export measured it
    from vidsr.cli.upscale import Settings, _choose_model

    shipped = best_full_is_not_best_routed
    assert _choose_model(Settings(scale=2)) == "pcsr-wdsr"  # full budget: the best full network
    assert _choose_model(Settings(scale=2, fps_target=10)) == "arm-wdsr"
    assert _choose_model(Settings(scale=2, budget=0.3)) == "arm-wdsr"
    shipped[0]["validation"]["routed"]["psnr_y"] = 38.9
    assert _choose_model(Settings(scale=2, budget=0.3)) == "pcsr-wdsr"


# -- a dearer model when the target leaves time over (vidsr.upgrade) -----------------------------------

def _arm_engine(name: str, offset_db: float):
    """A small random ARM engine named ``name`` whose Edge-to-PSNR table predicts ``offset_db`` more
    than a base table (routes bicubic, w4, w8; wider is better)."""
    import dataclasses

    import torch

    from vidsr.engine import Engine
    from vidsr.models.descriptor import Upscaler
    from vidsr.routing import build_router
    from vidsr.routing.edge import EdgePSNRTable

    cfg = {"widths": [4, 8], "blocks": 1}
    desc = dataclasses.replace(registry.describe("arm-wdsr", "arm-wdsr", 2, cfg), name=name)
    names = tuple(r.name for r in desc.routes)
    edges = torch.tensor([0.0, 10.0, 20.0, float("inf")])
    psnr = torch.stack([torch.tensor([40.0, 35.0, 30.0]) + r + offset_db for r in range(len(names))])
    up = Upscaler(desc, registry.build_module("arm-wdsr", 2, cfg), EdgePSNRTable(edges, psnr, names).to_tensors())
    return Engine(up, tile=16, router=build_router(up))


def test_a_dearer_model_is_taken_only_when_the_current_one_has_time_over_and_it_predicts_more():
    import torch

    from vidsr.upgrade import MARGIN_DB, pick_dearer

    x = torch.rand(1, 1, 48, 64, generator=torch.Generator().manual_seed(0))
    current = _arm_engine("cheap", 0.0)
    prices = current.router.calibrate(current, x)
    built = []

    def dearer(offset):
        def build():
            built.append(offset)
            return _arm_engine("dear", offset)
        return build

    # time for the full network everywhere and more: the better-predicting model is taken
    engine, units, note = pick_dearer(current, [dearer(1.0)], x, 1e6, prices)
    assert engine.upscaler.descriptor.name == "dear" and {"w4", "w8"} <= set(units)
    assert "switched to dear" in note and "cheap runs its full network everywhere" in note
    # a gain below the margin is not worth a switch
    engine, units, note = pick_dearer(current, [dearer(MARGIN_DB / 2)], x, 1e6, prices)
    assert engine is current and units is None and note is None
    # no time over (the current model cannot even pay for its full network): candidates are not built
    built.clear()
    engine, units, note = pick_dearer(current, [dearer(1.0)], x, 1e-6, prices)
    assert engine is current and units is None and note is None and built == []


def test_the_pipeline_switches_once_and_every_frame_is_kept(media, tmp_path):
    import torch

    from vidsr.io.sink import EncodeOptions
    from vidsr.pipeline import VideoJob, upscale_video

    records, notes, calibrated = [], [], []

    def dear():
        engine = _arm_engine("dear", 1.0)
        real = engine.router.calibrate
        engine.router.calibrate = lambda *a, **k: (calibrated.append(torch.get_num_threads()), real(*a, **k))[1]
        return engine

    job = VideoJob(input=media["cfr.mp4"], output=tmp_path / "o.mp4", scale=2, encode=EncodeOptions(),
                   engine=_arm_engine("cheap", 0.0), fps_target=0.5, progress=False, stats=records.append,
                   dearer=[dear])
    summary = upscale_video(job, notes.append)
    # the dearer model is calibrated once per thread setting: the decision's calibration is reused
    assert len(calibrated) == len(job.engine.thread_options())
    assert summary.frames == 12 and len(video_frames(tmp_path / "o.mp4")) == 12
    assert [r["frame"] for r in records] == list(range(12))
    assert sum("switched to dear" in n for n in notes) == 1
    models = [r["model"] for r in records]
    # the first frame measures what a frame costs without the network; the switch is decided
    # before the second runs
    assert models[0] == "cheap" and set(models[1:]) == {"dear"}
    # the run's route shares name each model's routes apart
    shares = summary.route_shares()
    assert shares["cheap bicubic"] == pytest.approx(1 / 12) and any(k.startswith("dear ") for k in shares)
    assert sum(shares.values()) == pytest.approx(1.0)


def test_a_model_the_user_named_is_never_switched(cli, media, tmp_path):
    dst, stats = tmp_path / "o.mp4", tmp_path / "s.jsonl"
    r = cli(media["cfr.mp4"], "-o", dst, "--model", "arm-plain", "--fps-target", 0.5, "--stats", stats)
    assert r.code == 0, r.err
    lines = [json.loads(line) for line in stats.read_text().splitlines()]
    assert len(lines) == 12 and {rec["model"] for rec in lines} == {"arm-plain"}
    assert "switched" not in r.err
