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
instead of settling a margin away from it). Time ahead is spent only beyond a reserve of
``RESERVE_PERIODS`` (all of it in the stream's last frames, when its length is known): a frame
over its period then comes out of the reserve instead of a catch-up. Units never measured yet
are guessed from their MACs at the speed measured for the others.

It also chooses how many CPU threads the networks get. With the decoder and encoder threads
competing for the same cores, a multi-threaded pass over a few tiles stalls at every layer's barrier
whenever one of its threads loses its core, so at a high target one thread can buy more than
all, while at a low one (many tiles a frame) all threads buy more. Which wins depends on the machine, the model and the target, so each thread setting keeps its own
unit costs and its measured speed (network ms per GMAC bought, the best of its last few frames:
other threads' bursts only ever slow a frame down, so the minimum is what the setting can do under
the current load). The faster runs; the other gets a frame every ``EXPLORE_EVERY`` frames (every
few frames until it has been measured a few times, unless a try was ``CLEARLY_SLOWER``, and twice
as long after each try it loses, up to 8x; one that calibration priced ``CLEARLY_SLOWER`` than what
the fastest costs in the stream is first tried after a lost try's wait) so a change of load is
noticed without a slow frame
every half second. A try buys the work the fastest setting would (its prices), so the frame is no
poorer for being a try.

The safety margin (``margin``) keeps a routed plan, which fills its budget to the millisecond at
estimated prices, a little inside the period. One route on every tile, one measured whole-frame
price, may spend more (``TimeBudget.uniform_allowance``): the margin, ``JITTER`` of the period, and
while the run is less than ``DEBT_PERIODS`` behind its schedule what the catch-up would take off;
and one that already runs goes on while priced up to ``TRY_OVER`` beyond that (``keep_over``).
The target is a rate over the run, not a deadline per frame: a width that keeps the target on
average must not lose frames to a poorer routed plan because one frame's overhead jittered up (at a
width's own frame rate that happened on a third of the frames, each 1 dB poorer). Past the debt
bound the catch-up applies to it too, so a width a little too dear for the target alternates with
cheaper frames at the rate the target needs. Time spent outside the frames (``exclude``: pricing a
dearer model once) is not repaid by the frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .budget import TRY_OVER, TimeBudget
from .routing.protocol import is_uniform_unit

if TYPE_CHECKING:
    from .executor import FrameStats

DEFAULT_MS_PER_GMAC = 50.0  # a first guess (20 GMAC/s) until something has been measured
START_UP_FRAMES = 10  # frames not judged for reachability (calibration, the encoder starting)
UNREACHABLE_FRAMES = 60  # network-free frames in a row below the target before it says so (2 s at 30 fps)
# Frames in a row that ran the full network everywhere and still beat the target by this ratio
# before it says the model is too cheap for the target (the time left over buys nothing).
HEADROOM_FRAMES = 10
HEADROOM_RATIO = 1.25
RELAX = 0.05  # per frame, how far an unbought unit's cost moves back towards its calibrated cost
EXPLORE_EVERY = 15  # frames between tries of a thread setting that is not the fastest
# each try a setting loses in a row doubles the wait before its next, up to 2**this: a try runs the
# fastest setting's work on the slower one, time the next frames repay for nothing
EXPLORE_BACKOFF = 3
EXPLORE_AFTER = 2  # frames before the first try (the first frames are the start-up's)
# The first frame is start-up, as the run's fps after start-up counts it: it gets a whole period for
# the network at the calibrated prices (what it measures beside that is a frame's overhead), and
# what it overspends is not repaid by poorer frames (``SCHEDULE_FROM_FRAME``). It is the encoder's
# first reference picture: with half a period it ran a cheaper width than the run's, and every
# frame predicted from it lost 0.02-0.03 dB (x264 CRF 12, animation clip at the full network's
# speed).
FIRST_FRAME_SHARE = 1.0
# The schedule starts as the second frame ends, as if each of the first two had taken one period:
# the fps after start-up leaves both out, and the second is still start-up, the first plan on
# measured overheads, often routed, with batch shapes run for the first time (sample clip at 7.8
# fps on 2 cores, 17 runs: the second frame took 0.9-3.8 periods, median 1.5, the third 0.8-1.9,
# median 0.9). Repaid, that overrun took the next frames below the width the run could keep.
SCHEDULE_FROM_FRAME = 2
SPEED_SAMPLES = 3  # a setting's speed: the best of its last this many measured frames
# a try this many times slower than a fully measured fastest setting counts as lost at once: no
# burst explains it, and each quick retry overspends a frame by as much (sample clip, 2 cores: one
# thread's first tries took 1.6-2.4x two threads' time, two periods of debt in the first ten frames)
CLEARLY_SLOWER = 1.5
# what one route everywhere may spend beyond a routed plan's allowance (see the module's note)
JITTER = 0.05  # of the period
DEBT_PERIODS = 2.0  # how far behind schedule the run may fall before the catch-up applies to it too
# Time ahead of schedule up to this many periods is held, not spent, until the stream's last
# ``catch_up_frames`` frames. Going up from a width everywhere buys little (a routed plan with a
# few dearer tiles: +0.2 dB a frame on a slow pan), while coming back down costs much (the catch-up
# frames' routed plans, -1.4 dB each): the first frames run ahead while the encoder fills its
# lookahead, and that time spent at once left nothing for the encoder's burst that follows
RESERVE_PERIODS = 1.0


@dataclass
class ThreadSetting:
    """What the controller knows of the machine when the networks run on ``threads`` threads."""

    threads: int | None  # None: the engine's own count
    unit_ms: dict[str, float] = field(default_factory=dict)  # smoothed measured cost per unit of work
    seeded: dict[str, float] = field(default_factory=dict)  # calibrated cost, where unbought units drift back to
    ms_per_gmac: float = DEFAULT_MS_PER_GMAC  # from unit_ms: prices units not measured yet
    samples: list[float] = field(default_factory=list)  # measured network ms per GMAC bought, latest last
    last_used: int = -(10**9)  # the frame it last ran
    losses: int = 0  # tries in a row, once measured, that found it slower than the fastest
    streamed: set[str] = field(default_factory=set)  # units measured in the stream (not only calibrated)

    @property
    def speed(self) -> float | None:
        """What compares settings: the best recent measurement (not relaxed, not guessed)."""
        return min(self.samples) if self.samples else None


def _judged(s: ThreadSetting, fastest: ThreadSetting) -> bool:
    """Whether ``s``'s tries can be judged against ``fastest``: it was measured on
    ``SPEED_SAMPLES`` frames (fewer may have met a burst, the encoder starting), or it measured
    ``CLEARLY_SLOWER`` times slower than a ``fastest`` measured that often (a fastest measured less
    may itself be the one a burst misled)."""
    if len(s.samples) >= SPEED_SAMPLES:
        return True
    return (s is not fastest and s.speed is not None and fastest.speed is not None
            and len(fastest.samples) >= SPEED_SAMPLES and s.speed > CLEARLY_SLOWER * fastest.speed)


class FpsController:
    def __init__(self, target_fps: float, unit_macs: dict[str, float], margin: float = 0.02,
                 catch_up_frames: int = 8, smoothing: float = 0.3, clock=time.perf_counter,
                 threads: tuple[int | None, ...] = (None,), total_frames: int = 0):
        if target_fps <= 0:
            raise ValueError("target fps must be positive")
        self.target_fps = target_fps
        self.period_ms = 1000.0 / target_fps
        self.unit_macs = dict(unit_macs)
        self.margin = margin
        self.catch_up_frames = catch_up_frames
        self.total_frames = total_frames  # the stream's length when known (0: unknown), for the reserve
        self.alpha = smoothing
        self.clock = clock
        # thread settings to choose among; the first is used until the others have been measured
        self.settings = [ThreadSetting(t) for t in threads]
        self.current = self.settings[0]
        self.overhead_ms: float | None = None  # a frame's time beside its network work (routed frames)
        self.uniform_overhead_ms: float | None = None  # the same, over frames of one route everywhere
        self.frames = 0
        self.start: float | None = None
        self.last: float | None = None
        self.cannot_reach = False  # set once even interpolation is too slow for the target
        self._idle_since: tuple[int, float] | None = None  # (frame, time) a run of network-free frames began
        self.has_headroom = False  # set once the full network everywhere still runs well above the target
        self._full_since: tuple[int, float] | None = None  # (frame, time) a run of full-network frames began

    # the current thread setting's costs (what the budget of the frame being run is priced with)
    @property
    def unit_ms(self) -> dict[str, float]:
        return self.current.unit_ms

    @property
    def seeded(self) -> dict[str, float]:
        return self.current.seeded

    @property
    def ms_per_gmac(self) -> float:
        return self.current.ms_per_gmac

    @ms_per_gmac.setter
    def ms_per_gmac(self, value: float) -> None:
        self.current.ms_per_gmac = value

    def network_ms(self) -> float | None:
        """The milliseconds a frame on schedule leaves the network (None before the first frame
        has measured what a frame costs without it)."""
        if self.overhead_ms is None:
            return None
        return max(self.period_ms * (1.0 - self.margin) - self.overhead_ms, 0.0)

    # -- the loop -----------------------------------------------------------------------------

    def budget(self) -> TimeBudget:
        """The budget for the next frame. The first frame, before anything but the units' prices is
        known, gets ``FIRST_FRAME_SHARE`` of the period for the network (and a route everywhere
        the usual jitter beyond it): the rest of the frame is what it measures."""
        now = self.clock()
        if self.start is None:
            self.start = self.last = now
        if self.overhead_ms is None:
            self.current = self._choose_setting()[0]  # calibration's choice: nothing has run yet
            return TimeBudget(ms=self.period_ms * (1.0 - self.margin) * FIRST_FRAME_SHARE, unit_ms=self.prices(),
                              threads=self.current.threads, margin_ms=self.period_ms * (self.margin + JITTER))
        slack = self.frames * self.period_ms - (now - self.start) * 1000.0  # > 0: ahead of schedule
        correction = max(-self.period_ms, min(self.period_ms, self._spendable(slack) / self.catch_up_frames))
        avail = self.period_ms * (1.0 - self.margin) - self.overhead_ms + correction
        self.current, fastest = self._choose_setting()
        self.current.last_used = self.frames
        # one route everywhere is charged its own frames' overhead, which has no planning and no
        # merging of tiles: charged a routed frame's, a width that fits would not
        uniform_overhead = self.overhead_ms if self.uniform_overhead_ms is None else self.uniform_overhead_ms
        uniform_extra = self.period_ms * self.margin + self.overhead_ms - uniform_overhead
        keep_over = 0.0
        if slack > -DEBT_PERIODS * self.period_ms:
            uniform_extra += JITTER * self.period_ms + max(-correction, 0.0)
            keep_over = TRY_OVER
        # a try of another setting buys what the fastest would (its prices): the try measures that
        # work on the other setting, and the frame is no poorer for it (its extra time is repaid).
        # A try of a dearer route is made only on schedule: behind it, its overrun adds to the debt
        return TimeBudget(ms=max(avail, 0.0), unit_ms=self.prices(fastest), threads=self.current.threads,
                          margin_ms=uniform_extra, keep_over=keep_over, try_over=TRY_OVER if slack >= 0 else 0.0)

    def _spendable(self, slack: float) -> float:
        """The part of the schedule's slack the next frames may spend: all of a debt, and of time
        ahead what is beyond ``RESERVE_PERIODS`` (all of it in the stream's last frames)."""
        if slack <= 0 or (self.total_frames and self.frames >= self.total_frames - self.catch_up_frames):
            return slack
        return max(slack - RESERVE_PERIODS * self.period_ms, 0.0)

    def exclude(self, seconds: float) -> None:
        """Time spent outside the frames' work (a one-time decision, such as pricing a dearer model)
        is not the schedule's: neither the frames behind it repay it, nor does it count as the
        current frame's overhead. The run's summary still counts it, as start-up."""
        if self.start is not None:
            self.start += seconds
        if self.last is not None:
            self.last += seconds

    def _choose_setting(self) -> tuple[ThreadSetting, ThreadSetting]:
        """(the setting this frame runs on, the fastest): the thread setting with the lowest measured
        speed (ms per GMAC); one that has not run for ``EXPLORE_EVERY`` frames (or never has) gets
        this frame instead."""
        if len(self.settings) == 1:
            return self.settings[0], self.settings[0]
        measured = [s for s in self.settings if s.speed is not None]
        # until a setting has run, calibration's prices choose: one that calibrated far dearer (a
        # burst while it was timed, or threads that cost more than they give on a small frame) buys
        # no network work at those prices, so it would never run to be measured
        best = min(measured, key=lambda s: s.speed) if measured else min(self.settings, key=self._calibrated_cost)
        if self.frames > EXPLORE_AFTER:
            stale = [s for s in self.settings if s is not best and self.frames - s.last_used >= self._explore_every(s, best)
                     and self.frames >= self._first_try(s, best)]
            if stale:
                return min(stale, key=lambda s: s.last_used), best
        return best, best

    def _calibrated_cost(self, s: ThreadSetting) -> float:
        """What calibration priced ``s``'s work at, over the units every setting priced (0 where
        none were: the first setting keeps its place)."""
        units = [u for u in s.seeded if self.unit_macs.get(u, 0) > 0 and all(u in t.seeded for t in self.settings)]
        return sum(s.seeded[u] for u in units)

    def _first_try(self, s: ThreadSetting, fastest: ThreadSetting) -> int:
        """The frame from which ``s`` may be tried: at once, unless it never ran in the stream and
        calibration priced it ``CLEARLY_SLOWER`` than what ``fastest`` costs now, on the work both
        priced; then after the wait of a lost try. A try of a setting twice as slow overspends its
        frame by most of a period, and at a width's own frame rate the frames after it repay that
        with routed plans 1-2 dB poorer (two tries in the first second of a 2 s clip put the run two
        periods behind). Now, not as calibrated: calibration runs before the encoder starts, and
        once it runs the settings can trade places (720p x264 at 30 fps on 2 cores: two threads
        cost 2.7x one thread's time per tile, median over frames, where calibration had them 2x
        faster), so a wait from calibration's prices alone kept the slower setting for a second."""
        if s.samples or s.last_used >= 0:
            return 0
        # on the work ``fastest`` has run in the stream (calibration's other prices are its own still)
        shared = [u for u in s.seeded if u in fastest.unit_ms and self.unit_macs.get(u, 0) > 0]
        units = [u for u in shared if u in fastest.streamed] or shared
        if not units:
            return 0
        ratio = sum(s.seeded[u] for u in units) / max(sum(fastest.unit_ms[u] for u in units), 1e-12)
        return EXPLORE_EVERY * 2 if ratio > CLEARLY_SLOWER else 0

    @staticmethod
    def _explore_every(s: ThreadSetting, fastest: ThreadSetting) -> int:
        if not _judged(s, fastest):  # retry soon: one or two frames may have met a burst
            return SPEED_SAMPLES
        return EXPLORE_EVERY * 2 ** min(s.losses, EXPLORE_BACKOFF)

    def _score_try(self) -> None:
        """After a frame on a measured setting: a try that found it slower than the fastest counts
        as a loss (its next try waits longer); the fastest has none."""
        s = self.current
        measured = [t for t in self.settings if t.speed is not None]
        if len(measured) < 2:
            return
        fastest = min(measured, key=lambda t: t.speed)
        if not _judged(s, fastest):
            return
        s.losses = 0 if s is fastest else s.losses + 1

    def observe(self, stats: FrameStats | None) -> None:
        """Call once per frame after it is done (with the engine's stats)."""
        now = self.clock()
        period = (now - self.last) * 1000.0 if self.last is not None else self.period_ms
        self.last = now
        self.frames += 1
        if self.frames <= SCHEDULE_FROM_FRAME:  # start-up: the schedule begins a period a frame before now
            self.start = now - self.frames * self.period_ms / 1000.0
        # only the work the budget bought is network time; the rest of the frame (planning included:
        # it is paid whatever the budget) is overhead the next budget has to leave room for
        network = sum(stats.ms.get(unit, 0.0) for unit in stats.work) if stats else 0.0
        uniform = bool(stats) and any(is_uniform_unit(u) and n > 0 for u, n in stats.work.items())
        self._smooth_overhead(max(period - network, 0.0), uniform)
        measured = set()
        if stats:
            for unit, n in stats.work.items():
                if n > 0 and unit in stats.ms and unit in self.unit_macs:
                    self._smooth_unit(unit, stats.ms[unit] / n, streamed=True)
                    measured.add(unit)
        self._measure_speed(stats, measured)
        if measured:
            self._score_try()
        self._relax_unmeasured(measured)
        self._check_reachable(now, stats)
        self._check_headroom(now, stats)

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

    def _check_headroom(self, now: float, stats: FrameStats | None) -> None:
        """Sets ``has_headroom`` when ``HEADROOM_FRAMES`` frames in a row after start-up bought the
        whole network (on every tile they computed) and still ran ``HEADROOM_RATIO`` times faster
        than the target: a dearer model would have the time to give more quality."""
        if stats is None or not stats.full_network or self.frames <= START_UP_FRAMES:
            self._full_since = None
            return
        if self._full_since is None:
            self._full_since = (self.frames, now)
            return
        frames, since = self.frames - self._full_since[0], now - self._full_since[1]
        if frames >= HEADROOM_FRAMES and frames / max(since, 1e-9) > self.target_fps * HEADROOM_RATIO:
            self.has_headroom = True

    # -- calibration --------------------------------------------------------------------------

    def seed(self, unit_ms: dict[str, float], threads: int | None = None) -> None:
        """Start from measured unit costs (``router.calibrate``, run on ``threads`` threads: one of
        the settings given) instead of guesses from MACs."""
        setting = next((s for s in self.settings if s.threads == threads), self.current)
        for unit, ms in unit_ms.items():
            if unit in self.unit_macs and ms > 0:
                self._smooth_unit(unit, ms, setting)
                setting.seeded[unit] = ms

    def carry_overhead(self, before: "FpsController") -> None:
        """Take the overheads ``before`` measured (a switch of models mid-stream: decode, encode and
        planning cost what they did), so the first frame is budgeted like any other."""
        self.overhead_ms, self.uniform_overhead_ms = before.overhead_ms, before.uniform_overhead_ms

    def is_seeded(self, threads: int | None) -> bool:
        """Whether the setting for ``threads`` already has calibrated costs (``seed``)."""
        return any(s.threads == threads and s.seeded for s in self.settings)

    def _measure_speed(self, stats: FrameStats | None, measured: set) -> None:
        """The current setting's speed: this frame's network ms per GMAC bought (units at their MACs)."""
        gmac = sum(stats.work[u] * self.unit_macs[u] for u in measured) / 1e9 if stats else 0.0
        if gmac <= 0:
            return
        samples = self.current.samples
        samples.append(sum(stats.ms[u] for u in measured) / gmac)
        del samples[:-SPEED_SAMPLES]

    def _relax_unmeasured(self, measured: set) -> None:
        """Units not bought this frame drift back towards their calibrated cost. A unit is only
        re-measured when bought, so one dear frame (another thread's burst, a new batch shape's
        first run) would otherwise price it out for the rest of the run."""
        for unit, ms in self.seeded.items():
            if unit not in measured and unit in self.unit_ms:
                self.unit_ms[unit] += RELAX * (ms - self.unit_ms[unit])

    def _smooth_overhead(self, value: float, uniform: bool = False) -> None:
        """Each kind of frame (routed, or one route everywhere) its own overhead; the first frame's
        stands for routed frames until one has run."""
        attr = "uniform_overhead_ms" if uniform else "overhead_ms"
        old = getattr(self, attr)
        setattr(self, attr, value if old is None else (1 - self.alpha) * old + self.alpha * value)
        if self.overhead_ms is None:
            self.overhead_ms = value

    def _smooth_unit(self, unit: str, ms: float, setting: ThreadSetting | None = None, streamed: bool = False) -> None:
        """Fold a measured cost into the unit's price. The first measurement in the stream replaces a
        calibrated price it beats: calibration times a unit once, while the decoder and encoder
        start, and a price too dear is never bought, so never measured again (while a burst only
        ever makes a measurement dearer, which the smoothing is for)."""
        s = setting or self.current
        old = s.unit_ms.get(unit)
        if streamed and unit not in s.streamed:
            s.streamed.add(unit)
            if old is not None and ms < old:
                old = None
        s.unit_ms[unit] = ms if old is None else (1 - self.alpha) * old + self.alpha * ms
        measured = [(s.unit_ms[u], self.unit_macs[u]) for u in s.unit_ms if self.unit_macs.get(u, 0) > 0]
        total_macs = sum(m for _, m in measured)
        if total_macs > 0:
            s.ms_per_gmac = sum(t for t, _ in measured) / total_macs * 1e9

    def stream_over_calibration(self) -> float:
        """How much dearer the current setting's units have been in the stream than calibration
        priced them (the largest ratio over the units measured in the stream, at least 1).
        Calibration times each unit before the decoder and encoder compete for the cores, so a model
        priced by calibration alone looks cheaper than the running one, priced by the stream."""
        s = self.current
        ratios = [s.unit_ms[u] / s.seeded[u] for u in s.streamed if s.seeded.get(u, 0) > 0 and u in s.unit_ms]
        return max([1.0, *ratios])

    def prices(self, setting: ThreadSetting | None = None) -> dict[str, float]:
        """Milliseconds per unit of each kind of work on ``setting`` (default: the current one), as a
        budget prices it (measured, else guessed from MACs at the measured speed)."""
        s = setting or self.current
        return {u: s.unit_ms.get(u, macs / 1e9 * s.ms_per_gmac) for u, macs in self.unit_macs.items()}

    # -- reporting ----------------------------------------------------------------------------

    def achieved_fps(self) -> float:
        if self.start is None or self.last is None or self.last <= self.start:
            return 0.0
        return self.frames / (self.last - self.start)
