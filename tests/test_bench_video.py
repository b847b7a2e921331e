"""``vidsr bench video``'s schedule: a target's source configuration is timed right beside it."""

from __future__ import annotations

import numpy as np

import vidsr.bench.video as video


def test_a_targets_source_configuration_is_timed_right_before_and_after_its_targets(monkeypatch, tmp_path):
    # every run's fps and order recorded: the configuration a target was taken from must run
    # immediately before that target's runs and immediately after them, and its fps must be the
    # mean of those two runs, not of the sweep's run minutes earlier (the machine drifts)
    speeds = {("--model", "m", "--route", "w16"): iter([10.0, 9.0, 8.0]),
              ("--model", "m", "--route", "w32"): iter([5.0, 4.6, 4.4])}
    calls = []

    def fake_vidsr(lr, out, stats, *flags):
        calls.append(flags)
        if flags in speeds:
            return next(speeds[flags])
        if flags[:1] == ("--fps-target",):
            return float(flags[1])
        return 40.0  # Lanczos and the sharpened base: fast enough to be the 30 fps target's

    monkeypatch.setattr(video, "_vidsr", fake_vidsr)
    monkeypatch.setattr(video, "score", lambda path, truth: (30.0, None))
    monkeypatch.setattr(video, "make_input", lambda name, val_dir, seconds, path: np.zeros((1, 4, 4)))
    monkeypatch.setattr(video, "reuse_bound", lambda lr, truth: {})
    monkeypatch.setattr(video, "uniform_configs", lambda models: [("m", "w16"), ("m", "w32")])
    res = video.run(tmp_path, ["clip"], parts=("targets",))

    for flags, target in ((("--model", "m", "--route", "w16"), "10.0"), (("--model", "m", "--route", "w32"), "5.0")):
        at = [i for i, c in enumerate(calls) if c == flags]
        assert len(at) == 3, at  # the sweep, before, after
        between = calls[at[1] + 1:at[2]]
        assert between and all(c[:2] == ("--fps-target", target) for c in between), between
    rows = {r["run"]: r for r in res["clips"]["clip"]["rows"]}
    w16 = rows["m w16 everywhere"]
    assert w16["fps_runs"] == [10.0, 9.0, 8.0] and w16["fps"] == 8.5
    assert rows["m w32 everywhere"]["fps"] == 4.5
    # a target is judged against configurations at their bracketing speed: 10 fps is beyond w16's 8.5
    target_10 = rows["--fps-target 10"]
    assert target_10["best_uniform"]["run"] not in ("m w16 everywhere", "m w32 everywhere")
