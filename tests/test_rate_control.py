"""Rate control (``vidsr.rate_control``): the budget each frame gets, calibration on the first frame,
the dearer-model switch on the second, and the notes a run leaves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidsr.budget import MacBudget, TimeBudget
from vidsr.io.sink import EncodeOptions
from vidsr.pipeline import VideoJob, upscale_video
from vidsr.rate_control import FixedBudget, FrameRateTarget

from .media import video_frames
from .synthetic import named_arm_engine


def test_a_fixed_budget_gives_every_frame_the_same_share():
    engine = named_arm_engine("cheap", 0.0)
    rate = FixedBudget(engine, 0.4)
    plane = np.zeros((48, 64), np.uint8)
    assert [rate.before(plane) for _ in range(3)] == [MacBudget(0.4)] * 3
    assert rate.engine is engine


def test_a_frame_rate_target_measures_the_first_frame_then_prices_every_unit_under_each_thread_setting():
    """Frame 0 runs with no network (what a frame costs without it); before it, each unit of work is
    calibrated once per network thread setting; later frames get a time budget in those prices."""
    engine = named_arm_engine("cheap", 0.0)
    calibrated = []
    real = engine.calibrate
    def spy(x):
        with engine.threads.network():  # the thread count this frame's networks would get
            calibrated.append(torch.get_num_threads())
        return real(x)

    engine.calibrate = spy
    notes = []
    rate = FrameRateTarget(engine, 25.0, 8, False, notes.append)
    plane = (np.random.default_rng(0).random((48, 64)) * 255).astype(np.uint8)
    first = rate.before(plane)
    assert first == MacBudget(0.0)
    assert sorted(calibrated) == sorted(n for n in engine.threads.options())
    out, stats = engine.upscale_plane(plane, budget=first)
    rate.after(stats)
    second = rate.before(plane)
    assert isinstance(second, TimeBudget) and set(second.unit_ms) == set(engine.unit_macs(48, 64))
    assert len(calibrated) == len(engine.threads.options())  # calibrated once, on the first frame only
    assert notes == []


def test_the_pipeline_switches_once_and_every_frame_is_kept(media, tmp_path):
    records, notes, calibrated = [], [], []

    def dear():
        engine = named_arm_engine("dear", 1.0)
        real = engine.calibrate
        engine.calibrate = lambda x: (calibrated.append(torch.get_num_threads()), real(x))[1]
        return engine

    cheap = named_arm_engine("cheap", 0.0)
    job = VideoJob(input=media["cfr.mp4"], output=tmp_path / "o.mp4", scale=2, encode=EncodeOptions(),
                   engine=cheap, fps_target=0.5, progress=False, stats=records.append, dearer=[dear])
    summary = upscale_video(job, notes.append)
    # the dearer model is calibrated once per thread setting: the decision's calibration is reused
    assert len(calibrated) == len(cheap.threads.options())
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
    assert job.engine is cheap  # the job is the caller's settings: the switch lives in the rate control
