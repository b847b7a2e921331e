"""Split a frame into overlapping tiles, run them in batches, and merge the results without seams.

Geometry: the frame is partitioned into *cores* of about ``tile`` x ``tile`` LR pixels: each axis
is cut into as many cores as it holds tiles (rounded), their lengths differing by at most one
(``_axis``), so a 200-px side with 64-px tiles is cut 67+67+66, not 64+64+64+8. Each core is run
inside a *window* that adds ``context`` pixels on every side; all windows have the same size (a
window that would cross the frame edge is shifted inward instead of shrunk), so any set of tiles
stacks into one batch. Only the core of each output is kept.
With ``context`` at least the model's receptive radius, a tiled run equals an untiled one; routing
picks one route per core, so every output pixel comes from exactly one route.

The geometry is plain integers. The data movement works on torch tensors on any device (on a GPU
the gathers and copies run there, so frames never leave it) and on numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Region:
    """A rectangle of whole tiles run as one window: its core (LR) and its window (core plus
    context, clipped to the frame)."""

    y0: int
    x0: int
    h: int
    w: int
    wy0: int
    wx0: int
    wy1: int
    wx1: int
    tiles: tuple[int, ...]

    @property
    def window_shape(self) -> tuple[int, int]:
        return self.wy1 - self.wy0, self.wx1 - self.wx0


@dataclass(frozen=True)
class Tile:
    y0: int  # core, LR coordinates
    x0: int
    h: int
    w: int
    wy: int  # window origin (its size is the grid's window size)
    wx: int


def _axis(size: int, tile: int, context: int) -> tuple[list[tuple[int, int, int]], int]:
    """Cores along one axis as (start, length, window start), and the window length. The axis is
    cut into as many cores as it holds tiles (rounded), their lengths differing by at most one,
    rather than into ``tile``-long cores with a sliver left over: a sliver's window is mostly
    context and a thin window runs at a fraction of the speed per MAC, while every core near
    ``tile`` keeps what the tile size was chosen for."""
    n = max(1, round(size / tile))
    short, longer = divmod(size, n)  # the first ``longer`` cores are one pixel longer
    window = min(short + (longer > 0) + 2 * context, size)
    cores, start = [], 0
    for i in range(n):
        length = short + (i < longer)
        cores.append((start, length, min(max(start - context, 0), size - window)))
        start += length
    return cores, window


class TileGrid:
    def __init__(self, height: int, width: int, tile: int, context: int, min_size: int = 1):
        if tile < 1 or context < 0:
            raise ValueError("tile must be >= 1 and context >= 0")
        self.height, self.width, self.tile, self.context = height, width, tile, context
        rows, self.win_h = _axis(height, tile, context)
        cols, self.win_w = _axis(width, tile, context)
        if min(self.win_h, self.win_w) < min_size:
            raise ValueError(f"frame {width}x{height} is smaller than the model's minimum tile {min_size}")
        self.rows, self.cols = len(rows), len(cols)
        self.tiles = [Tile(y, x, h, w, wy, wx) for (y, h, wy) in rows for (x, w, wx) in cols]
        t = self.tiles
        self._arr = {k: np.array([getattr(a, k) for a in t], dtype=np.int64) for k in ("y0", "x0", "h", "w", "wy", "wx")}
        # which row / column of cores each LR row / column belongs to
        self._row_of = np.repeat(np.arange(self.rows), [h for _, h, _ in rows])
        self._col_of = np.repeat(np.arange(self.cols), [w for _, w, _ in cols])
        self._pooling: dict = {}
        self._core_rows, self._core_cols = np.bincount(self._row_of), np.bincount(self._col_of)  # core sides
        self.core_pixels = (self._arr["h"] * self._arr["w"]).astype(np.float64)  # LR pixels of each core

    def __len__(self) -> int:
        return len(self.tiles)

    @property
    def shape(self) -> tuple[int, int]:
        """Tiles per column and per row: the layout of per-tile maps (edge scores, routes)."""
        return self.rows, self.cols

    def tile_means(self, plane: torch.Tensor, scale: int = 1) -> torch.Tensor:
        """The mean of a (N, 1, H*scale, W*scale) plane over each core (scaled): (N, rows, cols),
        vectorised on the plane's device as two products with 0/1 matrices (cores differ in size by
        a pixel, so a strided pooling would not fit them)."""
        key = (scale, plane.device, plane.dtype)
        if key not in self._pooling:
            def assign(index, n):  # (pixels, n): 1 where the pixel belongs to core n
                one_hot = np.zeros((len(index) * scale, n))
                one_hot[np.arange(len(index) * scale), np.repeat(index, scale)] = 1
                return torch.from_numpy(one_hot / one_hot.sum(0)).to(plane.device, plane.dtype)
            self._pooling[key] = (assign(self._row_of, self.rows).T.contiguous(), assign(self._col_of, self.cols))
        rows, cols = self._pooling[key]
        return rows @ plane[:, 0] @ cols

    def tile_max(self, plane: torch.Tensor, stride: int = 1) -> torch.Tensor:
        """The largest value of a (N, 1, H, W) plane over each core: (N, rows, cols), as two
        segment maxima (each band of core rows, then each column of cores in it) on the plane's
        device: a maximum per slice, six times faster than scattering every pixel into its core.
        ``stride``: ``plane`` holds every ``stride``-th row and column of the frame only (a core
        that none of them crosses gets -inf)."""
        key = ("max sizes", stride)
        if key not in self._pooling:  # sampled rows and columns per core row and column
            self._pooling[key] = (np.bincount(self._row_of[::stride], minlength=self.rows).tolist(),
                                  np.bincount(self._col_of[::stride], minlength=self.cols).tolist())
        row_sizes, col_sizes = self._pooling[key]
        if 0 in row_sizes or 0 in col_sizes:
            return self._tile_max_scattered(plane, stride)
        v = plane[:, 0]
        bands = torch.stack([b.amax(1) for b in v.split(row_sizes, 1)], 1)  # (N, rows, W)
        return torch.stack([c.amax(2) for c in bands.split(col_sizes, 2)], 2)

    def _tile_max_scattered(self, plane: torch.Tensor, stride: int) -> torch.Tensor:
        """``tile_max`` where some core has no sampled row or column: every pixel scattered into
        its core's maximum."""
        n, _, h, w = plane.shape
        key = ("max", plane.device, stride)
        if key not in self._pooling:
            self._pooling[key] = (torch.from_numpy(self._row_of[::stride].copy()).to(plane.device),
                                  torch.from_numpy(self._col_of[::stride].copy()).to(plane.device))
        row_of, col_of = self._pooling[key]
        v = plane[:, 0]
        by_col = v.new_full((n, h, self.cols), -torch.inf).scatter_reduce_(2, col_of.expand(n, h, w), v, "amax")
        return v.new_full((n, self.rows, self.cols), -torch.inf).scatter_reduce_(
            1, row_of[None, :, None].expand(n, h, self.cols), by_col, "amax")

    def window_pixels(self) -> int:
        return self.win_h * self.win_w

    # -- data movement --------------------------------------------------------------------------

    def extract(self, plane, ids):
        """Windows of tiles ``ids`` from a (1, C, H, W) plane -> (len(ids), C, win_h, win_w)."""
        ids = np.asarray(ids, dtype=np.int64)
        rows = self._arr["wy"][ids][:, None] + np.arange(self.win_h)
        cols = self._arr["wx"][ids][:, None] + np.arange(self.win_w)
        if isinstance(plane, torch.Tensor):
            rows = torch.from_numpy(rows).to(plane.device)
            cols = torch.from_numpy(cols).to(plane.device)
            # (C, n, win_h, win_w) -> (n, C, win_h, win_w)
            return plane[0][:, rows[:, :, None], cols[:, None, :]].transpose(0, 1)
        return np.ascontiguousarray(plane[0][:, rows[:, :, None], cols[:, None, :]].swapaxes(0, 1))

    def new_output(self, plane, scale: int):
        """An empty (1, C, H*s, W*s) array like ``plane``."""
        shape = (1, plane.shape[1], self.height * scale, self.width * scale)
        if isinstance(plane, torch.Tensor):
            return torch.empty(shape, dtype=plane.dtype, device=plane.device)
        return np.empty(shape, dtype=plane.dtype)

    def place(self, out, ids, outputs, scale: int) -> None:
        """Write the cores of ``outputs`` (n, C, win_h*s, win_w*s) for tiles ``ids`` into ``out``."""
        ids = np.asarray(ids, dtype=np.int64)
        s = scale
        for k, i in enumerate(ids.tolist()):
            t = self.tiles[i]
            cy, cx = t.y0 - t.wy, t.x0 - t.wx
            out[0, :, t.y0 * s : (t.y0 + t.h) * s, t.x0 * s : (t.x0 + t.w) * s] = outputs[
                k, :, cy * s : (cy + t.h) * s, cx * s : (cx + t.w) * s
            ]

    # -- merged regions -------------------------------------------------------------------------

    def regions(self, ids, max_side: int = 8) -> list[Region]:
        """Cover tiles ``ids`` with rectangles of whole tiles (at most ``max_side`` tiles a side,
        which bounds memory), greedily: take the first uncovered tile in raster order, grow right,
        then down while the whole row is wanted. Neighbouring tiles then share one window and pay
        for their context once instead of each computing its own (a lone small tile computes
        several times its core)."""
        want = np.zeros((self.rows, self.cols), dtype=bool)
        want.flat[np.asarray(ids, dtype=np.int64)] = True
        out = []
        for r in range(self.rows):
            for c in range(self.cols):
                if not want[r, c]:
                    continue
                c1 = c
                while c1 + 1 < self.cols and want[r, c1 + 1] and c1 + 1 - c < max_side:
                    c1 += 1
                r1 = r
                while r1 + 1 < self.rows and r1 + 1 - r < max_side and want[r1 + 1, c : c1 + 1].all():
                    r1 += 1
                want[r : r1 + 1, c : c1 + 1] = False
                out.append(self._region(r, c, r1, c1))
        return out

    def _region(self, r0, c0, r1, c1) -> Region:
        first, last = self.tiles[r0 * self.cols + c0], self.tiles[r1 * self.cols + c1]
        y0, x0 = first.y0, first.x0
        y1, x1 = last.y0 + last.h, last.x0 + last.w
        ctx = self.context
        tiles = tuple(r * self.cols + c for r in range(r0, r1 + 1) for c in range(c0, c1 + 1))
        return Region(y0, x0, y1 - y0, x1 - x0, max(0, y0 - ctx), max(0, x0 - ctx),
                      min(self.height, y1 + ctx), min(self.width, x1 + ctx), tiles)

    @staticmethod
    def extract_regions(plane, regions: list[Region]):
        """Windows of same-shape regions as one batch (n, C, h, w)."""
        parts = [plane[:, :, g.wy0 : g.wy1, g.wx0 : g.wx1] for g in regions]
        return torch.cat(parts) if isinstance(plane, torch.Tensor) else np.concatenate(parts)

    @staticmethod
    def place_regions(out, regions: list[Region], outputs, scale: int) -> None:
        s = scale
        for k, g in enumerate(regions):
            cy, cx = (g.y0 - g.wy0) * s, (g.x0 - g.wx0) * s
            out[0, :, g.y0 * s : (g.y0 + g.h) * s, g.x0 * s : (g.x0 + g.w) * s] = outputs[
                k, :, cy : cy + g.h * s, cx : cx + g.w * s
            ]

    def core_rows_cols(self, ids) -> tuple[tuple[int, int], tuple[int, int]]:
        """The LR rows and columns ([start, end)) of the box around the cores of tiles ``ids`` (a
        bool array or indices)."""
        ids = np.flatnonzero(ids) if np.asarray(ids).dtype == bool else np.asarray(ids)
        a = self._arr
        return ((int(a["y0"][ids].min()), int((a["y0"][ids] + a["h"][ids]).max())),
                (int(a["x0"][ids].min()), int((a["x0"][ids] + a["w"][ids]).max())))

    def per_pixel(self, values, device) -> torch.Tensor:
        """``core_mask(values)`` as a tensor on ``device``."""
        return torch.from_numpy(self.core_mask(values)).to(device)

    def core_mask(self, values, scale: int = 1):
        """Expand a per-tile array (len(tiles),) into a per-pixel map (H*s, W*s) (numpy), each
        tile's value repeated over its core (repeats, not a gather: twenty times faster)."""
        grid = np.asarray(values).reshape(self.rows, self.cols)
        return np.repeat(np.repeat(grid, self._core_rows * scale, 0), self._core_cols * scale, 1)

