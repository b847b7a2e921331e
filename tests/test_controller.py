"""The fps controller against a synthetic machine: a virtual clock, a fixed per-frame overhead and
a per-unit network cost the controller has to discover."""

from __future__ import annotations

import numpy as np
import pytest

from vidsr.controller import EXPLORE_EVERY, RESERVE_PERIODS, SPEED_SAMPLES, FpsController
from vidsr.engine import FrameStats, TimeBudget


class Machine:
    """Frames cost ``overhead`` ms plus ``unit_cost`` ms per unit of network work bought."""

    def __init__(self, overhead=10.0, unit_cost=0.5, max_units=400, noise=0.05, seed=0):
        self.now = 0.0
        self.overhead, self.unit_cost, self.max_units, self.noise = overhead, unit_cost, max_units, noise
        self.rng = np.random.default_rng(seed)

    def clock(self):
        return self.now / 1000.0

    def run_frame(self, budget) -> FrameStats:
        if isinstance(budget, TimeBudget):
            units = int(min(self.max_units, max(budget.ms, 0) // budget.unit_ms["net"]))
        else:
            units = 0
        jitter = 1 + self.noise * self.rng.standard_normal()
        cost = self.unit_cost[budget.threads] if isinstance(self.unit_cost, dict) and units else self.unit_cost
        net_ms = units * cost * jitter if units else 0.0
        self.now += self.overhead * (1 + self.noise * self.rng.standard_normal()) + net_ms
        return FrameStats(budget=units / self.max_units, route_shares={}, macs_per_pixel=0.0,
                          ms={"net": net_ms}, work={"net": units} if units else {})


def run(controller, machine, frames, change=None):
    times, units = [], []
    for i in range(frames):
        if change and i == change[0]:
            change[1](machine)
        stats = machine.run_frame(controller.budget())
        controller.observe(stats)
        times.append(machine.now)
        units.append(stats.work.get("net", 0))
    return np.array(times), np.array(units)


def budgets_of(controller, machine, frames):
    """The budget of each of ``frames`` frames run on ``machine``."""
    budgets = []
    for _ in range(frames):
        b = controller.budget()
        controller.observe(machine.run_frame(b))
        budgets.append(b)
    return budgets


def fps_between(times, a, b):
    return (b - a) / ((times[b] - times[a]) / 1000.0)


@pytest.mark.parametrize("target", [25.0, 40.0, 60.0])
def test_converges_to_the_target(target):
    m = Machine()
    c = FpsController(target, {"net": 1e7}, clock=m.clock)  # its first guess: 0.5 ms/unit at 20 GMAC/s... wrong on purpose below
    c.ms_per_gmac = 200.0  # start 4x too pessimistic about the machine
    times, units = run(c, m, 200)
    assert abs(fps_between(times, 50, 199) / target - 1) < 0.02
    assert units[60:].mean() > 0  # it does buy network time when there is room


def test_adapts_within_a_few_frames_to_a_slower_machine():
    m = Machine()
    c = FpsController(30.0, {"net": 1e7}, clock=m.clock)
    times, units = run(c, m, 200, change=(100, lambda mm: setattr(mm, "unit_cost", 1.0)))
    before, after = units[80:100].mean(), units[110:130].mean()
    assert after < 0.65 * before  # work halves as the unit cost doubles
    assert abs(fps_between(times, 110, 199) / 30.0 - 1) < 0.03


def test_never_drops_frames_and_reports_an_unreachable_target():
    m = Machine(overhead=50.0)
    c = FpsController(30.0, {"net": 1e7}, clock=m.clock)
    times, units = run(c, m, 100)
    assert len(times) == 100  # every frame ran
    assert c.cannot_reach
    assert units[5:].sum() == 0  # no network time when there is none to spend


def test_says_when_the_full_network_everywhere_leaves_time_over():
    # a cheap model: all of it costs 5 ms over 10 ms of overhead, so a 30 fps target leaves half
    # of every frame unused; a model dear enough to need the router says nothing
    cheap = Machine(max_units=10)
    c = FpsController(30.0, {"net": 1e7}, clock=cheap.clock)
    times, units = run(c, cheap, 80)
    assert (units[20:] == 10).all() and c.has_headroom
    dear = Machine()
    d = FpsController(30.0, {"net": 1e7}, clock=dear.clock)
    run(d, dear, 200)
    assert not d.has_headroom and not d.cannot_reach


def test_a_passing_spike_is_not_reported_as_an_unreachable_target():
    m = Machine(overhead=25.0)
    c = FpsController(30.0, {"net": 1e7}, clock=m.clock)
    run(c, m, 20)
    m.overhead = 80.0  # a few slow frames (a scene cut, an encoder stall)
    run(c, m, 4)
    m.overhead = 25.0
    run(c, m, 40)
    assert not c.cannot_reach


def test_unmeasured_units_are_guessed_from_their_macs_at_measured_speed():
    c = FpsController(30.0, {"a": 1e9, "b": 2e9})
    c.seed({"a": 10.0})  # 1 GMAC measured at 10 ms; "b" never measured
    costs = c.prices()
    assert costs["a"] == pytest.approx(10.0) and costs["b"] == pytest.approx(20.0)


def test_planning_time_counts_as_overhead_not_network():
    """Only the work a budget bought is network time; the router's planning is paid every frame
    whatever the budget, so the next budget must leave room for it."""
    clock = [0.0]
    c = FpsController(25.0, {"net": 1e7}, clock=lambda: clock[0])
    c.budget()
    clock[0] += 0.040
    c.observe(FrameStats(budget=0.1, route_shares={}, macs_per_pixel=0.0,
                         ms={"route": 5.0, "net": 10.0}, work={"net": 2}))
    assert c.overhead_ms == pytest.approx(30.0)
    assert c.unit_ms["net"] == pytest.approx(5.0)


def test_a_unit_priced_out_by_one_dear_frame_drifts_back_to_its_calibrated_cost():
    """Units are re-measured only when bought: after one dear measurement (a burst on the other
    threads, a new batch shape's first run) the unit's cost must come back towards what calibration
    measured, or it is never bought again."""
    clock = [0.0]
    c = FpsController(30.0, {"net": 1e7}, clock=lambda: clock[0])
    c.seed({"net": 1.0})
    c.budget()

    def frame(net_ms, units):
        clock[0] += 0.030 + net_ms / 1000
        c.observe(FrameStats(budget=0.1 if units else 0.0, route_shares={}, macs_per_pixel=0.0,
                             ms={"net": net_ms}, work={"net": units} if units else {}))

    frame(40.0, 1)
    assert c.unit_ms["net"] > 10.0
    for _ in range(40):
        frame(0.0, 0)
    assert c.unit_ms["net"] < 3.0


@pytest.mark.parametrize("faster", [1, 2])
def test_it_runs_the_networks_on_the_thread_count_that_is_faster_here(faster):
    """On a busy CPU a one-thread pass can beat a two-thread one (or not): the controller measures
    both and spends most frames on the faster, buying more work than the slower would."""
    def machine():
        return Machine(unit_cost={faster: 0.4, 3 - faster: 1.0})

    m = machine()
    c = FpsController(30.0, {"net": 1e7}, clock=m.clock, threads=(2, 1))
    threads, units = [], []
    for _ in range(200):
        b = c.budget()
        stats = m.run_frame(b)
        c.observe(stats)
        threads.append(getattr(b, "threads", None))
        units.append(stats.work.get("net", 0))
    steady = threads[50:]
    assert steady.count(faster) / len(steady) > 0.85
    assert steady.count(3 - faster) > 0  # the other is still tried now and then
    slow = machine()
    only_slow = FpsController(30.0, {"net": 1e7}, clock=slow.clock, threads=(3 - faster,))
    _, slow_units = run(only_slow, slow, 200)
    assert np.mean(units[50:]) > 1.5 * slow_units[50:].mean()


def test_a_burst_during_the_first_measurement_does_not_lock_in_the_slower_thread_count():
    """The encoder starting up can make the first frames on the faster setting look 5x dear; the
    controller must find out within a few frames, not after several exploration periods."""
    m = Machine(unit_cost={2: 0.4, 1: 1.0})
    c = FpsController(30.0, {"net": 1e7}, clock=m.clock, threads=(2, 1))
    threads = []
    for i in range(60):
        b = c.budget()
        m.unit_cost[2] = 2.0 if i < 4 else 0.4  # the burst: only while the run starts
        c.observe(m.run_frame(b))
        threads.append(getattr(b, "threads", None))
    assert threads[15:45].count(2) / 30 > 0.8


def test_a_thread_setting_that_keeps_losing_is_tried_less_and_less_often():
    """Each try of the slower setting costs time the next frames repay: after each lost try the next
    waits twice as long (up to 8x), while a setting that becomes the faster is used at once."""
    m = Machine(unit_cost={2: 0.4, 1: 1.0}, noise=0.0)
    c = FpsController(30.0, {"net": 1e7}, clock=m.clock, threads=(2, 1))
    threads = [b.threads if isinstance(b, TimeBudget) else None for b in budgets_of(c, m, 400)]
    tries = [i for i, t in enumerate(threads) if t == 1]
    gaps = np.diff(tries)
    assert (np.diff(gaps) >= 0).all()  # never sooner than the last wait
    assert gaps[-1] == 8 * EXPLORE_EVERY and gaps[-1] >= 4 * gaps[0]  # backed off, and capped
    # the load changes: one thread becomes the faster; it is found at its next try and kept
    m.unit_cost = {2: 1.0, 1: 0.4}
    later = [b.threads if isinstance(b, TimeBudget) else None for b in budgets_of(c, m, 200)]
    assert later[-60:].count(1) / 60 > 0.85


def test_a_first_try_far_slower_than_the_measured_fastest_waits_instead_of_being_retried_at_once():
    """A setting measured once may have met a burst, so it is retried within a few frames, unless it
    was more than CLEARLY_SLOWER times slower than a setting measured in full: each quick retry of
    a clearly slower one overspends a frame, debt the next frames repay with poorer plans."""
    def tries(slow_cost):
        m = Machine(unit_cost={2: 0.4, 1: slow_cost}, noise=0.0)
        c = FpsController(30.0, {"net": 1e7}, clock=m.clock, threads=(2, 1))
        threads = [b.threads if isinstance(b, TimeBudget) else None for b in budgets_of(c, m, 40)]
        return [i for i, t in enumerate(threads) if t == 1]

    near = tries(0.4 * 1.2)  # within the ratio: measured again soon, as a burst could explain it
    assert len(near) >= 3 and near[2] - near[0] <= 2 * SPEED_SAMPLES + 2
    far = tries(0.4 * 2.0)
    assert len(far) == 2 and far[1] - far[0] >= 2 * EXPLORE_EVERY  # lost at once: the wait doubled


def test_time_spent_outside_the_frames_is_not_repaid_by_them():
    """A one-time decision (pricing a dearer model) after the first frame: the frames after it are
    budgeted as if it had not happened, instead of running without network until caught up."""
    def frames_after(pause_ms: float, exclude: bool):
        m = Machine(noise=0.0)
        c = FpsController(30.0, {"net": 1e7}, clock=m.clock)
        c.observe(m.run_frame(c.budget()))
        m.now += pause_ms
        if exclude:
            c.exclude(pause_ms / 1000.0)
        budgets = []
        for _ in range(10):
            b = c.budget()
            budgets.append(b.ms)
            c.observe(m.run_frame(b))
        return budgets

    paused, plain = frames_after(1500.0, True), frames_after(0.0, False)
    assert paused == pytest.approx(plain)
    assert min(frames_after(1500.0, False)[:5]) == 0.0  # not excluded: the frames pay it back



def test_time_ahead_of_schedule_is_held_up_to_the_reserve_until_the_last_frames():
    """Being ahead of schedule by less than ``RESERVE_PERIODS`` buys the next frame nothing more;
    beyond it only the excess is spent; in the stream's last ``catch_up_frames`` frames all of it."""
    period = 1000.0 / 30.0

    def next_budget(slack_periods: float, total_frames: int = 0, frames: int = 20) -> float:
        m = Machine(noise=0.0)
        c = FpsController(30.0, {"net": 1e7}, clock=m.clock, total_frames=total_frames)
        for _ in range(frames):
            c.observe(m.run_frame(c.budget()))
        m.now = c.start * 1000.0 + c.frames * period - slack_periods * period  # that far ahead (or behind)
        return c.budget().ms

    held = next_budget(0.0)
    assert next_budget(RESERVE_PERIODS * 0.5) == pytest.approx(held)
    assert next_budget(RESERVE_PERIODS) == pytest.approx(held)
    assert next_budget(RESERVE_PERIODS + 0.5) == pytest.approx(held + 0.5 * period / 8)  # the excess, over 8 frames
    # the same time ahead, in the stream's last frames: spent
    assert next_budget(RESERVE_PERIODS * 0.5, total_frames=25) == pytest.approx(held + RESERVE_PERIODS * 0.5 * period / 8)
    # a debt is repaid whatever is left of the stream
    assert next_budget(-0.5) == pytest.approx(held - 0.5 * period / 8)


def test_the_first_frame_buys_network_and_measures_the_rest_of_a_frame():
    """The first frame is not left to interpolation: it gets the period at the calibrated prices,
    and what it measures besides its network work is the overhead."""
    m = Machine(overhead=12.0, noise=0.0)
    c = FpsController(25.0, {"net": 1e7}, clock=m.clock)
    c.seed({"net": 0.5})
    first = c.budget()
    stats = m.run_frame(first)
    c.observe(stats)
    assert isinstance(first, TimeBudget) and first.ms == pytest.approx(0.98 * 40.0)
    assert stats.work["net"] > 0
    assert c.overhead_ms == pytest.approx(12.0)


def test_the_first_frame_is_start_up_and_its_overrun_is_not_repaid():
    """The first frame (the encoder's first reference picture) overruns its period with the
    encoder starting: the schedule starts as it ends, so the frames after it get the budget they
    would have had after a first frame of one period, not poorer plans to catch up."""
    def second_budget(first_frame_ms):
        clock = [0.0]
        c = FpsController(25.0, {"net": 1e7}, clock=lambda: clock[0])
        c.seed({"net": 0.5})
        c.budget()
        _frame_at(clock, c, 20.0, "net", first_frame_ms - 20.0)  # a cold first network call
        return c.budget().ms

    assert second_budget(120.0) == pytest.approx(second_budget(40.0), abs=1.0)


def test_the_second_frame_is_start_up_too_and_its_overrun_is_not_repaid():
    """The fps after start-up leaves out the first two frames, and the second is the first plan on
    measured overheads (often routed, its batch shapes run for the first time): the schedule starts
    as it ends, so an overrun there takes nothing off the frames after it, while one in the third
    frame is repaid."""
    def budget_after(slow_frame, slow_ms):
        clock = [0.0]
        c = FpsController(25.0, {"net": 1e7}, clock=lambda: clock[0])
        c.seed({"net": 0.5})
        for frame in range(3):
            c.budget()
            _frame_at(clock, c, 10.0, "net", (slow_ms if frame == slow_frame else 30.0) - 10.0)
        return c.budget().ms  # the fourth frame's

    on_time = budget_after(None, 40.0)
    assert budget_after(1, 160.0) == pytest.approx(on_time, abs=1.0)
    assert budget_after(2, 160.0) < on_time - 5.0  # after start-up, three periods of debt are repaid


def _frame_at(clock, c, overhead_ms, unit, net_ms):
    """One frame that took ``overhead_ms`` beside ``net_ms`` of one unit of ``unit``."""
    clock[0] += (overhead_ms + net_ms) / 1000
    c.observe(FrameStats(budget=0.5, route_shares={}, macs_per_pixel=0.0, ms={unit: net_ms}, work={unit: 1}))


def test_one_route_everywhere_is_charged_its_own_frames_overhead():
    """Routed frames pay planning and tile merging beside their network work, frames of one width
    everywhere do not: each kind is charged its own, or a width that fits would look too dear."""
    from vidsr.controller import JITTER
    from vidsr.routing.protocol import uniform_unit

    clock = [0.0]
    c = FpsController(10.0, {"net": 1e7, uniform_unit("w16"): 1e9}, clock=lambda: clock[0])
    c.budget()
    for _ in range(20):  # every frame exactly on its 100 ms period: no catch-up either way
        _frame_at(clock, c, 30.0, "net", 70.0)
        c.budget()
        _frame_at(clock, c, 10.0, uniform_unit("w16"), 90.0)
        b = c.budget()
    assert c.overhead_ms == pytest.approx(30.0) and c.uniform_overhead_ms == pytest.approx(10.0)
    assert b.ms == pytest.approx(98.0 - 30.0)  # a routed plan: the margin and its own overhead off
    assert b.uniform_allowance(b.ms) == pytest.approx(100.0 - 10.0 + 100 * JITTER)  # the width: its own


@pytest.mark.parametrize("hiccup_ms, tolerated", [(150.0, True), (400.0, False)])
def test_frame_jitter_does_not_take_a_width_off_while_the_run_is_within_its_debt_bound(hiccup_ms, tolerated):
    """The target is a rate over the run: after a slow frame, one width everywhere keeps what the
    catch-up would take off while the run is less than DEBT_PERIODS behind; further behind, the
    catch-up applies to it too."""
    from vidsr.budget import TRY_OVER
    from vidsr.controller import DEBT_PERIODS, JITTER
    from vidsr.routing.protocol import uniform_unit

    clock = [0.0]
    unit = uniform_unit("w16")
    c = FpsController(10.0, {unit: 1e9}, clock=lambda: clock[0])
    c.budget()
    for _ in range(10):
        _frame_at(clock, c, 10.0, unit, 90.0)
        c.budget()
    _frame_at(clock, c, 10.0, unit, 90.0 + hiccup_ms)
    b = c.budget()
    behind = hiccup_ms  # ms behind the schedule
    assert (behind < DEBT_PERIODS * 100.0) == tolerated
    assert b.ms == pytest.approx(98.0 - 10.0 - behind / c.catch_up_frames)  # routed plans catch up
    expected = 100.0 - 10.0 + (100 * JITTER if tolerated else -behind / c.catch_up_frames)
    assert b.uniform_allowance(b.ms) == pytest.approx(expected)
    # a width that already runs may go on a little beyond that, but only within the debt bound
    assert b.keep_allowance(b.uniform_allowance(b.ms)) == pytest.approx(expected * (1 + TRY_OVER if tolerated else 1))


def test_a_try_of_another_thread_setting_buys_what_the_fastest_would():
    """A try measures the other setting on the work the fastest would buy, so the frame is no poorer
    for being a try (its extra time is repaid by the schedule)."""
    m = Machine(unit_cost={2: 0.4, 1: 1.0}, noise=0.0)
    c = FpsController(30.0, {"net": 1e7}, clock=m.clock, threads=(2, 1))
    late = [b for b in budgets_of(c, m, 200)[60:] if isinstance(b, TimeBudget)]
    tries = [b for b in late if b.threads == 1]
    assert tries and all(b.unit_ms["net"] == pytest.approx(0.4, rel=0.05) for b in tries)
    assert c.settings[1].unit_ms["net"] == pytest.approx(1.0, rel=0.05)  # while it measured its own


@pytest.mark.parametrize("measured, expected", [(4.0, 4.0), (40.0, 0.7 * 10.0 + 0.3 * 40.0)])
def test_the_first_measurement_in_the_stream_replaces_a_dearer_calibrated_price(measured, expected):
    """Calibration times a unit once, as the decoder and encoder start: a price it set too dear is
    replaced by the first real run, since a unit priced out is never bought to be measured again. A
    first run dearer than calibration is a burst as likely as not, and is only smoothed in."""
    clock = [0.0]
    c = FpsController(10.0, {"net": 1e7}, clock=lambda: clock[0])
    c.seed({"net": 10.0})
    c.budget()
    _frame_at(clock, c, 10.0, "net", measured)
    assert c.unit_ms["net"] == pytest.approx(expected)


def test_the_stream_over_calibration_ratio_is_that_of_the_units_measured_in_the_stream():
    """What a dearer model, priced by calibration alone, is scaled by to compare with the running
    one: how much dearer the running model's units measured in the stream are than calibrated. Units
    never bought keep their calibration and say nothing; a stream cheaper than calibration says 1."""
    clock = [0.0]
    c = FpsController(10.0, {"net": 1e7, "other": 1e7}, clock=lambda: clock[0])
    c.seed({"net": 10.0, "other": 10.0})
    assert c.stream_over_calibration() == 1.0  # nothing measured in the stream yet
    c.budget()
    _frame_at(clock, c, 10.0, "net", 20.0)
    assert c.stream_over_calibration() == pytest.approx(c.unit_ms["net"] / 10.0) and c.unit_ms["net"] > 10.0
    assert c.unit_ms["other"] == 10.0
    c2 = FpsController(10.0, {"net": 1e7}, clock=lambda: clock[0])
    c2.seed({"net": 10.0})
    c2.budget()
    _frame_at(clock, c2, 10.0, "net", 5.0)
    assert c2.stream_over_calibration() == 1.0


def test_frames_that_keep_tiles_and_run_the_full_network_on_the_rest_show_headroom():
    """On static content most tiles keep their output: a frame whose computed tiles all took the full
    network bought all the model can give, though it spent a fifth of the full network's MACs."""
    stats = FrameStats(budget=0.2, route_shares={"bicubic": 0.0, "w8": 0.0, "w16": 1.0}, macs_per_pixel=0.0,
                       ms={"w16": 5.0}, counts={"bicubic": 0, "w8": 0, "w16": 10, "reused": 8}, work={"w16": 2})
    assert stats.full_network and stats.computed_share == pytest.approx(0.2)
    partial = FrameStats(budget=0.2, route_shares={"bicubic": 0.5, "w8": 0.0, "w16": 0.5}, macs_per_pixel=0.0)
    assert not partial.full_network and partial.computed_share == 1.0
    for frames, headroom in ((stats, True), (partial, False)):
        clock = [0.0]
        c = FpsController(10.0, {"w16": 1e7}, clock=lambda: clock[0])
        for _ in range(30):
            c.budget()
            clock[0] += 0.02  # five times faster than the target
            c.observe(frames)
        assert c.has_headroom == headroom


def test_a_run_behind_its_schedule_gets_no_try_allowance():
    """On or ahead of schedule a route everywhere priced up to TRY_OVER beyond the allowance may be
    tried; behind it, not: the try's overrun would be repaid at once by poorer frames."""
    from vidsr.budget import TRY_OVER
    from vidsr.routing.protocol import uniform_unit

    clock = [0.0]
    unit = uniform_unit("w16")
    c = FpsController(10.0, {unit: 1e9}, clock=lambda: clock[0])
    c.budget()
    for _ in range(5):
        _frame_at(clock, c, 10.0, unit, 80.0)  # 90 ms frames at a 100 ms period: ahead
        c.budget()
    ahead = c.budget()
    assert ahead.try_allowance(100.0) == pytest.approx(100.0 * (1 + TRY_OVER))
    _frame_at(clock, c, 10.0, unit, 200.0)  # one slow frame puts the run behind
    behind = c.budget()
    assert behind.try_allowance(100.0) == pytest.approx(100.0)


@pytest.mark.parametrize("one_thread_cost, clearly_slower", [(2.5, True), (1.1, False)])
def test_a_setting_calibrated_clearly_slower_is_first_tried_after_a_lost_tries_wait(one_thread_cost, clearly_slower):
    """Calibration prices every thread setting before the stream. One it priced CLEARLY_SLOWER than
    the first setting is first tried in the stream only after the wait of a lost try: each try of a
    setting twice as slow overspends a frame by most of a period, which the next frames repay, and
    over a short clip two such tries put a run at a width's own frame rate behind. One calibrated
    close to the first is tried within the first frames, as a burst could have misled calibration."""
    from vidsr.controller import EXPLORE_AFTER

    m = Machine(unit_cost={2: 1.0, 1: one_thread_cost}, noise=0.0)
    c = FpsController(30.0, {"net": 1e7}, clock=m.clock, threads=(2, 1))
    c.seed({"net": 1.0}, threads=2)
    c.seed({"net": one_thread_cost}, threads=1)
    threads = [b.threads for b in budgets_of(c, m, 4 * EXPLORE_EVERY)]
    first = threads.index(1)
    if clearly_slower:
        assert 2 * EXPLORE_EVERY <= first <= 2 * EXPLORE_EVERY + 2
    else:
        assert first <= EXPLORE_AFTER + 2


def test_a_setting_calibrated_far_dearer_is_not_the_one_that_starts():
    """Calibration on a busy machine priced two threads at 60 times one: at those prices the frame
    buys no network work, so two threads would never run to be measured and the run would stay on
    interpolation. Until a setting has run, the calibrated prices choose the one to start on."""
    m = Machine(unit_cost={2: 1.0, 1: 1.6}, noise=0.0)
    c = FpsController(30.0, {"net": 1e7}, clock=m.clock, threads=(2, 1))
    c.seed({"net": 100.0}, threads=2)
    c.seed({"net": 1.6}, threads=1)
    budgets = [b for b in budgets_of(c, m, 12) if isinstance(b, TimeBudget)]
    assert budgets[0].threads == 1  # the one calibration priced within reach
    assert any(b.unit_ms["net"] <= 1.6 + 1e-9 for b in budgets[:3])  # and at its price the frames buy work


def test_a_setting_calibrated_clearly_slower_is_tried_at_once_when_the_fastest_has_grown_as_dear():
    """Calibration runs before the encoder starts. Once it runs, two threads stall at every layer's
    barrier and can cost more than one thread (720p x264 on 2 cores: 2.7x per tile): the wait that
    calibration's prices set for one thread is measured against what two threads cost now, so one
    thread is tried within a few frames of the change and takes over, not a second later."""
    from vidsr.controller import EXPLORE_AFTER

    m = Machine(unit_cost={2: 0.4, 1: 1.0}, noise=0.0)
    # "frame": work the frames never buy here (one route on every tile), whose price stays calibration's
    c = FpsController(30.0, {"net": 1e7, "frame": 1e9}, clock=m.clock, threads=(2, 1))
    c.seed({"net": 0.4, "frame": 40.0}, threads=2)
    c.seed({"net": 1.0, "frame": 100.0}, threads=1)  # calibrated 2.5x slower: clearly slower then
    threads = []
    for i in range(4 * EXPLORE_EVERY):
        if i == EXPLORE_AFTER + 2:
            m.unit_cost = {2: 2.5, 1: 1.0}  # the encoder starts: two threads now stall
        b = c.budget()
        c.observe(m.run_frame(b))
        threads.append(b.threads)
    first = threads.index(1)
    assert first <= EXPLORE_AFTER + 2 + 4  # tried within a few frames of the change (was 2 * EXPLORE_EVERY)
    assert threads[-EXPLORE_EVERY:].count(1) / EXPLORE_EVERY > 0.85  # and kept
