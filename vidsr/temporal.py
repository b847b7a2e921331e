"""What a stream's earlier frames leave for the next: tiles whose input has not changed keep their
output instead of running again, and the time goes to the tiles that changed.

Per tile it keeps the input it was last computed from, the route it took and how many frames in a
row it has been reused, and it keeps the last output. A tile may take its previous output again
while no pixel of its input is further than ``REUSE_DIFF`` from the input it was computed from
(the largest change, not the mean: a subject entering a corner of a tile changes few pixels by
much; and against the input it was computed from, not the frame before, so drift cannot build up
however slowly the content moves) and for at most ``MAX_AGE`` frames in a row (``age_limits``:
fewer for some tiles, so that they fall due on different frames). Decoded video keeps
static areas exact (a codec's skipped blocks copy the reference) or within a level or two. The
router decides: keeping a tile's previous route costs nothing, any other route costs as usual
(``ARMRouter.plan(reuse=...)``), so a tile computed cheaply when the budget was short is upgraded
when there is time; a tile refreshed at its age limit runs on its route or a dearer one, never a
cheaper one (that would change a still picture twice: down now, and up again when time allows).
On static content the output is then the same from frame to frame, which also removes flicker
there.

A tile that runs again because something moved in it keeps its still pixels: an output pixel whose
input within the network's receptive radius (the tiles' context) is within the same bound keeps its
previous output when that came from the same route or a dearer one (``still_pixels``). Without
this, the background around a moving subject changed whenever its tile's route did (a route swap
shows as shimmer on pixels the truth keeps unchanged); with it, a still pixel only ever changes to
a dearer route's output. Each output pixel keeps its own reference input, route and age, so the
same bound and the same ``MAX_AGE`` hold per pixel, but for one rule: a pixel at its age limit in a
tile that now runs a cheaper route waits (up to twice the limit) for a frame that runs its tile on
its route or a dearer one, as a whole tile's refresh is never cheaper. Where the test finds almost
nothing still (a pan), it waits a few frames before it looks again (``STILL_MIN_SHARE``).

The state belongs to the stream, not the engine: the CLI keeps one per run; the VapourSynth filter,
asked for frames in any order, keeps one and uses it only when the frame before is the last one it
computed. There it does not move the budget (``reallocate=False``): a frame is planned as it would
be alone, and only tiles (and still pixels) that take the same route as before keep their output,
so a frame's output depends on the order frames are asked for by no more than the reuse bound lets
the input differ.
"""

from __future__ import annotations

import numpy as np
import torch

from .routing.evidence import RouteEvidence

# Largest change of any pixel of a tile's LR luma (0..1) since it was computed up to which its
# previous output is kept: two 8-bit levels. Keeping tiles costs at most 0.003 dB up to four on the
# static and animation clips (BENCHMARKS.md, video-aware compute, reuse bound); two keeps the
# still pixels that x264's noise moves by a level beside a moving subject (flicker there 5% lower
# than at one level, and no lower at three or four: BENCHMARKS.md, keeping still pixels).
REUSE_DIFF = 2.0 / 255
MAX_AGE = 30  # frames a tile's output may be reused in a row before it is computed again
# Tiles reach their limit on different frames, between MAX_AGE - STAGGER + 1 and MAX_AGE: a static
# scene's tiles, all computed on one frame, would otherwise all fall due on one later frame, which
# the budget cannot cover at once (they would come back on cheap routes, and be kept so)
STAGGER = MAX_AGE // 2
SAMPLE_STRIDE = 4  # ``reusable`` looks at every 4th row and column before it measures every pixel
# Where the still-pixel test keeps under this share of the pixels it looked at (the tiles that ran
# and could keep some), the next frames skip it (1, 2, 4, then up to STILL_MAX_SKIP frames while it
# keeps finding as little): on a full-frame pan it kept 0.65% of the pixels on average (under 1% on
# 49 of 60 frames), too few to change the picture, and cost 2-3 ms of a frame's 33 at 30 fps, time
# the networks lost. A small subject over a still background keeps most of its tiles' pixels.
STILL_MIN_SHARE = 0.01
STILL_MAX_SKIP = 8


def age_limits(tiles: int) -> np.ndarray:
    """Per tile, the frames in a row its output may be reused (neighbours fall due apart)."""
    return MAX_AGE - (np.arange(tiles) * 7) % STAGGER


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """(H, W) bool: true within ``radius`` (a square) of any true pixel of ``mask``. Per axis an OR
    over a window of 2 * radius + 1, built by doubling: a few whole-plane ORs, where a max pool
    over the same window took 20 ms for a 360p frame on 2 cores."""
    if radius <= 0:
        return mask.clone()
    k = 2 * radius + 1
    for dim in (0, 1):
        pad = mask.new_zeros(mask.shape[:dim] + (radius,) + mask.shape[dim + 1:])
        acc, width = torch.cat([pad, mask, pad], dim), 1
        while width < k:  # acc[i] is the OR of the padded mask over [i, i + width)
            step = min(width, k - width)
            n = acc.shape[dim] - step
            acc = acc.narrow(dim, 0, n) | acc.narrow(dim, step, n)
            width += step
        mask = acc
    return mask


class StreamState:
    def __init__(self, reallocate: bool = True, reuse: bool = True, evidence: bool = False, still: bool = True):
        self.reallocate = reallocate  # whether a kept tile's time goes to the others (planned with reuse)
        self.reuse = reuse  # whether unchanged tiles keep their output (``--no-reuse`` turns it off)
        self.still = still  # whether tiles that run keep their still pixels (off only to measure it)
        # the last frames' disagreement as the router's evidence (``--predictor last-frame``)
        self.evidence = RouteEvidence() if evidence else None
        self.clear()

    def clear(self) -> None:
        """Forget everything (a new stream, a seek, another model)."""
        self.key = None
        self.reference: torch.Tensor | None = None  # (1, 1, H, W) input each tile was computed from
        self.routes: np.ndarray | None = None  # per tile, the route its output came from
        self.age: np.ndarray | None = None  # per tile, frames in a row its output was reused
        # per input pixel: the route its output block came from, and frames since it was computed;
        # per tile the dearest of its pixels' routes
        self.pixel_routes: torch.Tensor | None = None
        self.pixel_age: torch.Tensor | None = None
        self.tile_best: np.ndarray | None = None
        self.output = None  # the last output plane (integer numpy or float tensor)
        self.still_skip = 0  # frames the still-pixel test still skips, and the last such wait
        self.still_wait = 0
        if getattr(self, "evidence", None) is not None:
            self.evidence.clear()

    def reusable(self, x: torch.Tensor, grid, key) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(tiles that may keep their previous output, the routes those outputs came from, tiles
        whose input is as unchanged but that reached their age limit: their refresh), or None when
        nothing may be reused (no previous frame of this shape, model and output kind)."""
        if not self.reuse or self.key != key or self.reference is None:
            return None
        bound = REUSE_DIFF * (1 + 1e-6)
        # every SAMPLE_STRIDE-th pixel first: its largest change can only be smaller than the tile's,
        # so a tile over the bound there is over it; when every tile is (a pan), that settles it at
        # a sixteenth of the cost of the exact maxima (which a frame at 30 fps notices)
        s = SAMPLE_STRIDE
        sampled = grid.tile_max((x[..., ::s, ::s] - self.reference[..., ::s, ::s]).abs_(), stride=s)
        if not bool((sampled.flatten().cpu().numpy() <= bound).any()):
            nothing = np.zeros(len(self.routes), dtype=bool)
            return nothing, self.routes, nothing
        change = grid.tile_max((x - self.reference).abs_()).flatten().cpu().numpy()
        unchanged = (change <= bound) & (self.routes > 0)
        young = self.age < age_limits(len(self.age))
        return unchanged & young, self.routes, unchanged & ~young

    def still_pixels(self, x: torch.Tensor, grid, key, routes: np.ndarray, reused: np.ndarray | None,
                     radius: int, same_route: bool = False) -> torch.Tensor | None:
        """Input pixels of the tiles this frame computed whose previous output stays: every input
        pixel within ``radius`` of it (the tiles' context: beyond it a change moves the output by
        under a level) within ``REUSE_DIFF`` of its reference, computed fewer than ``MAX_AGE`` frames
        ago (twice that while its tile runs cheaper) by a route at least as dear as its tile's now
        (``same_route``: the same route, for frames planned as alone). (H, W) bool, or None."""
        if not (self.reuse and self.still) or self.key != key or self.reference is None or self.pixel_routes is None:
            return None
        if self.still_skip > 0:  # the last test found almost nothing still (``STILL_MIN_SHARE``)
            self.still_skip -= 1
            return None
        computed = np.ones(len(routes), dtype=bool) if reused is None else ~reused
        # where the dearest route of a tile's pixels is cheaper than its route now, nothing stays
        candidate = computed & (self.tile_best > 0) & (self.tile_best >= routes)
        if not candidate.any():
            return None
        keep = self._still_in(x, grid, candidate, routes, radius, same_route)
        if keep is None or float(keep.sum()) < STILL_MIN_SHARE * float(grid.core_pixels[candidate].sum()):
            self.still_wait = min(STILL_MAX_SKIP, max(1, 2 * self.still_wait))
            self.still_skip = self.still_wait
        else:
            self.still_wait = 0
        return keep

    def _still_in(self, x: torch.Tensor, grid, candidate: np.ndarray, routes: np.ndarray, radius: int,
                  same_route: bool) -> torch.Tensor | None:
        """``still_pixels`` among the ``candidate`` tiles: (H, W) bool, or None when none."""
        # only the candidate tiles' box (and the reach around it) is looked at: usually a few tiles
        # around what moves
        ys, xs = grid.core_rows_cols(candidate)
        y0, y1 = max(0, ys[0] - radius), min(grid.height, ys[1] + radius)
        x0, x1 = max(0, xs[0] - radius), min(grid.width, xs[1] + radius)
        moved = (x[0, 0, y0:y1, x0:x1] - self.reference[0, 0, y0:y1, x0:x1]).abs_() > REUSE_DIFF * (1 + 1e-6)
        if bool(moved.all()):
            return None
        box = (slice(y0, y1), slice(x0, x1))
        here = ~dilate(moved, radius) & grid.per_pixel(candidate, x.device)[box]
        old_routes, new_routes = self.pixel_routes[box], grid.per_pixel(routes.astype(np.int8), x.device)[box]
        # a pixel at its age limit is computed again when its tile runs its route or a dearer one;
        # while the tile runs cheaper it waits (a refresh would swap it to the cheaper route and back
        # later: flicker and a loss), up to twice the limit
        age = self.pixel_age[box]
        here &= (age < MAX_AGE) | ((old_routes > new_routes) & (age < 2 * MAX_AGE))
        here &= (old_routes == new_routes) if same_route else (old_routes >= new_routes)
        keep = torch.zeros(x.shape[-2:], dtype=torch.bool, device=x.device)
        keep[box] = here
        return keep if bool(keep.any()) else None

    def remember(self, x: torch.Tensor, grid, key, routes: np.ndarray, reused: np.ndarray | None, output,
                 still: torch.Tensor | None = None) -> None:
        """After a frame: tiles that ran take this frame's input as their reference; reused ones
        keep theirs and age by one. Per pixel the same, where ``still`` pixels of the tiles that ran
        kept their previous output."""
        routes = np.asarray(routes)
        new_routes = grid.per_pixel(routes.astype(np.int8), x.device)  # routes are few; ages under 2 * MAX_AGE
        fresh = self.key != key or self.reference is None or self.pixel_routes is None
        if fresh or ((reused is None or not reused.any()) and still is None):
            self.reference = x.clone()
            self.age = np.zeros(len(routes), dtype=np.int64)
            self.pixel_routes = new_routes
            self.pixel_age = torch.zeros(new_routes.shape, dtype=torch.int16, device=x.device)
            self.tile_best = routes.copy()
        else:
            kept = torch.zeros(new_routes.shape, dtype=torch.bool, device=x.device) if reused is None else \
                grid.per_pixel(reused, x.device)
            if still is not None:
                kept |= still
            self.reference = torch.where(kept, self.reference, x)
            self.age = np.zeros(len(routes), dtype=np.int64) if reused is None else np.where(reused, self.age + 1, 0)
            self.pixel_routes = torch.where(kept, self.pixel_routes, new_routes)
            self.pixel_age = torch.where(kept, self.pixel_age + 1, 0).to(torch.int16)
            best = self.tile_best if reused is None else np.where(reused, self.tile_best, routes)
            if still is not None:
                best = grid.tile_max(self.pixel_routes[None, None].float()).flatten().cpu().numpy().astype(routes.dtype)
            self.tile_best = best
        self.key = key
        self.routes = routes.copy()
        self.output = output.copy() if isinstance(output, np.ndarray) else output.clone()

    def fill(self, out, grid, reused: np.ndarray, scale: int) -> None:
        """Write the previous output's cores of the ``reused`` tiles into ``out`` (same kind)."""
        s = scale
        for g in grid.regions(np.nonzero(reused)[0], max_side=max(grid.rows, grid.cols)):
            rows, cols = slice(g.y0 * s, (g.y0 + g.h) * s), slice(g.x0 * s, (g.x0 + g.w) * s)
            out[..., rows, cols] = self.output[..., rows, cols]

    def fill_pixels(self, out, still: torch.Tensor, scale: int) -> None:
        """Write the previous output of the ``still`` input pixels' blocks into ``out`` (same kind)."""
        if isinstance(out, np.ndarray):
            mask = still.cpu().numpy().repeat(scale, 0).repeat(scale, 1)
            out[mask] = self.output[mask]
        else:
            mask = still.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
            out[..., mask] = self.output[..., mask]
