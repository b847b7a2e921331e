"""What a router is: it plans, the executor runs.

A router turns a frame and its budget into a plan; it never runs a network. The executor
(``vidsr.executor``) runs any plan, merges the result, counts what it ran and returns the frame's
stats. Two kinds of plan exist because the two published methods decide at different points:

- ``TilePlan`` (ARM, and any uniform configuration): one route per tile, decided before anything
  runs, from the frame alone.
- ``PixelPlan`` (PCSR): which tiles run the network at all, and how many of their pixels the budget
  pays the heavy upsampler for. Which pixels those are depends on the model's own classifier, so
  the plan declares the steps before its choice: the executor runs the backbone and the scoring
  the plan names, then calls the plan's ``choose`` with the scores, then renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

INTERPOLATION_UNIT = "interpolation"  # the calibration unit of one whole-frame interpolation pass


def uniform_unit(route: str) -> str:
    """The calibration unit of one pass of ``route`` over a whole frame in the large windows of a
    pass with no routing (a uniform configuration: no tile pays context of its own)."""
    return f"uniform {route}"


def is_uniform_unit(unit: str) -> bool:
    """Whether ``unit`` is a ``uniform_unit``."""
    return unit.startswith("uniform ")
SCORES = ("lr_score", "heavy_probability", "probabilities")  # what a PixelPlan may ask the classifier for


@dataclass
class TilePlan:
    """A route per tile: indices into the model's routes (0 is interpolation when the model has
    that branch). ``unrouted``: one route everywhere, run in the large windows of a pass with no
    routing (no per-tile decision needs small ones)."""

    routes: np.ndarray
    predicted_mse: np.ndarray | None = None  # (routes, tiles), per pixel: what the router expected
    unrouted: bool = False
    unit: str | None = None  # an unrouted plan a budget bought: its calibration unit (``uniform_unit``)
    reuse: np.ndarray | None = None  # tiles that keep their previous output instead of running (``vidsr.temporal``)

    @classmethod
    def uniform(cls, route: int, tiles: int, predicted_mse=None, unit: str | None = None) -> "TilePlan":
        """One route everywhere; ``unit``: the calibration unit it was priced by, when it was bought
        under a budget (the full network at budget 1 is not bought: it is the budget)."""
        return cls(np.full(tiles, route, dtype=np.int64), predicted_mse, unrouted=True, unit=unit)

    def predicted_psnr(self, pixels: np.ndarray) -> float | None:
        """The frame's predicted PSNR: the chosen routes' predicted MSE over tiles of ``pixels``."""
        if self.predicted_mse is None:
            return None
        mse = float((self.predicted_mse[self.routes, np.arange(len(pixels))] * pixels).sum() / pixels.sum())
        return 10 * np.log10(1 / max(mse, 1e-12))


@dataclass
class PixelPlan:
    """Per-pixel routing between upsamplers over a shared backbone (PCSR).

    ``network_tiles``: tiles that run the network (the rest are interpolated). ``score``: what the
    classifier computes on their features before the choice (one of ``SCORES``), or None when the
    choice needs no classifier. ``choose(scores, cores)`` maps, per batch of windows, the scores
    (None without a classifier) and a boolean mask of the core pixels to an int8 choice map (-1
    outside the cores, else the upsampler's index). ``whole_lr``: the choice map is per LR pixel
    (each chosen upsampler renders all s*s HR pixels of it) rather than per HR pixel. ``refine``:
    PCSR's pixel-wise refinement after rendering."""

    network_tiles: np.ndarray
    score: str | None
    choose: Callable[[list | None, list], list]
    whole_lr: bool
    refine: bool = False
    unrouted = False  # never one route everywhere: that is a TilePlan


class Router(Protocol):
    """What the engine asks of a router."""

    names: tuple[str, ...]  # the model's route names, cheapest first
    reuses: bool  # whether its plans can keep tiles' previous outputs (``vidsr.temporal``)
    takes_evidence: bool  # whether its prediction uses recent frames' evidence (``routing.evidence``)
    # whether the tiles it leaves to interpolation may take the caller's own interpolated plane
    fills_from_base: bool

    def plan(self, x, grid, budget, has_base: bool, reuse=None, evidence=None) -> TilePlan | PixelPlan:
        """The plan for frame ``x`` (1, 1, H, W) on ``grid`` under ``budget``. ``has_base``: the
        caller brings the interpolated frame, so interpolation costs this frame nothing. ``reuse``:
        (tiles whose previous output may be kept, their routes, still tiles due for their refresh),
        for routers that can use it (``reuses``). ``evidence``: the stream's ``RouteEvidence``, for
        routers that take it (``takes_evidence``)."""

    def reset(self) -> None:
        """Forget the previous frame (a new stream, or frames asked for out of order)."""

    def unit_macs(self, grid) -> dict[str, float]:
        """MACs of one unit of each kind of work its plans buy, for prices not yet measured."""
