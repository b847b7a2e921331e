"""The engine: the one place that turns a frame's luma plane into an upscaled plane.

Every front end (the CLI's video and images, the VapourSynth filter, the benchmarks) calls
``Engine.upscale_plane`` (integer planes as decoded) or ``Engine.upscale`` (float tensors). Per
frame: move the plane to the model's device in the networks' luma range, split it into tiles
(``vidsr.tiling``), let the router plan under the frame's budget (``vidsr.routing``), let the
executor run the plan and merge (``vidsr.executor``), and return the plane with its stats.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .budget import FULL_NETWORK, MacBudget, TimeBudget
from .errors import SettingsError
from .executor import Executor, FrameStats
from .models.descriptor import Upscaler
from .models.sharpen import LABEL as SHARP_LABEL
from .routing.protocol import TilePlan
from .temporal import StreamState
from .threads import TorchThreads
from .tiling import TileGrid

__all__ = ["Engine", "FrameStats", "MacBudget", "TimeBudget", "FULL_NETWORK", "resolve_device"]

# The networks are trained on BT.601 studio-range luma (16..235 of 255). Full-range video is mapped
# into that range on the way in and back on the way out.
STUDIO_LO, STUDIO_SPAN = 16.0 / 255.0, 219.0 / 255.0

# LR tile side per router family. ARM decides per tile, so its tiles are small enough to route
# finely and large enough that their context does not eat the saving; PCSR decides per pixel, so
# its tiles only bound memory; without routing, large tiles compute least context. The choices are
# measured in BENCHMARKS.md (routing, tile sizes).
DEFAULT_TILE = {"arm": 64, "pcsr": 64, None: 128}


def _int_dtype(bits: int):
    return np.uint8 if bits <= 8 else np.uint16


def plane_to_unit(plane: np.ndarray, bits: int, full_range: bool, device, dtype) -> torch.Tensor:
    """An integer luma plane of ``bits`` as (1, 1, H, W) floats in the networks' luma range: the
    studio range, so full-range video is mapped into it."""
    x = torch.from_numpy(np.ascontiguousarray(plane)).to(device)
    x = x.to(dtype).div_(float((1 << bits) - 1))[None, None]
    return x * STUDIO_SPAN + STUDIO_LO if full_range else x


def _rename_route(stats: FrameStats, old: str, new: str) -> None:
    """``stats`` with route ``old`` named ``new`` in its shares and counts, in the same order."""
    stats.route_shares = {(new if k == old else k): v for k, v in stats.route_shares.items()}
    if stats.counts:
        stats.counts = {(new if k == old else k): v for k, v in stats.counts.items()}


def disagreement(out, base, grid: TileGrid, scale: int) -> np.ndarray:
    """Per tile of ``grid``, the mean squared difference of an output from the interpolated frame
    (both integer (H*s, W*s) planes, or both float tensors), in the planes' own units: only its
    ratios between tiles are used (``routing.evidence``)."""
    o, b = torch.as_tensor(out), torch.as_tensor(base)
    d = o.to(torch.float32) - b.to(device=o.device, dtype=torch.float32)
    d = d.reshape(1, 1, *d.shape[-2:])
    return grid.tile_means(d.mul_(d), scale).flatten().double().cpu().numpy()


def _require_budget(budget) -> None:
    if not isinstance(budget, (MacBudget, TimeBudget)):
        raise TypeError(f"budget must be a MacBudget or a TimeBudget, not {type(budget).__name__}")


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
                 batch: int = 64, router=None, batch_pixels: int = 1 << 17, region_tiles: int | None = None,
                 route: str | None = None):
        """``tile``: the LR tile side (default per router family); ``context``: LR pixels of context
        around each tile (default: the model's); ``batch``, ``batch_pixels``: most windows and LR
        pixels per network call; ``region_tiles``: most tiles a side that merge into one window
        (default: as many as make the executor's region side; 1: every tile its own window);
        ``route``: with no router, the route that runs on every tile (default: the full network)."""
        self.upscaler = upscaler
        d = upscaler.descriptor
        self.scale = d.scale
        self.router = router
        names = [r.name for r in d.routes]
        if route is not None and route not in names:
            raise SettingsError(f"{d.name} has no route {route!r}; its routes: {', '.join(names)}")
        self.route = names.index(route) if route is not None else len(names) - 1  # the route of an unrouted pass
        self.tile = tile or DEFAULT_TILE[d.router if router is not None else None]
        # a pass with no routing takes the unrouted default's larger tiles unless the user chose one
        self.unrouted_tile = tile or DEFAULT_TILE[None]
        self.context = d.tile.context if context is None else context
        self.threads = TorchThreads(upscaler.device)
        self.executor = Executor(upscaler, self.threads, batch, batch_pixels, region_tiles)
        self._grids: dict[tuple[int, int, int], TileGrid] = {}
        self.sharp = None  # the sharpened Lanczos base of integer planes' interpolated tiles (``use_sharp_base``)

    def use_sharp_base(self, base) -> None:
        """Integer planes whose caller gives an interpolated base (a video's frames) take ``base``
        (a ``vidsr.models.sharpen.SharpBase``) under the tiles the router leaves to interpolation,
        made from the plane itself, and the router prices those tiles from its table corrected by
        the base's gain. Only for a router that leaves those tiles to the caller's base (ARM)."""
        if base is not None and not (self.router is not None and self.router.fills_from_base):
            raise ValueError("a sharpened base goes with a router that fills from the base (ARM)")
        self.sharp = base
        if self.router is not None and hasattr(self.router, "use_sharp_base"):
            self.router.use_sharp_base(base)

    @property
    def descriptor(self):
        return self.upscaler.descriptor

    def grid(self, height: int, width: int, tile: int | None = None) -> TileGrid:
        """The tile grid of a frame size (``tile``: the side, default the router's)."""
        key = (height, width, tile or self.tile)
        if key not in self._grids:
            self._grids[key] = TileGrid(height, width, key[2], self.context, self.descriptor.tile.min_size)
        return self._grids[key]

    # -- integer planes ------------------------------------------------------------------------

    @torch.inference_mode()
    def upscale_plane(self, plane: np.ndarray, bits: int = 8, full_range: bool = False,
                      budget=FULL_NETWORK, out_bits: int | None = None,
                      base: np.ndarray | None = None, stream: StreamState | None = None) -> tuple[np.ndarray, FrameStats]:
        """(H, W) uint8/uint16 luma of ``bits`` -> (H*s, W*s) at ``out_bits`` (default: the same).

        ``base``: the plane already interpolated to the output size (at ``out_bits``), e.g. by
        swscale for the chroma anyway; interpolated tiles take it instead of paying for their own
        pass. With a router that allows it, those tiles are never converted to float at all: the
        network tiles are written into a copy of ``base`` (at low budgets the full-frame float
        conversions were most of a frame's time). ``stream``: the stream's state, so that tiles
        whose input did not change keep their output (``vidsr.temporal``)."""
        _require_budget(budget)
        with self.threads.light():  # the network passes set their own threads
            out_bits = out_bits or bits
            x = self.to_unit(plane, bits, full_range)
            key = ("integer", out_bits, full_range)
            if (base is not None and self.router is not None and self.router.fills_from_base
                    and not budget.full_network and min(plane.shape) >= self.descriptor.tile.min_size):
                sharp = self.sharp is not None and out_bits == bits
                y, stats, plan, grid = self._run(x, budget, None, True, stream, key, sharp)
                if stats.network_tiles is None:  # one route everywhere: the network wrote every pixel
                    out = self.from_unit(y[0, 0].clamp_(0, 1), out_bits, full_range)
                else:
                    if sharp:  # made only for frames that leave tiles to it (one folded swscale pass, about 1 ms at 720p)
                        t0 = time.perf_counter()
                        base = self.sharp.upscale(plane, bits, base.shape[1], base.shape[0])
                        stats.ms["sharpen"] = (time.perf_counter() - t0) * 1000
                    out = np.array(base, dtype=_int_dtype(out_bits))
                    self._write_cores(y, grid, stats.network_tiles, out, out_bits, full_range)
                if sharp:  # its tiles show the sharpened base, and the stats say so
                    _rename_route(stats, self.descriptor.routes[0].name, SHARP_LABEL)
                return self._kept(out, x, plan, grid, stream, key, base), stats
            base_t = None if base is None else self.to_unit(base, out_bits, full_range)
            y, stats, plan, grid = self._run(x, budget, base_t, False, stream, key)
            out = self.from_unit(y[0, 0], out_bits, full_range)
            return self._kept(out, x, plan, grid, stream, key, base), stats

    def _kept(self, out, x, plan, grid, stream: StreamState | None, key, base=None):
        """``out`` with the tiles the plan kept filled from the stream's last output, and the stream
        told what this frame computed (and, where it gathers evidence and ``base``, the interpolated
        frame of the same kind as ``out``, is given, how far each computed tile moved from it). Only
        routed tile plans on the router's grid can keep tiles; anything else starts the stream afresh."""
        if stream is None:
            return out
        if (not isinstance(plan, TilePlan) or len(plan.routes) != len(grid) or grid.tile != self.tile
                or tuple(x.shape[-2:]) != (grid.height, grid.width)):
            stream.clear()
            return out
        if stream.evidence is not None and base is not None:
            computed = None if plan.reuse is None else ~plan.reuse
            stream.evidence.observe(plan.routes, disagreement(out, base, grid, self.scale), computed)
        if plan.reuse is not None:
            stream.fill(out, grid, plan.reuse, self.scale)
        key = key + (self.descriptor.name, grid.tile)
        # frames planned as alone keep only what the same route computed (their order must not matter)
        still = stream.still_pixels(x, grid, key, plan.routes, plan.reuse, self.context, same_route=not stream.reallocate)
        if still is not None:
            stream.fill_pixels(out, still, self.scale)
        stream.remember(x, grid, key, plan.routes, plan.reuse, out, still)
        return out

    def to_unit(self, plane: np.ndarray, bits: int, full_range: bool) -> torch.Tensor:
        """An integer plane as (1, 1, H, W) on the model's device, in the networks' luma range."""
        return plane_to_unit(plane, bits, full_range, self.upscaler.device, self.upscaler.dtype)

    @staticmethod
    def from_unit(y: torch.Tensor, bits: int, full_range: bool) -> np.ndarray:
        """The inverse of ``to_unit``: a float plane already clamped to [0, 1] (overwritten) as a
        numpy integer plane of ``bits``, rounded."""
        peak = float((1 << bits) - 1)
        if full_range:
            y = (y - STUDIO_LO) / STUDIO_SPAN
        y = y.mul_(peak).round_().clamp_(0, peak)
        return y.to(torch.int32).cpu().numpy().astype(_int_dtype(bits))

    def _write_cores(self, y: torch.Tensor, grid: TileGrid, ids, out: np.ndarray, bits: int, full_range: bool) -> None:
        """The cores of tiles ``ids`` from float ``y`` into the integer plane ``out``, converted as
        ``upscale_plane`` converts a whole frame."""
        s = self.scale
        for g in grid.regions(ids, max_side=max(grid.rows, grid.cols)):
            rows, cols = slice(g.y0 * s, (g.y0 + g.h) * s), slice(g.x0 * s, (g.x0 + g.w) * s)
            out[rows, cols] = self.from_unit(y[0, 0, rows, cols].clamp(0, 1), bits, full_range)

    # -- float tensors -------------------------------------------------------------------------

    def upscale(self, x: torch.Tensor, budget=FULL_NETWORK, base: torch.Tensor | None = None,
                stream: StreamState | None = None) -> tuple[torch.Tensor, FrameStats]:
        """(1, 1, H, W) float in [0, 1] on the model's device -> (1, 1, H*s, W*s), with stats.
        ``budget``: a ``MacBudget`` or ``TimeBudget``. ``base``: an interpolated (1, 1, H*s, W*s)
        that interpolated tiles may take. ``stream``: as for ``upscale_plane``."""
        with torch.inference_mode():
            y, stats, plan, grid = self._run(x, budget, base, False, stream, ("float",))
            return self._kept(y, x, plan, grid, stream, ("float",), base), stats

    def upscale_uniform(self, x: torch.Tensor, route: str) -> tuple[torch.Tensor, FrameStats]:
        """One route (a width, an upsampler, the full network) on every tile, in the unrouted
        pass's windows: what a user gets by choosing that configuration everywhere."""
        index = [r.name for r in self.descriptor.routes].index(route)
        grid = self.grid(*x.shape[-2:], self.unrouted_tile)
        with torch.inference_mode(), self.threads.light():
            y, stats = self.executor.run(TilePlan.uniform(index, len(grid)), x, grid)
            return y.clamp_(0, 1), stats

    def _run(self, x, budget, base, caller_fills_base: bool, stream: StreamState | None, key, sharp: bool = False):
        """(output, stats, the plan, the grid it ran on) for one frame; ``sharp``: the caller's base
        under interpolated tiles is the sharpened one."""
        _require_budget(budget)
        with torch.inference_mode(), self.threads.light(), self.threads.frame(budget.threads):
            h, w = x.shape[-2:]
            pad_h, pad_w = max(0, self.descriptor.tile.min_size - h), max(0, self.descriptor.tile.min_size - w)
            if pad_h or pad_w:  # tiny frames: replicate edges up to the model's minimum, crop after
                x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
                base = None
            if self.router is None or budget.full_network:
                grid = self.grid(*x.shape[-2:], self.unrouted_tile)
                plan = TilePlan.uniform(self.route if self.router is None else len(self.descriptor.routes) - 1, len(grid))
                planning = None
            else:
                grid = self.grid(*x.shape[-2:])
                t0 = time.perf_counter()
                reuse = None
                if stream is not None and self.router.reuses and not (pad_h or pad_w):
                    reuse = stream.reusable(x, grid, key + (self.descriptor.name, grid.tile))
                has_base = base is not None or caller_fills_base
                evidence = stream.evidence if stream is not None and self.router.takes_evidence else None
                plan = self.router.plan(x, grid, budget, has_base, reuse=reuse if stream is not None and stream.reallocate else None,
                                        evidence=evidence, **({"sharp_base": True} if sharp else {}))
                if reuse is not None and not stream.reallocate and not plan.unrouted:
                    kept = reuse[0] & (plan.routes == reuse[1])  # planned as alone; same route as before: kept
                    plan.reuse = kept if kept.any() else None
                planning = (time.perf_counter() - t0) * 1000
                if plan.unrouted:  # a uniform configuration: the large windows
                    predicted = plan.predicted_psnr(grid.core_pixels)
                    grid = self.grid(*x.shape[-2:], self.unrouted_tile)
            routed_grid = grid if planning is None or not plan.unrouted else self.grid(*x.shape[-2:])
            out, stats = self.executor.run(plan, x, grid, base, caller_fills_base)
            if planning is not None:  # the planning time first, as the work that follows it
                stats.ms = {"route": planning, **stats.ms}
                if plan.unrouted:
                    stats.predicted_psnr = predicted
            if pad_h or pad_w:
                out = out[..., : h * self.scale, : w * self.scale]
            if not caller_fills_base:  # else only the network tiles hold values; _write_cores clamps them
                out = out.clamp_(0, 1)
            return out, stats, plan, routed_grid

    # -- what the fps controller needs --------------------------------------------------------------

    def calibrate(self, x: torch.Tensor) -> dict[str, float]:
        """Milliseconds of one unit of each kind of work the router buys, measured on ``x`` under
        the current thread setting (``threads.frame``)."""
        with torch.inference_mode(), self.threads.light():
            return self.executor.calibrate(x, self.grid(*x.shape[-2:]), self.router.calibration_plan(),
                                           unrouted=self.grid(*x.shape[-2:], self.unrouted_tile))

    def unit_macs(self, height: int, width: int) -> dict[str, float]:
        """MACs of one unit of each kind of work the router buys on a frame of this size."""
        return self.router.unit_macs(self.grid(height, width))
