"""The ``vidsr INPUT`` command with routed models: --budget, --fps-target, --stats, presets, and
the listings."""

from __future__ import annotations

import json
import re

import pytest

from vidsr.models import registry

from .media import video_frames


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
    assert all("budget_ms" in rec for rec in lines)  # the first frame too (a period, while it measures)
    assert "target 200" in r.err
    steady = (len(lines) - 2) / (lines[-1]["t"] - lines[1]["t"])  # the summary's fps after start-up
    shown = re.search(r"([0-9.]+) fps after start-up", r.err)
    assert shown and float(shown.group(1)) == pytest.approx(steady, rel=0.01, abs=0.06)


def test_the_last_frame_predictor_plans_later_frames_from_earlier_ones(cli, media, tmp_path, arm_weights):
    runs = {}
    for predictor in ("edge", "last-frame"):
        dst, stats = tmp_path / f"{predictor}.mp4", tmp_path / f"{predictor}.jsonl"
        r = cli(media["cfr.mp4"], "-o", dst, "--model", arm_weights, "--budget", 0.4, "--tile", 16,
                "--no-reuse", "--predictor", predictor, "--stats", stats)
        assert r.code == 0, r.err
        assert len(video_frames(dst)) == 12
        runs[predictor] = [json.loads(line)["predicted_psnr"] for line in stats.read_text().splitlines()]
    edge, last = runs["edge"], runs["last-frame"]
    assert edge[0] == pytest.approx(last[0], abs=1e-9)  # the first frame has no earlier one: the table alone
    assert any(abs(a - b) > 1e-6 for a, b in zip(edge[1:], last[1:]))
    bad = cli(media["cfr.mp4"], "-o", tmp_path / "bad.mp4", "--predictor", "psychic")
    assert bad.code == 2 and "--predictor" in bad.error_lines[0] and not (tmp_path / "bad.mp4").exists()


def test_flags_override_the_preset(cli, media, tmp_path, arm_weights):
    dst, stats = tmp_path / "o.mp4", tmp_path / "s.jsonl"
    # the realtime preset asks for an fps target; --budget on the command line wins
    r = cli(media["cfr.mp4"], "-o", dst, "--preset", "realtime", "--model", arm_weights, "--budget", 0.0,
            "--tile", 16, "--stats", stats)
    assert r.code == 0, r.err
    lines = [json.loads(line) for line in stats.read_text().splitlines()]
    # budget 0: every tile shows the (sharpened) interpolated base, and no time budget is set
    assert all(rec["route_shares"]["sharp"] == 1.0 and "budget_ms" not in rec for rec in lines)


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
        # a delivery upscaler's figures are on coded input, so the line says what it is for
        assert ("delivery:" in line) == (not registry.for_clean_input(entry))
    assert "lanczos" in r.out and "bicubic" in r.out
    for scale in (2, 4):  # each scale names its default and its routed default
        assert sum("(default" in line and f"x{scale}" in line for line in r.out.splitlines()) == 1
        assert sum("routed default" in line and f" x{scale} " in line for line in r.out.splitlines()) == 1


def test_a_model_the_user_named_is_never_switched(cli, media, tmp_path):
    dst, stats = tmp_path / "o.mp4", tmp_path / "s.jsonl"
    r = cli(media["cfr.mp4"], "-o", dst, "--model", "arm-plain", "--fps-target", 0.5, "--stats", stats)
    assert r.code == 0, r.err
    lines = [json.loads(line) for line in stats.read_text().splitlines()]
    assert len(lines) == 12 and {rec["model"] for rec in lines} == {"arm-plain"}
    assert "switched" not in r.err


def test_pcsr_flags_on_a_model_that_routes_otherwise_are_named(cli, media, tmp_path):
    r = cli(media["odd.mkv"], "-o", tmp_path / "o.mkv", "--model", "arm-espcn", "--budget", "0.5", "--pcsr-mode", "k")
    assert r.code == 0, r.err
    assert "--pcsr-mode and --pcsr-k have no effect: arm-espcn" in r.err


def test_flags_that_do_not_apply_are_named(cli, media, tmp_path):
    """Encoder flags on an image (written as PNG) and a preset's upscaling settings on vidsr
    downscale do nothing; the run says so instead of ignoring them silently."""
    import numpy as np
    from PIL import Image

    img = tmp_path / "img.png"
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(img)
    r = cli(img, "-o", tmp_path / "up.png", "--model", "lanczos", "--crf", "30")
    assert r.code == 0 and "--crf applies to video; an image is written as PNG" in r.err
    r = cli(img, "-o", tmp_path / "up2.png", "--model", "lanczos", "--stats", tmp_path / "s.jsonl")
    assert r.code == 0 and "--stats applies to video" in r.err and not (tmp_path / "s.jsonl").exists()
    r = cli("downscale", media["odd.mkv"], "-o", tmp_path / "lr.mkv", "--preset", "realtime")
    assert r.code == 0 and "preset realtime: fps_target, model are upscaling settings" in r.err


def test_decode_time_leaves_out_the_wait_for_room_for_other_streams_packets(cli, media, tmp_path, monkeypatch):
    # the reader hands audio packets to the same queue as frames: while the upscaler is behind, its
    # wait for room there is not decoding (here each audio packet's hand-over is held 0.2 s)
    import time

    import av

    from vidsr import pipeline

    real = pipeline._put

    def slow_for_packets(q, item, stop):
        if isinstance(item, av.Packet):
            time.sleep(0.2)
        return real(q, item, stop)

    monkeypatch.setattr(pipeline, "_put", slow_for_packets)
    stats = tmp_path / "stats.jsonl"
    r = cli(media["cfr.mp4"], "-o", tmp_path / "o.mp4", "--model", "bicubic", "--stats", stats, "--quiet")
    assert r.code == 0, r.err
    decode_ms = [json.loads(line)["ms"]["decode"] for line in stats.read_text().splitlines()]
    assert len(decode_ms) == 12 and max(decode_ms) < 100, decode_ms  # a 64-px frame decodes in about 1 ms
