"""The executor: runs a router's plan on the model, merges the outputs, counts what it ran.

One place runs networks for every plan (``vidsr.routing.protocol``):
- a ``TilePlan`` runs each route on its tiles, neighbouring tiles merged into regions that share
  their context, regions of one window shape batched into one network call;
- a ``PixelPlan`` runs the backbone on the network tiles' regions, the scoring the plan asks for,
  the plan's own choice, then each upsampler on the pixels chosen for it.
It also prices units of work on this machine (``calibrate``) for the fps controller. Every frame's
``FrameStats`` says what was chosen (shares, MACs counted once per pixel), what really ran (MACs
with tile context), and how long each kind of work took.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .models.interpolation import interpolation_ms, upscale
from .routing.protocol import INTERPOLATION_UNIT, PixelPlan, TilePlan, uniform_unit
from .tiling import TileGrid

# Neighbouring tiles merge into regions of at most this many LR pixels a side, which bounds
# activation memory. A pass with no routing takes larger ones: no per-tile decision needs small
# ones, and fewer windows compute less context (BENCHMARKS.md, routing).
REGION_SIDE, UNROUTED_REGION_SIDE = 256, 512
CHOICE_DTYPE = torch.int8  # per-pixel choice maps: -1 not routed here, else the upsampler's index


@dataclass
class FrameStats:
    """What a frame's upscale chose, ran and cost."""

    budget: float  # the fraction of the way from interpolation to the full network's MACs it spent
    route_shares: dict[str, float]  # share of output pixels per route
    macs_per_pixel: float  # what the chosen routes cost per output pixel, counting each pixel once
    executed_macs_per_pixel: float | None = None  # what really ran, tile context included
    ms: dict[str, float] = field(default_factory=dict)  # wall time per kind of work
    predicted_psnr: float | None = None
    counts: dict[str, int] = field(default_factory=dict)  # tiles per route, refined pixels, ...
    work: dict[str, float] = field(default_factory=dict)  # units of each kind of work done (for calibration)
    # tiles whose cores a network wrote, when interpolated tiles were left to the caller's base
    network_tiles: list[int] | None = None

    @property
    def full_network(self) -> bool:
        """Whether every pixel it computed took the full network (tiles it kept from the frame
        before aside): the budget could buy no more of this model."""
        shares = list(self.route_shares.values())  # in the model's route order: the full network last
        return self.budget >= 0.999 or bool(shares) and shares[-1] >= 0.999

    @property
    def computed_share(self) -> float:
        """The share of the frame's tiles it computed rather than kept (``vidsr.temporal``)."""
        kept = self.counts.get("reused", 0)
        tiles = sum(n for k, n in self.counts.items() if k in self.route_shares)
        return 1.0 if not tiles else (tiles - kept) / tiles


class Executor:
    def __init__(self, upscaler, threads, batch: int = 64, batch_pixels: int = 1 << 17, max_region: int | None = None):
        self.upscaler = upscaler
        self.descriptor = upscaler.descriptor
        self.scale = self.descriptor.scale
        self.threads = threads  # vidsr.threads.TorchThreads: network passes run on its network setting
        self.batch = batch  # most windows per network call
        self.batch_pixels = batch_pixels  # and most LR window pixels per call (bounds memory)
        self.max_region = max_region  # tiles a side of a merged region (None: from the region side)
        self.macs = np.array([r.macs_per_pixel for r in self.descriptor.routes])
        self._executed = 0.0  # MACs run so far in the current plan

    # -- running plans ---------------------------------------------------------------------------

    def run(self, plan, x: torch.Tensor, grid: TileGrid, base=None, caller_fills_base: bool = False):
        """(output (1, 1, H*s, W*s), FrameStats). ``base``: the frame already interpolated, which
        interpolated tiles take; ``caller_fills_base``: leave interpolated tiles unwritten (the
        caller keeps its own plane there; only tile plans can)."""
        self._executed = 0.0
        if isinstance(plan, PixelPlan):
            out, stats = self._run_pixels(plan, x, grid, base)
        else:
            out, stats = self._run_tiles_plan(plan, x, grid, base, caller_fills_base)
        stats.executed_macs_per_pixel = self._executed / (grid.height * grid.width * self.scale**2)
        return out, stats

    def _run_tiles_plan(self, plan: TilePlan, x, grid, base, caller_fills_base):
        names = [r.name for r in self.descriptor.routes]
        if plan.unrouted:  # one route everywhere, in the unrouted pass's large windows
            out = grid.new_output(x, self.scale)
            route = int(plan.routes[0])
            ms = self.run_tiles(x, grid, range(len(grid)), names[route], out, UNROUTED_REGION_SIDE)
            # every route named, in order (the full network last), as a routed frame's stats name them
            stats = FrameStats(budget=self._fraction(self.macs[route]),
                               route_shares={n: float(r == route) for r, n in enumerate(names)},
                               macs_per_pixel=float(self.macs[route]), ms={plan.unit or names[route]: ms})
            if plan.unit:  # bought under a budget: its time prices the next frames
                stats.work = {plan.unit: 1}
            return out, stats
        ms, work = {}, {}
        if caller_fills_base:
            out = grid.new_output(x, self.scale)
        elif (plan.routes == 0).any():  # interpolated tiles: the caller's base, or one pass over the frame
            t1 = time.perf_counter()
            out = base.clone() if base is not None else upscale(x, self.scale)
            ms[INTERPOLATION_UNIT] = (time.perf_counter() - t1) * 1000
            work[INTERPOLATION_UNIT] = 1
            if base is None:
                self._executed += self.macs[0] * out.numel()
        else:
            out = grid.new_output(x, self.scale)
        kept = plan.reuse if plan.reuse is not None else np.zeros(len(plan.routes), dtype=bool)
        for r in range(1, len(names)):
            ids = np.nonzero((plan.routes == r) & ~kept)[0]
            if len(ids):
                ms[names[r]] = self.run_tiles(x, grid, ids, names[r], out)
                # in tiles alone in their windows (the unit a tile's price is measured in): merged
                # neighbours share their context, so a tile in a region is less than one
                work[names[r]] = self._last_window_pixels / grid.window_pixels()
        px = grid.core_pixels
        total = px.sum()
        macs = float((self.macs[plan.routes] * px)[~kept].sum() / total)  # a kept output costs nothing
        counts = {n: int((plan.routes == r).sum()) for r, n in enumerate(names)}
        if kept.any():
            counts["reused"] = int(kept.sum())
        stats = FrameStats(budget=float(self._fraction(macs)),
                           route_shares={n: float(px[plan.routes == r].sum() / total) for r, n in enumerate(names)},
                           macs_per_pixel=macs, ms=ms, predicted_psnr=plan.predicted_psnr(px),
                           counts=counts, work=work, network_tiles=np.nonzero((plan.routes > 0) & ~kept)[0].tolist())
        return out, stats

    def _fraction(self, macs: float) -> float:
        """How far ``macs`` per pixel is from the cheapest route towards the full network."""
        if len(self.macs) == 1:
            return 1.0
        return (macs - self.macs[0]) / (self.macs[-1] - self.macs[0])

    def run_tiles(self, x: torch.Tensor, grid: TileGrid, ids, route: str, out: torch.Tensor,
                  region_side: int = REGION_SIDE) -> float:
        """Run ``route`` on tiles ``ids``, writing their cores into ``out``; returns ms.

        Neighbouring tiles are merged into rectangles (``TileGrid.regions``) so they share their
        context; rectangles of the same window shape run as one batch."""
        t0 = time.perf_counter()
        batches = self.region_batches(grid, ids, region_side)
        self._last_window_pixels = self.batched_pixels(batches)
        self._executed += self.descriptor.route(route).macs_per_pixel * self._last_window_pixels * self.scale**2
        with self.threads.network():
            for chunk in batches:
                grid.place_regions(out, chunk, self.upscaler(grid.extract_regions(x, chunk), route), self.scale)
        return (time.perf_counter() - t0) * 1000

    def region_limit(self, grid: TileGrid, side: int = REGION_SIDE) -> int:
        """Merged regions are at most this many tiles a side: ``max_region`` if set, else as many
        as make ``side`` LR pixels."""
        return self.max_region or max(1, side // grid.tile)

    def region_batches(self, grid: TileGrid, ids, region_side: int = REGION_SIDE) -> list[list]:
        """Tiles ``ids`` as merged rectangles grouped by window shape and chunked so that one
        network call holds at most ``batch`` windows and ``batch_pixels`` LR pixels."""
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

    # -- pixel plans (PCSR) ----------------------------------------------------------------------

    @property
    def _heads(self):
        """Per upsampler: (module, MACs per HR pixel of the head alone, MACs per HR pixel of the part
        that runs at LR on every pixel of a window it serves at all)."""
        d, m = self.descriptor, self.upscaler.module
        backbone = d.info.get("backbone_macs", 0.0)
        return [(up, max(c - self.macs[0] - backbone, 1.0), up.lr_macs(self.scale))
                for up, c in zip(m.upsamplers, self.macs[1:])]

    def _scoring_macs(self, score: str | None) -> float:
        """MACs per HR pixel of the classifier's work for ``score``."""
        if score is None:
            return 0.0
        return self.descriptor.info.get("score_macs" if score == "lr_score" else "router_overhead_macs", 0.0)

    def _run_pixels(self, plan: PixelPlan, x, grid, base):
        m, s = self.upscaler.module, self.scale
        run = plan.network_tiles
        ids = np.nonzero(run)[0]
        ms, work = {}, {}
        if run.all():  # the network writes every core (its upsamplers add their own bicubic)
            out = grid.new_output(x, s)
        else:
            t1 = time.perf_counter()
            out = base.clone() if base is not None else upscale(x, s)  # what interpolated tiles keep
            ms[INTERPOLATION_UNIT], work[INTERPOLATION_UNIT] = (time.perf_counter() - t1) * 1000, 1
            if base is None:
                self._executed += self.macs[0] * out.numel()
        unit = 1 if plan.whole_lr else s  # the choice map's pixels: LR or HR
        choice_map = torch.full((x.shape[-2] * unit, x.shape[-1] * unit), -1, dtype=CHOICE_DTYPE, device=x.device)
        if len(ids):
            # step 1: the backbone per batch of windows (neighbouring tiles merged, as for tiles)
            t1 = time.perf_counter()
            batches = self.region_batches(grid, ids, UNROUTED_REGION_SIDE if run.all() else REGION_SIDE)
            windows = [grid.extract_regions(x, b) for b in batches]
            with self.threads.network():
                feats = [m.backbone(w) for w in windows]
            ms["backbone"], work["backbone"] = (time.perf_counter() - t1) * 1000, len(ids)
            window_hr = self.batched_pixels(batches) * s * s
            backbone_macs = self.descriptor.info.get("backbone_macs", 0.0)
            self._executed += window_hr * (backbone_macs + self.macs[0])  # and each window's bicubic base
            # step 2: the scores the plan chooses from
            scores = None
            if plan.score is not None:
                t1 = time.perf_counter()
                with self.threads.network():
                    scores = [m.classify(f, plan.score) for f in feats]
                ms["classifier"], work["classifier"] = (time.perf_counter() - t1) * 1000, len(ids)
                self._executed += window_hr * self._scoring_macs(plan.score)
            # step 3: the plan's choice; step 4: every upsampler on its gathered pixels
            choices = plan.choose(scores, [_core_mask(b, unit, x.device) for b in batches])
            t1 = time.perf_counter()
            for b, w, f, c in zip(batches, windows, feats, choices):
                with self.threads.network():
                    y = m.render_choice(w, f, c, plan.whole_lr)
                grid.place_regions(out, b, y, s)
                grid.place_regions(choice_map[None, None], b, c[:, None], unit)
                self._executed += self._heads_executed(c, unit)
            head_ms = (time.perf_counter() - t1) * 1000
            counts = [int((choice_map == j).sum()) * (s // unit) ** 2 for j in range(len(m.upsamplers))]  # HR pixels
            load = [c * head for c, (_, head, _) in zip(counts, self._heads)]
            names = [r.name for r in self.descriptor.routes]
            for j, name in enumerate(names[1:]):  # the heads' time split by their MACs, for calibration
                ms[name], work[name] = head_ms * load[j] / max(sum(load), 1e-9), counts[j] / 1000.0
        refined = 0
        if plan.refine and (choice_map == 1).any():
            out, refined = m.refine(out, choice_map.repeat_interleave(s // unit, 0).repeat_interleave(s // unit, 1))
        return out, self._pixel_stats(choice_map, plan, ms, work, refined)

    def _heads_executed(self, choice: torch.Tensor, unit: int) -> float:
        """MACs the heads really ran on one batch of windows with this choice map: each head's
        per-pixel part on its pixels, and its LR part on every pixel of the windows, or only on its
        own rows where it gathers them (whole-LR-pixel choice only)."""
        per_px = (self.scale // unit) ** 2  # HR pixels per choice-map pixel
        total = 0.0
        for j, (up, head, lo) in enumerate(self._heads):
            k = int((choice == j).sum())
            if k:
                lr_rows = k if unit == 1 and up.gathers_projection(k, choice.numel()) else choice.numel()
                total += lr_rows * per_px * lo + k * per_px * (head - lo)
        return total

    def _pixel_stats(self, choice, plan: PixelPlan, ms, work, refined) -> FrameStats:
        """``choice``: the frame's choice map, LR or HR (shares are the same either way)."""
        names = [r.name for r in self.descriptor.routes]
        n = choice.numel()
        counts = {names[0]: int((choice == -1).sum())}
        for j, name in enumerate(names[1:]):
            counts[name] = int((choice == j).sum())
        shares = {k: v / n for k, v in counts.items()}
        macs = sum(self.macs[i] * shares[name] for i, name in enumerate(names))
        if "classifier" in work:
            macs += self._scoring_macs(plan.score) * (1 - shares[names[0]])
        run = plan.network_tiles
        return FrameStats(budget=float(self._fraction(macs)), route_shares=shares, macs_per_pixel=float(macs), ms=dict(ms),
                          counts={"network_tiles": int(run.sum()), "interpolated_tiles": int((~run).sum()),
                                  "refined_px": refined}, work=work)

    # -- pricing units of work on this machine ------------------------------------------------------

    @torch.inference_mode()
    def calibrate(self, x: torch.Tensor, grid: TileGrid, pixel_plan: PixelPlan | None = None,
                  samples: int = 8, unrouted: TileGrid | None = None) -> dict[str, float]:
        """Measured milliseconds of one unit of each kind of work a router buys on ``x``'s size,
        on a few tiles spread over the frame. Tile routes: per tile of each route (isolated tiles:
        the dearest case). Pixel plans (``pixel_plan`` gives the scoring and choice unit): the
        backbone and the scoring per tile, each upsampler per thousand pixels. Both: one
        interpolation pass. Tile routes also: each route over the whole frame in the windows of a pass
        with no routing (``unrouted``: that pass's grid), timed on a block of it and scaled to the
        frame's pixels."""
        ids = np.unique(np.linspace(0, len(grid) - 1, min(samples, len(grid))).round().astype(int))
        if pixel_plan:
            units = self._calibrate_pixels(x, grid, ids, pixel_plan)
        else:
            units = self._calibrate_tiles(x, grid, ids)
            if unrouted is not None:
                units.update(self._calibrate_uniform(x, unrouted))
        units[INTERPOLATION_UNIT] = interpolation_ms(x, self.scale)
        return units

    def _calibrate_tiles(self, x, grid, ids) -> dict[str, float]:
        out = grid.new_output(x, self.scale)
        units = {}
        for route in self.descriptor.routes[1:]:
            for k in range(1, 4):  # warm-up: builds the subnet, and the batch shapes a tight budget buys
                self.run_tiles(x, grid, ids[:k], route.name, out)
            units[route.name] = self.run_tiles(x, grid, ids, route.name, out) / len(ids)
        return units

    def _calibrate_uniform(self, x, grid) -> dict[str, float]:
        """Per route, the milliseconds of a pass over the whole frame in large windows: a block of
        up to 2x2 unrouted tiles timed (after a warm-up pass), scaled by the frame's pixels."""
        rows, cols = grid.shape
        block = [r * cols + c for r in range(min(2, rows)) for c in range(min(2, cols))]
        share = grid.core_pixels.sum() / grid.core_pixels[block].sum()
        out = grid.new_output(x, self.scale)
        units = {}
        for route in self.descriptor.routes[1:]:
            self.run_tiles(x, grid, block, route.name, out, UNROUTED_REGION_SIDE)  # warm-up: this window shape
            ms = self.run_tiles(x, grid, block, route.name, out, UNROUTED_REGION_SIDE)
            units[uniform_unit(route.name)] = ms * share
        return units

    def _calibrate_pixels(self, x, grid, ids, plan: PixelPlan) -> dict[str, float]:
        m, s = self.upscaler.module, self.scale
        windows = grid.extract(x, ids)
        score = plan.score or "heavy_probability"
        with self.threads.network():
            m.classify(m.backbone(windows[:1]), score)  # warm-up
            t0 = time.perf_counter()
            feats = m.backbone(windows)
            t1 = time.perf_counter()
            m.classify(feats, score)
            t2 = time.perf_counter()
        units = {"backbone": (t1 - t0) * 1000 / len(ids), "classifier": (t2 - t1) * 1000 / len(ids)}
        px = windows.shape[0] * windows.shape[-2] * windows.shape[-1] * s * s
        unit = 1 if plan.whole_lr else s
        for j, route in enumerate(self.descriptor.routes[1:]):
            choice = torch.full((windows.shape[0], windows.shape[-2] * unit, windows.shape[-1] * unit), j, device=x.device)
            t0 = time.perf_counter()
            with self.threads.network():
                m.render_choice(windows, feats, choice, plan.whole_lr)
            units[route.name] = (time.perf_counter() - t0) * 1000 / (px / 1000.0)
        return units


def _core_mask(batch, unit: int, device) -> torch.Tensor:
    """(n, h*unit, w*unit) bool over each window of a batch of same-shape regions: True on its core
    (the pixels it decides), False on its context."""
    h, w = batch[0].window_shape
    mask = torch.zeros(len(batch), h * unit, w * unit, dtype=torch.bool, device=device)
    for k, g in enumerate(batch):
        cy, cx = (g.y0 - g.wy0) * unit, (g.x0 - g.wx0) * unit
        mask[k, cy : cy + g.h * unit, cx : cx + g.w * unit] = True
    return mask
