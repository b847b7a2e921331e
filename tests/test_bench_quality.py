"""``vidsr bench quality``'s verdicts: the floors and the plain-baseline match, from given rows."""

from __future__ import annotations

import pytest

from vidsr.bench.quality import _checks, report


def rows(best_gain: float, cheap_psnr: float) -> list[dict]:
    base = 30.0
    table = [
        {"model": "bicubic", "route": "-", "macs_per_pixel": 8, "psnr_y": base, "ssim": 0.9},
        {"model": "plain", "route": "full", "full": True, "macs_per_pixel": 1000, "psnr_y": base + 2, "ssim": 0.95},
        {"model": "net", "route": "w32 (full)", "full": True, "macs_per_pixel": 4000, "psnr_y": base + best_gain, "ssim": 0.96},
        {"model": "net", "route": "w8", "macs_per_pixel": 900, "psnr_y": cheap_psnr, "ssim": 0.95},
    ]
    for r in table:
        r["gain_db"] = r["psnr_y"] - base
    return table


def verdict(scale: int, table: list[dict]) -> str:
    return report({"val_dir": "val", "scales": {scale: {"images": 1, "rows": table, "checks": _checks(table, scale)}}})


def test_floor_and_plain_match_are_judged_from_the_rows():
    met = _checks(rows(5.2, 32.1), 2)
    assert met["best_full"]["meets_floor"] and met["best_full"]["model"] == "net"
    assert met["matches_plain"]["route"] == "w8" and met["matches_plain"]["macs_ratio"] == 0.9
    missed = _checks(rows(4.9, 31.9), 2)
    assert not missed["best_full"]["meets_floor"] and missed["matches_plain"] is None
    assert "NOT met" in verdict(2, rows(4.9, 31.9)) and "No route reaches" in verdict(2, rows(4.9, 31.9))


def test_a_scale_without_a_floor_reports_the_gain_alone():
    text = verdict(3, rows(3.0, 31.0))
    assert "Best full network: net +3.00 dB over bicubic." in text and "floor" not in text


def test_bench_commands_run_end_to_end_on_small_images(cli, tmp_path):
    # every `vidsr bench` subcommand that reads validation images dispatches with its own options;
    # x3 ships one small routed model, so this stays fast
    import json

    import numpy as np
    from PIL import Image

    val = tmp_path / "val"
    val.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        smooth = np.kron(rng.integers(0, 255, (12, 12, 3)), np.ones((8, 8, 1))).astype(np.uint8)
        Image.fromarray(smooth).save(val / f"{i}.png")
    r = cli("bench", "quality", "--val-dir", str(val), "--scales", "3", "--json", str(tmp_path / "q.json"))
    assert r.code == 0, r.err
    q = json.loads((tmp_path / "q.json").read_text())
    assert {row["model"] for row in q["scales"]["3"]["rows"]} >= {"bicubic", "arm-espcn"}
    r = cli("bench", "routing", "--val-dir", str(val), "--scales", "3", "--models", "arm-espcn",
            "--json", str(tmp_path / "r.json"))
    assert r.code == 0, r.err
    assert [m["model"] for m in json.loads((tmp_path / "r.json").read_text())["models"]] == ["arm-espcn"]
    block = json.loads((tmp_path / "r.json").read_text())["models"][0]
    assert block["tile"] == 64  # ARM's default
    # the bracket below the first sweep budget within 0.05 dB is scanned finely, and the reported
    # point is the smallest measured budget that holds
    from vidsr.bench.routing import FINE_STEPS, SWEEP
    sweep = {p["budget"]: p for p in block["sweep"]}
    first = min(b for b in SWEEP if sweep[b]["delta_db"] >= -0.05)
    below = [b for b in SWEEP if b < first]
    assert below  # these images need some network to come within 0.05 dB, so there is a bracket
    assert len([b for b in sweep if max(below) < b < first]) == FINE_STEPS - 1
    assert block["within_0_05_db"]["budget"] == min(b for b, p in sweep.items() if p["delta_db"] >= -0.05)
    r = cli("bench", "routing", "--val-dir", str(val), "--scales", "3", "--models", "arm-espcn", "--tile", "48",
            "--repeats", "1", "--json", str(tmp_path / "r48.json"))
    assert r.code == 0, r.err
    routed = json.loads((tmp_path / "r48.json").read_text())["models"][0]
    assert routed["tile"] == 48 and routed["oracle"]["tile"] == 48 and "Router tiles: 48 px" in r.out
    assert json.loads((tmp_path / "r48.json").read_text())["repeats"] == 1 and "best of 1 pass over" in r.out
    r = cli("bench", "routing", "--val-dir", str(val), "--scales", "3", "--repeats", "0")
    assert r.code != 0 and "--repeats: must be at least 1" in r.err and "Traceback" not in r.err
    r = cli("bench", "routing", "--val-dir", str(val), "--scales", "3", "--tile", "4")
    assert r.code != 0 and "--tile must be at least 8" in r.err and "Traceback" not in r.err
    r = cli("bench", "routing", "--val-dir", str(val), "--scales", "3", "--models", "arm-wdsr",
            "--json", str(tmp_path / "none.json"))  # ships at x2 and x4 only: nothing to measure
    assert r.code != 0 and "no routed model arm-wdsr at scale 3" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "none.json").exists()


def test_a_missing_image_folder_is_one_line(cli, tmp_path):
    r = cli("bench", "quality", "--val-dir", tmp_path / "nowhere")
    assert r.code == 2
    assert len(r.error_lines) == 1 and "--val-dir" in r.error_lines[0]
    assert "Traceback" not in r.err


def test_a_delivery_plot_without_matplotlib_fails_before_the_run(cli, tmp_path, monkeypatch):
    """--plot needs the bench extra: without matplotlib the bench says so in one line and exits
    before any clip is rendered (it used to fail at the end, losing the run)."""
    import sys

    import numpy as np
    from PIL import Image

    import vidsr.bench.delivery as delivery

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # an import of it now raises ImportError
    monkeypatch.setattr(delivery, "run", lambda *a, **k: pytest.fail("the run started"))
    val = tmp_path / "val"  # a real folder: the bench checks it first
    val.mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(val / "0.png")
    r = cli("bench", "delivery", "--val-dir", str(val), "--frames", "1", "--plot", str(tmp_path / "rd.png"))
    assert r.code == 2 and "--plot needs matplotlib" in r.err and len(r.err.strip().splitlines()) == 1
