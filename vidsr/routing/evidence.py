"""Where the dear routes pay, from what the last frames measured: ARM's second predictor.

The Edge-to-PSNR table predicts, from a tile's edge score alone, how much each route gains over
interpolation on an average tile of that score. A tile that ran a network route in a recent frame
left better evidence of its own: how far that route's output moved from the interpolated base
there (their mean squared difference, the *disagreement*). A network that changes a tile a lot is
correcting a lot, so disagreement is evidence of where the dear routes pay.

Per tile with evidence, its table gains (every route's predicted error below interpolation) are
scaled by its disagreement over the gain the table predicted for the route that ran, relative to
the frame's median of that ratio. The evidence so re-ranks tiles against each other while the
table keeps the level, and tiles without evidence (never run, or run on interpolation) keep the
table's prediction, comparable with the rest. Evidence is used while it is at most ``MAX_AGE``
frames old and the tile's content is still alike: its table prediction for interpolation (its edge
score, in effect) moved by less than ``GATE`` (in log MSE). Video moves, and a tile at the same
place after a cut or a fast pan holds other content.

The state belongs to a stream (``vidsr.temporal.StreamState``); the VapourSynth filter, asked for
frames in any order, does not use it, so its output never depends on the order frames are asked for
through this predictor.
"""

from __future__ import annotations

import numpy as np

MAX_AGE = 8  # frames a tile's disagreement stays evidence
GATE = 0.2  # largest change of log(table-predicted interpolation MSE) for which it is the same content
SCALE_LIMITS = (1 / 8, 8)  # one tile's evidence scales the table's gains by at most this much either way
MIN_GAIN = 1e-7  # table gains below this (a route predicted no better than interpolation) carry no ratio


class RouteEvidence:
    """Per tile: the network route that last ran there, its disagreement with the interpolated
    base, the table's interpolation MSE for the tile then, and the frames since."""

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self.routes: np.ndarray | None = None
        self.disagreement: np.ndarray | None = None
        self.table_base: np.ndarray | None = None
        self.age: np.ndarray | None = None
        self._seen: np.ndarray | None = None  # this frame's table prediction (routes, tiles), for observe

    def adjust(self, mse: np.ndarray) -> np.ndarray:
        """The table's predicted MSE (routes, tiles) corrected where tiles have evidence; route 0 is
        interpolation. Returns a new array; ``mse`` is left alone."""
        self._seen = mse.copy()
        if self.routes is None or len(self.routes) != mse.shape[1]:
            return mse.copy()
        gains = mse[:1] - mse  # (routes, tiles): predicted error below interpolation
        ran = self.routes
        tiles = np.nonzero((ran > 0) & (self.age <= MAX_AGE)
                           & (np.abs(np.log(np.maximum(mse[0], 1e-12) / np.maximum(self.table_base, 1e-12))) < GATE))[0]
        predicted = gains[ran[tiles], tiles]
        usable = predicted > MIN_GAIN
        tiles, predicted = tiles[usable], predicted[usable]
        out = mse.copy()
        if not len(tiles):
            return out
        ratio = np.maximum(self.disagreement[tiles], 1e-12) / predicted
        ratio = ratio / np.exp(np.median(np.log(ratio)))  # relative to the frame's typical tile
        scale = np.clip(ratio, *SCALE_LIMITS)
        out[:, tiles] = mse[:1, tiles] - scale[None] * gains[:, tiles]
        return out

    def observe(self, routes: np.ndarray, disagreement: np.ndarray, computed: np.ndarray | None = None) -> None:
        """After a frame: ``routes`` per tile, ``disagreement`` per tile (mean squared difference of
        its output from the interpolated base; any unit, one for the whole stream), ``computed``: the
        tiles whose output was computed this frame (default: all; kept tiles bring nothing new). A
        frame that was not planned through ``adjust`` (the full network, no router) only ages it."""
        n = len(routes)
        seen, self._seen = self._seen, None
        if self.routes is None or len(self.routes) != n:
            self.routes = np.zeros(n, dtype=np.int64)
            self.disagreement = np.zeros(n)
            self.table_base = np.ones(n)
            self.age = np.full(n, MAX_AGE + 1, dtype=np.int64)
        self.age = self.age + 1
        if seen is None or seen.shape[1] != n:
            return
        fresh = np.asarray(routes) > 0
        if computed is not None:
            fresh &= np.asarray(computed, dtype=bool)
        self.routes = np.where(fresh, routes, self.routes)
        self.disagreement = np.where(fresh, disagreement, self.disagreement)
        self.table_base = np.where(fresh, seen[0], self.table_base)
        self.age[fresh] = 0
