"""What a frame may spend: one budget type per meaning, each answering the questions the routers ask.

- ``MacBudget(share)``: a share of the full network's multiply-accumulates, from 0 (interpolation
  only) to 1 (the full network on every pixel). ``--budget`` and the VapourSynth ``budget``.
- ``TimeBudget(ms, unit_ms)``: milliseconds of network time, with the measured price of one unit
  of each kind of work (a tile of a route, a thousand pixels of an upsampler, one interpolation
  pass). The fps controller makes one per frame; the VapourSynth ``max_ms`` makes a fixed one.

A router describes its candidate work in MACs and names the calibration unit each piece belongs
to; the budget prices it (``price``) and says how much may be spent (``allowance``). Both answer in
their own currency, so a router's choice is written once for both. Plain data and numpy, no torch:
the pipeline's interpolation-only path stays light.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class MacBudget:
    """A share of the full network's MACs per frame (clamped to [0, 1] when spent)."""

    share: float
    threads: int | None = None  # torch threads for the frame's network passes (None: the engine's own)

    # the full network on every pixel: no routing, and not the router's guess at what is as good
    @property
    def full_network(self) -> bool:
        return self.share >= 1

    def price(self, macs, unit: str | None, amount=1.0):
        """What work of ``macs`` MACs costs: its MACs."""
        return macs

    def with_context(self, costs, macs_per_pixel, computed_pixels, window_pixels: int, scale: int):
        """Per-tile costs (routes, tiles) for tiles that compute ``computed_pixels`` LR pixels each
        (core and the context its window adds given its neighbours' routes): their MACs."""
        return macs_per_pixel[:, None] * computed_pixels * scale**2

    def allowance(self, floor: float, full: float, fixed_units=()) -> float:
        """What a frame may spend, between ``floor`` (everything on the cheapest route) and
        ``full`` (everything on the full network). Fixed costs are inside the floor already."""
        return floor + min(max(self.share, 0.0), 1.0) * (full - floor)

    def as_share(self, bought: float) -> float:
        """This budget as a share of the full network: the share asked for."""
        return self.share

    def uniform_allowance(self, allowance: float) -> float:
        """What one route on every tile may spend: the same as any plan."""
        return allowance

    def try_allowance(self, uniform_allowance: float) -> float:
        """What a try of one route everywhere may be priced at: MACs are exact, nothing to try."""
        return uniform_allowance

    def keep_allowance(self, uniform_allowance: float) -> float:
        """What one route everywhere that already runs may be priced at and go on: MACs are exact."""
        return uniform_allowance

    def record(self) -> dict:
        """What a per-frame stats record says of this budget beyond the share it bought."""
        return {}


TRY_OVER = 0.25  # how far beyond its allowance one route everywhere may be priced and still be tried


@dataclass(frozen=True)
class TimeBudget:
    """Milliseconds for a frame's network work, priced by what each unit was measured to cost."""

    ms: float
    unit_ms: dict[str, float] = field(default_factory=dict)
    threads: int | None = None
    # what one route everywhere may spend beyond ``ms`` (``uniform_allowance``): the fps controller's
    # safety margin, taken off ``ms`` against a routed plan filling it to the millisecond at estimated
    # prices, and the frame-time jitter the run's schedule absorbs (``vidsr.controller``); one route
    # everywhere is one measured whole-frame price
    margin_ms: float = 0.0
    # how far beyond its uniform allowance one route everywhere that already runs may be priced and
    # go on (``keep_allowance``): the fps controller's, while the run is within its debt bound, so
    # that a width at the stream's own frame rate, over its allowance on half the frames, is not
    # left for a poorer routed plan; 0 for a fixed budget (VapourSynth's ``max_ms``), a limit per frame
    keep_over: float = 0.0
    # how far beyond its uniform allowance a route everywhere that does not run may be priced and be
    # tried (``try_allowance``); the fps controller sets 0 while the run is behind its schedule, where
    # a try's overrun would be repaid at once by poorer frames
    try_over: float = TRY_OVER

    full_network = False  # a time is never "the full network regardless": what fits is bought

    def price(self, macs, unit: str | None, amount=1.0):
        """What ``amount`` units of ``unit`` cost in milliseconds (``unit`` None: work the budget
        does not buy per piece, such as interpolated tiles under one whole-frame pass; a unit with
        no price is never bought)."""
        per_unit = 0.0 if unit is None else self.unit_ms.get(unit, np.inf)
        return np.zeros(np.shape(macs)) + per_unit * np.asarray(amount, dtype=np.float64)

    def with_context(self, costs, macs_per_pixel, computed_pixels, window_pixels: int, scale: int):
        """Per-tile costs (routes, tiles) for tiles that compute ``computed_pixels`` LR pixels each:
        the price of a tile alone in its window (what a tile unit is measured as), scaled by the
        share of that window it really computes beside neighbours on its route."""
        return costs * (computed_pixels / window_pixels)

    def allowance(self, floor: float, full: float, fixed_units=()) -> float:
        """The milliseconds left once the work every frame pays (``fixed_units``, e.g. the
        interpolation pass) is taken off."""
        return self.ms - sum(self.unit_ms.get(u, 0.0) for u in fixed_units)

    def as_share(self, bought: float) -> float:
        """This budget as a share of the full network: what it ``bought``."""
        return bought

    def uniform_allowance(self, allowance: float) -> float:
        """What one route on every tile may spend: the allowance and the margin. Without it, a width
        that runs at exactly the target frame rate would always lose to a routed plan of less
        quality (the controller's integral term absorbs what the margin guarded)."""
        return allowance + self.margin_ms

    def try_allowance(self, uniform_allowance: float) -> float:
        """What a try of one route everywhere may be priced at (``ARMRouter._try_dearer``): a
        measured price it may turn out to be below, and what the schedule repays if not."""
        return uniform_allowance * (1 + self.try_over)

    def keep_allowance(self, uniform_allowance: float) -> float:
        """What one route everywhere that already runs may be priced at and go on (``keep_over``)."""
        return uniform_allowance * (1 + self.keep_over)

    def record(self) -> dict:
        return {"budget_ms": round(self.ms, 3), **({} if self.threads is None else {"threads": self.threads})}


Budget = MacBudget | TimeBudget
FULL_NETWORK = MacBudget(1.0)
