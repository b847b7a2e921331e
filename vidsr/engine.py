"""The engine: the one place that turns a frame's luma plane into an upscaled plane.

Every front end (CLI video and images, the VapourSynth filter, the benchmarks) calls
``Engine.upscale_plane`` (integer planes as decoded) or ``Engine.upscale`` (float tensors). The
engine moves the plane to the model's device, normalises it to the range the networks were trained
on, splits it into tiles, asks the router (if the model has one) which route each tile or pixel
takes under the frame's budget, runs each route on its own batch, merges, and returns the plane with
per-frame statistics.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
import torch

from .budget import FrameStats, TimeBudget  # noqa: F401  (re-exported: routers and front ends use them)
from .errors import SettingsError
from .models.descriptor import Upscaler
from .tiling import TileGrid

# The networks are trained on BT.601 studio-range luma (16..235 of 255). Full-range video is mapped
# into that range on the way in and back on the way out.
STUDIO_LO, STUDIO_SPAN = 16.0 / 255.0, 219.0 / 255.0

# LR tile side. ARM routes per tile: its table is fitted on 32-px patches, but a 32-px tile alone
# computes 2.1-2.6x its core (context), so at the same wall time 64-px tiles buy 0.1-0.6 dB more
# under --budget (`vidsr bench routing --tile`, BENCHMARKS.md) for 0.03-0.1 dB less at the same
# MACs; the realtime preset keeps 32, where a frame buys only a few tiles. PCSR decides per pixel,
# so its tiles only bound memory; without routing, large tiles waste least on context.
DEFAULT_TILE = {"arm": 64, "pcsr": 64, None: 128}
# Neighbouring tiles merge into regions of at most this many LR pixels a side, which bounds
# activation memory. A pass with no routing takes larger ones: the full 10-conv x2 net on a 360p
# frame ran 7% faster in 512-px regions than in 256-px ones (912 vs 978 ms; 1.022x its nominal MACs
# instead of 1.084x) for 211 MB more peak RSS at 1080p output.
REGION_SIDE, UNROUTED_REGION_SIDE = 256, 512


class _CallerFillsBase:
    """Passed as ``base`` to a router that supports it (``fills_from_base``): interpolated tiles are
    left unwritten because the caller keeps its own integer base plane there."""


CALLER_FILLS_BASE = _CallerFillsBase()


def _int_dtype(bits: int):
    return np.uint8 if bits <= 8 else np.uint16


def resolve_device(name: str) -> str:
    """A torch device name from what a user gave: "auto" (CUDA when torch sees one), "cpu", "cuda",
    "cuda:N". Front ends put their own prefix on the error."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SettingsError(f"device {name!r} asked for, but torch sees no CUDA device")
    if not (name == "cpu" or name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit())):
        raise SettingsError(f"unknown device {name!r} (auto, cpu, cuda, cuda:N)")
    return name


class Engine:
    def __init__(self, upscaler: Upscaler, tile: int | None = None, context: int | None = None,
                 batch: int = 64, router=None, batch_pixels: int = 1 << 17):
        self.upscaler = upscaler
        d = upscaler.descriptor
        self.scale = d.scale
        family = d.router if router is not None else None
        self.tile = tile or DEFAULT_TILE[family]
        # a pass with no routing (budget 1, or no router) runs on the unrouted default's larger tiles
        # unless the user chose one: no per-tile decision needs the small ones, and fewer windows
        # compute less context (x4 val: 1.000x the nominal MACs instead of 1.044x with 64-px tiles)
        self.single_tile = tile or DEFAULT_TILE[None]
        self.max_region: int | None = None  # tiles a side of a merged region (None: ``region_limit``)
        self.context = d.tile.context if context is None else context
        self.batch = batch  # most windows per network call
        self.batch_pixels = batch_pixels  # and most LR window pixels per call (bounds memory)
        self.router = router
        self.executed_macs = 0.0
        # CPU threads: networks get all of torch's threads (or as many as the fps controller finds
        # fastest in a busy pipeline: ``frame_threads``); the rest of a frame's work (conversions,
        # edge scores, planning) is small and memory-bound and runs on one, beside the decoder and
        # encoder threads. Measured on 2 cores, 360p -> 720p at budget 0: 31 fps instead of 22.
        self.threads = torch.get_num_threads()
        self._network_threads = self.threads  # this frame's (the fps controller may choose fewer)
        self._grids: dict[tuple[int, int], TileGrid] = {}

    @property
    def descriptor(self):
        return self.upscaler.descriptor

    def grid(self, height: int, width: int, tile: int | None = None) -> TileGrid:
        """The tile grid of a frame size (``tile``: the side, default the router's)."""
        key = (height, width, tile or self.tile)
        if key not in self._grids:
            self._grids[key] = TileGrid(height, width, key[2], self.context, self.descriptor.tile.min_size)
        return self._grids[key]

    def region_limit(self, grid: TileGrid, side: int = REGION_SIDE) -> int:
        """Merged regions are at most this many tiles a side: ``max_region`` if set, else as many
        as make ``side`` LR pixels."""
        return self.max_region or max(1, side // grid.tile)

    # -- integer planes ------------------------------------------------------------------------

    @torch.inference_mode()
    def upscale_plane(self, plane: np.ndarray, bits: int = 8, full_range: bool = False,
                      budget: float = 1.0, out_bits: int | None = None,
                      base: np.ndarray | None = None) -> tuple[np.ndarray, FrameStats]:
        """(H, W) uint8/uint16 luma of ``bits`` -> (H*s, W*s) at ``out_bits`` (default: the same).

        ``base``: the plane already interpolated to the output size (at ``out_bits``), e.g. by
        swscale for the chroma anyway; tiles routed to interpolation take it instead of paying for
        their own pass. With a router that supports it, those tiles are never converted to float at
        all: the network tiles are written into a copy of ``base`` (at low budgets the full-frame
        float conversions were most of a frame's time)."""
        with self.light_threads():  # the network passes' threads are set in ``upscale``
            return self._upscale_plane(plane, bits, full_range, budget, out_bits, base)

    def _upscale_plane(self, plane, bits, full_range, budget, out_bits, base):
        out_bits = out_bits or bits
        x = self.to_unit(plane, bits, full_range)
        if (base is not None and getattr(self.router, "fills_from_base", False) and not self._full_everywhere(budget)
                and min(plane.shape) >= self.descriptor.tile.min_size):
            y, stats = self.upscale(x, budget, CALLER_FILLS_BASE)
            out = np.array(base, dtype=_int_dtype(out_bits))
            self._write_cores(y, self.grid(*plane.shape), stats.network_tiles, out, out_bits, full_range)
            return out, stats
        base_t = None if base is None else self.to_unit(base, out_bits, full_range)
        y, stats = self.upscale(x, budget, base_t)
        return self.from_unit(y[0, 0], out_bits, full_range), stats

    def to_unit(self, plane: np.ndarray, bits: int, full_range: bool) -> torch.Tensor:
        """An integer plane as (1, 1, H, W) on the model's device, in the networks' luma range."""
        x = torch.from_numpy(np.ascontiguousarray(plane)).to(self.upscaler.device)
        x = x.to(self.upscaler.dtype).div_(float((1 << bits) - 1))[None, None]
        return x * STUDIO_SPAN + STUDIO_LO if full_range else x

    @staticmethod
    def from_unit(y: torch.Tensor, bits: int, full_range: bool) -> np.ndarray:
        """The inverse of ``to_unit``: a float plane already clamped to [0, 1] (overwritten) as a
        numpy integer plane of ``bits``, rounded."""
        peak = float((1 << bits) - 1)
        if full_range:
            y = (y - STUDIO_LO) / STUDIO_SPAN
        y = y.mul_(peak).round_().clamp_(0, peak)
        return y.to(torch.int32).cpu().numpy().astype(_int_dtype(bits))

    # -- float tensors -------------------------------------------------------------------------

    def light_threads(self):
        """One torch thread for a frame's bookkeeping (CPU only)."""
        return self._torch_threads(1)

    def network_threads(self):
        """The frame's network threads (all of torch's unless ``frame_threads`` says otherwise) for a
        network pass (inside ``light_threads``)."""
        return self._torch_threads(self._network_threads)

    def thread_options(self) -> tuple[int, ...]:
        """Network thread counts worth choosing among in a busy pipeline: all of torch's, or one."""
        return (self.threads, 1) if self.upscaler.device.type == "cpu" and self.threads > 1 else (self.threads,)

    @contextmanager
    def frame_threads(self, n: int | None):
        """Network passes inside run on ``n`` threads (None: all of torch's)."""
        before = self._network_threads
        self._network_threads = n or self.threads
        try:
            yield
        finally:
            self._network_threads = before

    @contextmanager
    def _torch_threads(self, n: int):
        if self.upscaler.device.type != "cpu" or self.threads <= 1:
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def upscale(self, x: torch.Tensor, budget: float = 1.0, base: torch.Tensor | None = None) -> tuple[torch.Tensor, FrameStats]:
        """(1, 1, H, W) float in [0, 1] on the model's device -> (1, 1, H*s, W*s), with stats.
        ``base``: an interpolated (1, 1, H*s, W*s) the routers may use for interpolated tiles."""
        with torch.inference_mode(), self.light_threads(), self.frame_threads(getattr(budget, "threads", None)):
            return self._upscale(x, budget, base)

    def _upscale(self, x, budget, base):
        h, w = x.shape[-2:]
        pad_h, pad_w = max(0, self.descriptor.tile.min_size - h), max(0, self.descriptor.tile.min_size - w)
        if pad_h or pad_w:  # tiny frames: replicate edges up to the model's minimum, crop after
            x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
            base = None
        routed = self.router is not None and not self._full_everywhere(budget)
        grid = self.grid(*x.shape[-2:], None if routed else self.single_tile)
        self.executed_macs = 0.0  # run_tiles and the routers add what they really run
        if routed:
            out, stats = self.router.run(self, x, grid, budget, base)
        else:
            out, stats = self._run_single(x, grid, budget)
        stats.executed_macs_per_pixel = self.executed_macs / (grid.height * grid.width * self.scale**2)
        if pad_h or pad_w:
            out = out[..., : h * self.scale, : w * self.scale]
        if base is CALLER_FILLS_BASE:  # only the network tiles hold values; _write_cores clamps them
            return out, stats
        return out.clamp_(0, 1), stats

    @staticmethod
    def _full_everywhere(budget) -> bool:
        """Budget 1 means the full network on every pixel (not the router's guess at what is as good)."""
        return not isinstance(budget, TimeBudget) and budget >= 1

    def _write_cores(self, y: torch.Tensor, grid: TileGrid, ids, out: np.ndarray, bits: int, full_range: bool) -> None:
        """The cores of tiles ``ids`` from float ``y`` into the integer plane ``out``, converted as
        ``upscale_plane`` converts a whole frame."""
        s = self.scale
        for g in grid.regions(ids, max_side=max(grid.rows, grid.cols)):
            rows, cols = slice(g.y0 * s, (g.y0 + g.h) * s), slice(g.x0 * s, (g.x0 + g.w) * s)
            out[rows, cols] = self.from_unit(y[0, 0, rows, cols].clamp(0, 1), bits, full_range)

    def run_tiles(self, x: torch.Tensor, grid: TileGrid, ids, route, out: torch.Tensor,
                  region_side: int = REGION_SIDE) -> float:
        """Run ``route`` on tiles ``ids``, writing their cores into ``out``; returns ms.

        Neighbouring tiles are merged into rectangles (``TileGrid.regions``, at most
        ``region_side`` LR pixels a side) so they share their context; rectangles of the same
        window shape run as one batch."""
        t0 = time.perf_counter()
        macs = (self.descriptor.full_route if route is None else self.descriptor.route(route)).macs_per_pixel
        batches = self.region_batches(grid, ids, region_side)
        self.executed_macs += macs * self.batched_pixels(batches) * self.scale**2
        with self.network_threads():
            for chunk in batches:
                grid.place_regions(out, chunk, self.upscaler(grid.extract_regions(x, chunk), route), self.scale)
        return (time.perf_counter() - t0) * 1000

    def region_batches(self, grid: TileGrid, ids, region_side: int = REGION_SIDE) -> list[list]:
        """Tiles ``ids`` as merged rectangles (``TileGrid.regions``: neighbours share their
        context), grouped by window shape and chunked so that one network call holds at most
        ``batch`` windows and ``batch_pixels`` LR pixels."""
        by_shape: dict[tuple[int, int], list] = {}
        for region in grid.regions(ids, self.region_limit(grid, region_side)):
            by_shape.setdefault(region.window_shape, []).append(region)
        batches = []
        for (h, w), group in by_shape.items():
            n = max(1, min(self.batch, self.batch_pixels // (h * w)))
            batches += [group[i : i + n] for i in range(0, len(group), n)]
        return batches

    @staticmethod
    def batched_pixels(batches) -> int:
        """LR pixels the windows of ``batches`` hold (what a network pass over them computes)."""
        return sum(g.window_shape[0] * g.window_shape[1] for chunk in batches for g in chunk)

    def _run_single(self, x, grid, budget):
        out = grid.new_output(x, self.scale)
        full = self.descriptor.full_route
        ms = self.run_tiles(x, grid, range(len(grid)), None, out, UNROUTED_REGION_SIDE)
        return out, FrameStats(budget=1.0, route_shares={full.name: 1.0}, macs_per_pixel=full.macs_per_pixel,
                               ms={full.name: ms})
