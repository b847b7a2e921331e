"""The fps controller: each frame's compute budget, so that the run keeps a target frame rate.

It never drops a frame: every frame is upscaled, and the budget (how much network each frame may
use) is what gives. Each frame it measures
- how long the frame took end to end in the compute loop (the period, which includes decode and
  encode stealing CPU, queue waits and swscale), and how much of that the network took;
- what each unit of routed work really cost on this machine: a tile of each ARM width, PCSR's
  backbone per tile and its upsamplers per thousand pixels, the interpolation pass.
The per-unit costs are calibrated online (exponential averages), so the router spends a budget in
milliseconds on the routes that buy the most quality per millisecond here. The budget for the next
frame is the target period minus the measured non-network time, corrected by how far the run is
ahead of or behind its schedule (an integral term, so the average rate converges to the target
instead of settling a margin away from it). Units never measured yet are guessed from their MACs
at the speed measured for the others.
"""

from __future__ import annotations

import time

from .budget import FrameStats, TimeBudget

DEFAULT_MS_PER_GMAC = 50.0  # a first guess (20 GMAC/s) until something has been measured
START_UP_FRAMES = 10  # frames not judged for reachability (calibration, the encoder starting)
UNREACHABLE_FRAMES = 60  # network-free frames in a row below the target before it says so (2 s at 30 fps)
RELAX = 0.05  # per frame, how far an unbought unit's cost moves back towards its calibrated cost


class FpsController:
    def __init__(self, target_fps: float, unit_macs: dict[str, float], margin: float = 0.02,
                 catch_up_frames: int = 8, smoothing: float = 0.3, clock=time.perf_counter):
        if target_fps <= 0:
            raise ValueError("target fps must be positive")
        self.target_fps = target_fps
        self.period_ms = 1000.0 / target_fps
        self.unit_macs = dict(unit_macs)
        self.margin = margin
        self.catch_up_frames = catch_up_frames
        self.alpha = smoothing
        self.clock = clock
        self.unit_ms: dict[str, float] = {}
        self.ms_per_gmac = DEFAULT_MS_PER_GMAC
        self.seeded: dict[str, float] = {}  # calibrated cost per unit, where unmeasured units drift back to
        self.overhead_ms: float | None = None
        self.frames = 0
        self.start: float | None = None
        self.last: float | None = None
        self.cannot_reach = False  # set once even interpolation is too slow for the target
        self._idle_since: tuple[int, float] | None = None  # (frame, time) a run of network-free frames began
        self.last_budget: TimeBudget | float = 0.0

    # -- the loop -----------------------------------------------------------------------------

    def budget(self) -> TimeBudget | float:
        """The budget for the next frame. The first frame runs with no network, to measure what a
        frame costs without it."""
        now = self.clock()
        if self.start is None:
            self.start = self.last = now
        if self.overhead_ms is None:
            self.last_budget = 0.0
            return 0.0
        slack = self.frames * self.period_ms - (now - self.start) * 1000.0  # > 0: ahead of schedule
        correction = max(-self.period_ms, min(self.period_ms, slack / self.catch_up_frames))
        avail = self.period_ms * (1.0 - self.margin) - self.overhead_ms + correction
        self.last_budget = TimeBudget(ms=max(avail, 0.0), unit_ms=self._unit_costs())
        return self.last_budget

    def observe(self, stats: FrameStats | None) -> None:
        """Call once per frame after it is done (with the engine's stats)."""
        now = self.clock()
        period = (now - self.last) * 1000.0 if self.last is not None else self.period_ms
        self.last = now
        self.frames += 1
        # only the work the budget bought is network time; the rest of the frame (planning included:
        # it is paid whatever the budget) is overhead the next budget has to leave room for
        network = sum(stats.ms.get(unit, 0.0) for unit in stats.work) if stats else 0.0
        self._smooth_overhead(max(period - network, 0.0))
        measured = set()
        if stats:
            for unit, n in stats.work.items():
                if n > 0 and unit in stats.ms and unit in self.unit_macs:
                    self._smooth_unit(unit, stats.ms[unit] / n)
                    measured.add(unit)
        self._relax_unmeasured(measured)
        self._check_reachable(now, stats)

    def _check_reachable(self, now: float, stats: FrameStats | None) -> None:
        """Sets ``cannot_reach`` (one warning for the run) when frames that bought no network at
        all still ran below the target, over ``UNREACHABLE_FRAMES`` in a row after start-up (the
        calibration and the encoder's first frames are slow, and one slow frame is not a trend)."""
        bought_nothing = stats is None or stats.budget <= 0
        if not bought_nothing or self.frames <= START_UP_FRAMES or self._idle_since is None:
            self._idle_since = (self.frames, now)
            return
        frames, since = self.frames - self._idle_since[0], now - self._idle_since[1]
        if frames >= UNREACHABLE_FRAMES and frames / max(since, 1e-9) < self.target_fps * 0.95:
            self.cannot_reach = True

    # -- calibration --------------------------------------------------------------------------

    def seed(self, unit_ms: dict[str, float]) -> None:
        """Start from measured unit costs (``router.calibrate``) instead of guesses from MACs."""
        for unit, ms in unit_ms.items():
            if unit in self.unit_macs and ms > 0:
                self._smooth_unit(unit, ms)
                self.seeded[unit] = ms

    def _relax_unmeasured(self, measured: set) -> None:
        """Units not bought this frame drift back towards their calibrated cost. A unit is only
        re-measured when bought, so one dear frame (another thread's burst, a new batch shape's
        first run) would otherwise price it out for the rest of the run."""
        for unit, ms in self.seeded.items():
            if unit not in measured and unit in self.unit_ms:
                self.unit_ms[unit] += RELAX * (ms - self.unit_ms[unit])

    def _smooth_overhead(self, value: float) -> None:
        self.overhead_ms = value if self.overhead_ms is None else (1 - self.alpha) * self.overhead_ms + self.alpha * value

    def _smooth_unit(self, unit: str, ms: float) -> None:
        old = self.unit_ms.get(unit)
        self.unit_ms[unit] = ms if old is None else (1 - self.alpha) * old + self.alpha * ms
        measured = [(self.unit_ms[u], self.unit_macs[u]) for u in self.unit_ms if self.unit_macs.get(u, 0) > 0]
        total_macs = sum(m for _, m in measured)
        if total_macs > 0:
            self.ms_per_gmac = sum(t for t, _ in measured) / total_macs * 1e9

    def _unit_costs(self) -> dict[str, float]:
        return {u: self.unit_ms.get(u, macs / 1e9 * self.ms_per_gmac) for u, macs in self.unit_macs.items()}

    # -- reporting ----------------------------------------------------------------------------

    def achieved_fps(self) -> float:
        if self.start is None or self.last is None or self.last <= self.start:
            return 0.0
        return self.frames / (self.last - self.start)
