"""Rate control: what happens between "a frame is decoded" and "the engine gets its budget".

The pipeline asks once per frame: ``budget = rate.before(luma)``, upscales with ``rate.engine``,
then ``rate.after(stats)``. Two kinds:

- ``FixedBudget``: every frame the same share of the full network (``--budget``).
- ``FrameRateTarget``: ``--fps-target``. On the first frame it prices each unit of routed work on
  this machine under every network thread setting (``Engine.calibrate``); on the second, if the
  model was vidsr's to choose and it runs its full network everywhere with time to spare, it may
  switch once to a dearer model (``policy.pick_dearer``); every frame the fps controller turns the
  measured costs into the next frame's time budget; it says once when the target is out of reach
  or leaves the model time it cannot use.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .budget import MacBudget
from .controller import FpsController


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
                 dearer: list[Callable[[], object]] = ()):
        self.engine = engine
        self.target_fps = target_fps
        self.bits, self.full_range = bits, full_range  # how the stream's luma planes are coded
        self.note = note
        self.dearer = list(dearer)  # builders of dearer engines, tried once on the second frame
        self.controller: FpsController | None = None
        self._warned_slow = self._noted_headroom = False

    def _new_controller(self, engine, shape) -> FpsController:
        return FpsController(self.target_fps, engine.unit_macs(*shape), threads=engine.threads.options())

    def before(self, luma: np.ndarray):
        """The budget for the frame whose luma plane (as decoded) is ``luma``."""
        engine = self.engine
        if self.controller is None:
            self.controller = self._new_controller(engine, luma.shape)
        c = self.controller
        if c.frames == 1 and self.dearer:
            started = c.clock()
            self._maybe_switch(luma)
            if self.controller is c:  # kept: the decision's time is not the frames' to repay
                c.exclude(c.clock() - started)
        c = self.controller
        if c.frames == 0:  # price each unit of work once, as frames will run, under each thread setting
            x = self.engine.to_unit(luma, self.bits, self.full_range)
            for n in self.engine.threads.options():
                if c.is_seeded(n):  # a switch has just calibrated this one
                    continue
                with self.engine.threads.light(), self.engine.threads.frame(n):
                    c.seed(self.engine.calibrate(x), threads=n)
        return c.budget()

    def _maybe_switch(self, luma: np.ndarray) -> None:
        """If a dearer model buys more in the time the target leaves, run it from here on, with a
        fresh controller that prices its units from this frame."""
        from .policy import pick_dearer

        engine, c, candidates = self.engine, self.controller, self.dearer
        self.dearer = []  # decided once
        network_ms = c.network_ms()
        if network_ms is None:
            return
        x = engine.to_unit(luma, self.bits, self.full_range)
        # outside any thread setting of ours: a candidate engine takes torch's thread count as its own
        picked, units, message = pick_dearer(engine, candidates, x, network_ms, c.prices())
        if picked is engine:
            return
        self.note(message)
        self.engine = picked
        self.controller = self._new_controller(picked, luma.shape)
        self.controller.seed(units, threads=picked.threads.all)  # measured on its own thread count while deciding

    def after(self, stats) -> None:
        c = self.controller
        c.observe(stats)
        if c.cannot_reach and not self._warned_slow:
            self._warned_slow = True
            self.note(f"even interpolation cannot reach {self.target_fps:g} fps on this machine; "
                      "running as fast as it can")
        if c.has_headroom and not self._noted_headroom:
            self._noted_headroom = True
            self.note(f"{self.engine.descriptor.name} runs its full network on every pixel faster than "
                      f"{self.target_fps:g} fps; a dearer model (vidsr --list-models, --model NAME) would turn "
                      "the spare time into quality")
