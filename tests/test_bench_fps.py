"""``vidsr bench fps``'s rows: repeated runs of a target are summarised as means with their spread."""

from __future__ import annotations

import pytest

from vidsr.bench.fps import report, summarise


def test_repeated_runs_give_means_and_the_psnr_spread():
    runs = [{"fps": 9.8, "mean_budget": 0.2, "psnr_y": 38.6}, {"fps": 10.2, "mean_budget": 0.3, "psnr_y": 39.0},
            {"fps": 10.0, "mean_budget": 0.25, "psnr_y": 38.8}]
    row = summarise(10.0, runs)
    assert row["fps"] == pytest.approx(10.0) and row["error"] == pytest.approx(0.0, abs=1e-12)
    assert row["psnr_y"] == pytest.approx(38.8) and row["psnr_y_spread"] == pytest.approx(0.4)
    assert row["mean_budget"] == pytest.approx(0.25) and row["psnr_y_runs"] == [38.6, 39.0, 38.8]


@pytest.mark.parametrize("repeats", [1, 3])
def test_the_table_shows_the_spread_only_for_repeated_runs(repeats):
    row = summarise(10.0, [{"fps": 10.0, "mean_budget": 0.2, "psnr_y": 38.0 + 0.1 * i} for i in range(repeats)])
    row["gain_over_lanczos_db"] = row["psnr_y"] - 37.0
    res = {"clip": "c", "model": "m", "repeats": repeats, "lanczos": {"fps": 40.0, "psnr_y": 37.0},
           "full": {"fps": 4.0, "psnr_y": 41.0, "note": "first 1 s"}, "runs": [row]}
    table = report(res)
    assert ("spread" in table) == (repeats > 1)
    last = table.splitlines()[-1]
    assert last.count("|") == (9 if repeats > 1 else 8)
    if repeats > 1:
        assert last.endswith(" 0.200 |")
