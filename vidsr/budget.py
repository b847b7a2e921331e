"""What a frame may spend and what it spent: the types the engine, routers, controller and
pipeline exchange. Plain data, no torch, so the pipeline's interpolation path stays light."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TimeBudget:
    """A frame's budget in milliseconds (set by the fps controller) with the calibrated cost of one
    unit of each kind of work the router can buy (see ``FrameStats.work``)."""

    ms: float
    unit_ms: dict[str, float]
    threads: int | None = None  # torch threads for this frame's network passes (None: the engine's own)


@dataclass
class FrameStats:
    budget: float  # the fraction of full-network cost asked for (or the fraction a time budget bought)
    route_shares: dict[str, float]  # share of output pixels per route
    macs_per_pixel: float  # what the chosen routes cost per output pixel, counting each pixel once
    executed_macs_per_pixel: float | None = None  # what really ran, tile context included
    ms: dict[str, float] = field(default_factory=dict)  # wall time per stage / route
    predicted_psnr: float | None = None
    counts: dict[str, int] = field(default_factory=dict)  # tiles per route, refined pixels, ...
    work: dict[str, float] = field(default_factory=dict)  # units of work done per cost unit (for calibration)
    # tiles whose cores a network wrote, when the router left the others to the caller's base
    network_tiles: list[int] | None = None
