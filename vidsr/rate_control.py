"""Rate control: what happens between "a frame is decoded" and "the engine gets its budget".

The pipeline asks once per frame: ``budget = rate.before(luma)``, upscales with ``rate.engine``,
then ``rate.after(stats)``. Two kinds:

- ``FixedBudget``: every frame the same share of the full network (``--budget``).
- ``FrameRateTarget``: ``--fps-target``. On the first frame it prices each unit of routed work on
  this machine under every network thread setting (``Engine.calibrate``); on the second, if the
  model was vidsr's to choose and it runs its full network everywhere with time to spare, it may
  switch once to a dearer model (``policy.pick_dearer``). It decides again, once, when the run has
  since shown headroom (the full network on every tile it computed, well ahead of the target): on
  static content the tiles kept from the frame before free time that the second frame could not
  yet see, so the dearer model is judged with the time the computed tiles really get. Every frame
  the fps controller turns the measured costs into the next frame's time budget; it says once when
  the target is out of reach or leaves the model time it cannot use.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .budget import MacBudget
from .controller import FpsController
from .models import registry

SWITCH_COST_SHARE = 0.1  # of the rest of the stream's time, what a decision on headroom may stall it


class FixedBudget:
    def __init__(self, engine, share: float):
        self.engine = engine
        self._budget = MacBudget(share)

    def before(self, luma: np.ndarray):
        return self._budget

    def after(self, stats) -> None:
        pass


class FrameRateTarget:
    def __init__(self, engine, target_fps: float, bits: int, full_range: bool, note: Callable[[str], None],
                 dearer: list[Callable[[], object]] = (), frames: int = 0):
        self.engine = engine
        self.frames = frames  # the stream's length in frames (the count, or its duration at its rate; 0: unknown)
        self.target_fps = target_fps
        self.bits, self.full_range = bits, full_range  # how the stream's luma planes are coded
        self.note = note
        # builders of dearer engines: tried on the second frame, and on headroom; each builds once
        self.dearer = [_built_once(build) for build in dearer]
        self._calibrated: dict[str, dict[str, float]] = {}  # dearer models' unit costs, measured once
        self._switched = False
        self.controller: FpsController | None = None
        self._warned_slow = self._noted_headroom = False
        self._computed_share = 1.0  # the last frame's share of tiles computed rather than kept
        self._decided_on_headroom = False
        self._calibration_s = 0.0  # what calibrating the running model took, on its own thread count

    def _new_controller(self, engine, shape) -> FpsController:
        done = self.controller.frames if self.controller is not None else 0  # a switch: the rest of the stream
        return FpsController(self.target_fps, engine.unit_macs(*shape), threads=engine.threads.options(),
                             total_frames=max(self.frames - done, 1) if self.frames else 0)

    def before(self, luma: np.ndarray):
        """The budget for the frame whose luma plane (as decoded) is ``luma``."""
        engine = self.engine
        if self.controller is None:
            self.controller = self._new_controller(engine, luma.shape)
        c = self.controller
        headroom = c.has_headroom and not self._decided_on_headroom and self._worth_deciding_again()
        if (c.frames == 1 or headroom) and self.dearer:
            started = c.clock()
            self._decided_on_headroom |= headroom
            self._maybe_switch(luma, self._computed_share if headroom else 1.0)
            if self.controller is c:  # kept: the decision's time is not the frames' to repay
                c.exclude(c.clock() - started)
        c = self.controller
        if c.frames == 0:  # price each unit of work once, as frames will run, under each thread setting
            x = self.engine.to_unit(luma, self.bits, self.full_range)
            for n in self.engine.threads.options():
                # a switch has just calibrated its own; the others are measured by the controller's
                # tries (each calibration of a dear model costs seconds)
                if c.is_seeded(n) or self._switched:
                    continue
                started = c.clock()
                with self.engine.threads.light(), self.engine.threads.frame(n):
                    c.seed(self.engine.calibrate(x), threads=n)
                if n == self.engine.threads.all:
                    self._calibration_s = c.clock() - started
        return c.budget()

    def _worth_deciding_again(self) -> bool:
        """Whether the rest of the stream is long enough for a decision on headroom: it calibrates the
        dearer models it has not measured yet (seconds each), a stall the run's frame rate pays for.
        Each is guessed to take the running model's calibration time in proportion to its full
        network's MACs, and all of them may take ``SWITCH_COST_SHARE`` of the time the remaining
        frames take at the target. A stream of unknown length is taken to be long."""
        if not self.frames:
            return True
        remaining_s = max(self.frames - self.controller.frames, 0) / self.target_fps
        own = self.engine.descriptor.routes[-1].macs_per_pixel
        guess = sum(self._calibration_s * build().descriptor.routes[-1].macs_per_pixel / own
                    for build in self.dearer if build().descriptor.name not in self._calibrated)
        return guess <= SWITCH_COST_SHARE * remaining_s

    def _maybe_switch(self, luma: np.ndarray, computed_share: float = 1.0) -> None:
        """If a dearer model buys more in the time the target leaves, run it from here on, with a
        fresh controller that prices its units from this frame. ``computed_share``: the share of
        tiles frames compute (the rest kept from the frame before): the time is theirs alone, so a
        whole frame is judged with that much more of it."""
        from .policy import pick_dearer

        engine, c, candidates = self.engine, self.controller, self.dearer
        if self._decided_on_headroom:
            self.dearer = []  # the last chance: decided
        network_ms = c.network_ms()
        if network_ms is None:
            return
        network_ms /= max(computed_share, 0.05)
        x = engine.to_unit(luma, self.bits, self.full_range)
        # outside any thread setting of ours: a candidate engine takes torch's thread count as its own
        ratio = c.stream_over_calibration()
        picked, units, message = pick_dearer(engine, candidates, x, network_ms, c.prices(), self._calibrated, ratio)
        if picked is engine:
            return
        self.dearer, self._calibrated, self._switched = [], {}, True  # the dearest that pays is running
        self.note(message)
        self.engine = picked
        self.controller = self._new_controller(picked, luma.shape)
        # priced as the decision priced it (measured on its own thread count while deciding, at the
        # stream's ratio), and a switch is no start-up: its first frame has the overhead measured so
        # far, not a whole period (that fitted a width the model then could not keep)
        self.controller.seed({unit: ms * ratio for unit, ms in units.items()}, threads=picked.threads.all)
        self.controller.carry_overhead(c)

    def after(self, stats) -> None:
        c = self.controller
        c.observe(stats)
        if stats is not None:
            self._computed_share = stats.computed_share
        if c.cannot_reach and not self._warned_slow:
            self._warned_slow = True
            self.note(f"even interpolation cannot reach {self.target_fps:g} fps on this machine; "
                      "running as fast as it can")
        # the note when no switch can use the time: none left to try, or the rest too short for one
        if c.has_headroom and not self._noted_headroom and (not self.dearer or not self._worth_deciding_again()):
            self._noted_headroom = True
            d = self.engine.descriptor
            if not registry.for_clean_input(d.info):
                # a delivery upscaler: the file was made for it, and a general model restores its
                # decoded frames worse, so there is nothing dearer to suggest
                self.note(f"{d.name} runs its full network on every pixel faster than {self.target_fps:g} fps")
            elif registry.default_model(d.scale) == d.name:
                self.note(f"{d.name} runs its full network on every pixel faster than {self.target_fps:g} fps; "
                          f"it is the best model shipped for x{d.scale}")
            else:
                self.note(f"{d.name} runs its full network on every pixel faster than {self.target_fps:g} fps; a "
                          "dearer model (vidsr --list-models, --model NAME) would turn the spare time into quality")


def _built_once(build: Callable[[], object]) -> Callable[[], object]:
    """``build``, calling it the first time only: a decision taken again loads no model twice."""
    built = []

    def once():
        if not built:
            built.append(build())
        return built[0]

    return once
