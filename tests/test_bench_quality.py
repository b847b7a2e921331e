"""``vidsr bench quality``'s verdicts: the floors and the plain-baseline match, from given rows."""

from __future__ import annotations

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
