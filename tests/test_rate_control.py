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
    """Before frame 0 each unit of work is calibrated once per network thread setting; frame 0 gets
    the period for the network in those prices (what the rest of a frame costs is what it
    measures), later frames the time the measurement leaves."""
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
    assert isinstance(first, TimeBudget) and first.ms == pytest.approx(0.98 * 1000 / 25.0)
    assert set(first.unit_ms) == set(engine.unit_macs(48, 64))
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
    # the dearer model is calibrated once, by the decision, on its own thread count; the other
    # settings it measures in the stream (a dear model's calibration costs seconds)
    assert calibrated == [cheap.threads.all]
    assert summary.frames == 12 and len(video_frames(tmp_path / "o.mp4")) == 12
    assert [r["frame"] for r in records] == list(range(12))
    assert sum("switched to dear" in n for n in notes) == 1
    models = [r["model"] for r in records]
    # the first frame measures what the rest of a frame costs; the switch is decided before the
    # second runs
    assert models[0] == "cheap" and set(models[1:]) == {"dear"}
    # the run's route shares name each model's routes apart
    shares = summary.route_shares()
    cheap_share = sum(v for k, v in shares.items() if k.startswith("cheap "))
    assert cheap_share == pytest.approx(1 / 12) and any(k.startswith("dear ") for k in shares)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert job.engine is cheap  # the job is the caller's settings: the switch lives in the rate control


@pytest.mark.parametrize("frames, decided", [(0, True), (1000, True), (6, False)])
def test_headroom_decides_the_switch_again_with_the_time_kept_tiles_leave(monkeypatch, frames, decided):
    """On frame 1 a model with no time to spare keeps running. Once the run shows headroom (the full
    network on every tile it computed, well ahead of the target), the switch is decided once more,
    with the time the computed tiles really get: the network time over the share of tiles computed
    (on static content the rest are kept from the frame before, for free). Not when the rest of a
    stream of known length is too short to pay for calibrating the dearer model."""
    import vidsr.policy as policy

    asked, builds = [], []
    real = policy.pick_dearer

    def spy(engine, candidates, x, network_ms, prices, calibrated=None, stream_ratio=1.0):
        asked.append(network_ms)
        return real(engine, candidates, x, network_ms, prices, calibrated, stream_ratio)

    def dear():
        builds.append(1)
        return named_arm_engine("dear", 1.0)

    monkeypatch.setattr(policy, "pick_dearer", spy)
    cheap = named_arm_engine("cheap", 0.0)
    notes = []
    rate = FrameRateTarget(cheap, 1000.0, 8, False, notes.append, dearer=[dear], frames=frames)
    plane = (np.random.default_rng(0).random((48, 64)) * 255).astype(np.uint8)

    def frame():
        budget = rate.before(plane)
        _, stats = rate.engine.upscale_plane(plane, budget=budget)
        rate.after(stats)

    for _ in range(3):
        frame()
    assert len(asked) == 1 and rate.engine is cheap  # frame 1: 1000 fps leaves no time to spare
    c = rate.controller
    c.has_headroom, c.network_ms = True, lambda: 3.0
    rate._computed_share = 0.25  # as the last frame's stats said
    if frames:  # calibrating the dearer model is guessed at the cheap one's calibration time
        rate._calibration_s = 0.01  # (10 ms), against the rest of the stream at 1000 fps
    frame()
    for _ in range(3):
        frame()
    assert len(builds) <= 1  # a model is built once
    if decided:
        assert len(asked) == 2 and asked[1] == pytest.approx(3.0 / 0.25)  # decided once more
    else:  # no switch can use the time: the run says so instead
        assert len(asked) == 1 and sum("would turn the spare time into quality" in n for n in notes) == 1


def headroom_notes(engine) -> list[str]:
    """The notes of a 1000 fps target whose run shows headroom on its third frame."""
    notes = []
    rate = FrameRateTarget(engine, 1000.0, 8, False, notes.append, dearer=[], frames=None)
    plane = (np.random.default_rng(0).random((48, 64)) * 255).astype(np.uint8)
    for k in range(4):
        budget = rate.before(plane)
        _, stats = rate.engine.upscale_plane(plane, budget=budget)
        if k == 2:
            rate.controller.has_headroom = True
        rate.after(stats)
    return notes


def test_a_delivery_upscaler_with_time_to_spare_is_not_told_to_take_a_dearer_model():
    """A delivery file's upscaler (trained on decoded video) is what the file was made for: the
    headroom note says it runs fast, without sending the user to a general model."""
    engine = named_arm_engine("delivery", 0.0)
    engine.upscaler.descriptor.info["input"] = "coded"
    notes = headroom_notes(engine)
    assert sum("runs its full network on every pixel faster" in n for n in notes) == 1
    assert not any("dearer model" in n for n in notes)


def test_the_best_shipped_model_with_time_to_spare_is_not_told_to_take_a_dearer_model():
    """There is no dearer model to suggest when the running one is the best that ships."""
    from vidsr.models import registry

    best = registry.default_model(2)
    notes = headroom_notes(named_arm_engine(best, 0.0))
    assert sum("the best model shipped for x2" in n for n in notes) == 1
    assert not any("dearer model" in n for n in notes)


def test_a_container_without_a_frame_count_gives_the_target_its_length_from_the_duration(media, tmp_path, monkeypatch):
    """Matroska keeps no frame count; the fps target still learns the stream's length (it spends
    its reserve in the last frames, and judges whether a second decision is worth its time)."""
    from vidsr import pipeline
    from vidsr.io.source import open_source

    container, info = open_source(media["odd.mkv"])
    container.close()
    assert not info.frames and pipeline.expected_frames(info) == 6
    seen = []

    class Recording(FrameRateTarget):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append(self.frames)

    monkeypatch.setattr(pipeline, "FrameRateTarget", Recording)
    job = VideoJob(input=media["odd.mkv"], output=tmp_path / "o.mkv", scale=2, encode=EncodeOptions(),
                   engine=named_arm_engine("cheap", 0.0), fps_target=30.0, progress=False)
    upscale_video(job, lambda message: None)
    assert seen == [6]


def test_a_switch_keeps_the_measured_overhead_and_prices_the_new_model_as_it_was_judged():
    """The switched-to controller is not a start-up: its first frame is budgeted with the overhead
    measured so far (a whole period there fitted a width the model then could not keep), and its
    units start at their calibration times the stream-over-calibration ratio the decision used."""
    cheap, dear = named_arm_engine("cheap", 0.0), named_arm_engine("dear", 1.0)
    measured = []
    real = dear.calibrate
    dear.calibrate = lambda x: measured.append(real(x)) or measured[-1]
    rate = FrameRateTarget(cheap, 0.5, 8, False, [].append, dearer=[lambda: dear])
    plane = (np.random.default_rng(0).random((48, 64)) * 255).astype(np.uint8)
    budget = rate.before(plane)
    _, stats = rate.engine.upscale_plane(plane, budget=budget)
    rate.after(stats)
    before = rate.controller
    before.stream_over_calibration = lambda: 1.5
    budget = rate.before(plane)
    assert rate.engine is dear and rate.controller is not before
    after = rate.controller
    assert after.overhead_ms == before.overhead_ms is not None
    assert budget.ms == pytest.approx(after.period_ms * (1 - after.margin) - before.overhead_ms)
    units = measured[0]
    assert after.seeded and all(after.seeded[u] == pytest.approx(units[u] * 1.5) for u in after.seeded)
