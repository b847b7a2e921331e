"""The per-frame work of ``vsvidsr.upscale``: shared engines and the frame function.

Nothing here upscales on its own. Luma goes through ``vidsr.engine.Engine`` (the CLI's models,
routers and tiler), chroma through ``vidsr.models.interpolation`` (Lanczos-3, the kernel
``vidsr`` uses for the chroma of images), and RGB is split into Y'CbCr with the BT.601
studio-range conversion of ``vidsr.colour`` (the same as for still images).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch
import vapoursynth as vs

from vidsr.budget import MacBudget, TimeBudget
from vidsr.colour import upscale_colour
from vidsr.engine import Engine
from vidsr.models import registry
from vidsr.models.descriptor import Upscaler
from vidsr.policy import engine_for
from vidsr.temporal import StreamState

from . import BUDGET_PROP  # per-frame budget on input frames; echoed on output frames

_DROPPED_PROPS = ("_Alpha",)  # an attached alpha frame has the input's size; it cannot be kept as is


@dataclass
class SharedEngine:
    """One engine per (model, scale, device, dtype, router, tile, overlap, batch), shared by every
    clip that asks for the same; ``lock`` serialises calls into the model (one lock per loaded
    model, so engines sharing weights never run them at once)."""

    engine: Engine
    lock: threading.Lock


_upscalers: dict[tuple, tuple[Upscaler, threading.Lock]] = {}
_engines: dict[tuple, SharedEngine] = {}
_cache_lock = threading.Lock()


def shared_engine(model: str, scale: int, device: str, dtype: torch.dtype, router: str | None,
                  tile: int | None, overlap: int | None, batch: int) -> SharedEngine:
    """The shared engine for these settings, loading the model the first time. Raises the
    ``VidsrError`` of ``registry.load`` / ``build_router`` for bad names."""
    key = (model, scale, device, dtype, router, tile, overlap, batch)
    with _cache_lock:
        shared = _engines.get(key)
        if shared is None:
            ukey = (model, scale, device, dtype)
            if ukey not in _upscalers:
                _upscalers[ukey] = (registry.load(model, scale, device=device, dtype=dtype), threading.Lock())
            upscaler, lock = _upscalers[ukey]
            engine = engine_for(upscaler, router, tile=tile, overlap=overlap, batch=batch)
            shared = _engines[key] = SharedEngine(engine, lock)
        return shared


def clear_cache() -> None:
    """Forget the loaded models and engines (clips made before keep theirs)."""
    with _cache_lock:
        _engines.clear()
        _upscalers.clear()


def _share_key(route: str) -> str:
    return "VidsrShare_" + re.sub(r"[^A-Za-z0-9_]", "_", route)


def _frame_budget(n: int, props, default: float) -> float:
    value = props.get(BUDGET_PROP)
    if value is None:
        return default
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise vs.Error(f"vsvidsr.upscale: frame {n}: {BUDGET_PROP} must be a number between 0 and 1, got {value!r}")
    return float(value)


class FrameFunction:
    """The ``std.ModifyFrame`` selector: ``f`` is (output-sized template frame, input frame)."""

    def __init__(self, shared: SharedEngine, family: str, budget: float, max_ms: float | None = None,
                 size: tuple[int, int] | None = None):
        self.shared = shared
        self.engine = shared.engine
        self.family = family  # "rgb" or "luma" (GRAY, YUV 4:4:4)
        self.budget = budget
        self.max_ms = max_ms
        self.unit_ms = self._calibrate(*size) if max_ms is not None else None
        # what the last frame computed, used only for the frame right after it (vidsr.temporal): a
        # frame asked for out of order is computed in full, so frame n depends on frame n alone
        # except where the tiles of n-1 were within the reuse bound of n's
        self.stream, self.last_n = StreamState(reallocate=False), None
        d = self.engine.descriptor
        self.model_name = d.name
        self.route_names = [r.name for r in d.routes]
        self.full_macs = d.macs_per_pixel

    def _calibrate(self, width: int, height: int) -> dict[str, float]:
        """Milliseconds per unit of each route's work, measured once on a textured frame of the
        clip's size: every frame then buys network time from the same price list, so frame n
        depends on frame n alone, never on which frames ran before or beside it."""
        up = self.engine.upscaler
        g = torch.Generator().manual_seed(0)
        x = (0.5 + 0.3 * (torch.rand(1, 1, height, width, generator=g) - 0.5)).to(up.device, up.dtype)
        with self.shared.lock:
            return self.engine.calibrate(x)

    def frame_budget(self, n: int, props):
        """The frame's VidsrBudget property, else the time budget (if any), else ``budget``."""
        if BUDGET_PROP not in props and self.max_ms is not None:
            return TimeBudget(ms=self.max_ms, unit_ms=self.unit_ms)
        return MacBudget(_frame_budget(n, props, self.budget))

    def _upscale_luma(self, luma: torch.Tensor, budget, n: int):
        with self.shared.lock:
            if self.engine.router is not None:
                self.engine.router.reset()  # no routing memory of other frames: frame n plans the same in any order
            if self.last_n is None or n != self.last_n + 1:
                self.stream.clear()
            self.last_n = n
            return self.engine.upscale(luma.contiguous(), budget, stream=self.stream)

    @torch.inference_mode()
    def planes(self, planes: np.ndarray, budget, n: int = -2):
        """(C, H, W) float planes of frame ``n`` -> (C, H*s, W*s) float32 planes and the engine's stats."""
        up = self.engine.upscaler
        # a NaN sample would spread through every kernel and network footprint it falls in: read it as 0
        planes = np.nan_to_num(np.ascontiguousarray(planes, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        x = torch.from_numpy(planes).to(device=up.device, dtype=up.dtype)[None]
        # float luma (GRAY, YUV) is nominal 0..1, black to white
        out, stats = upscale_colour(lambda y: self._upscale_luma(y, budget, n), x, self.engine.scale,
                                    rgb=self.family == "rgb", full_range_luma=True)
        return out[0].to("cpu", torch.float32).numpy(), stats

    def __call__(self, n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        t0 = time.perf_counter()
        template, src = f
        budget = self.frame_budget(n, src.props)
        planes = np.stack([np.asarray(src[p]) for p in range(src.format.num_planes)])
        result, stats = self.planes(planes, budget, n)
        out = template.copy()
        for p in range(out.format.num_planes):
            np.asarray(out[p])[...] = result[p]  # cast to the clip's sample type (float32 / float16)
        props = out.props
        props.clear()
        props.update({k: v for k, v in src.props.items() if k not in _DROPPED_PROPS})
        shares = {name: 0.0 for name in self.route_names}
        shares.update(stats.route_shares)
        props[BUDGET_PROP] = float(budget.as_share(stats.budget))
        props["VidsrModel"] = self.model_name
        props["VidsrRoutes"] = list(shares)
        props["VidsrRouteShares"] = [float(v) for v in shares.values()]
        for name, share in shares.items():  # also by name (a one-element array reads back as a scalar)
            props[_share_key(name)] = float(share)
        props["VidsrMACsPerPixel"] = float(stats.macs_per_pixel)
        props["VidsrCost"] = float(stats.macs_per_pixel / self.full_macs) if self.full_macs else 1.0
        props["VidsrMs"] = (time.perf_counter() - t0) * 1000.0
        return out
