"""Which model runs: the one policy the CLI, the VapourSynth filter and the fps target share.

- No model named: the shipped model with the best validation PSNR at the scale; with a router
  named, the best of that router's family; with a budget below 1 or a frame-rate target, the routed
  model that routes best at the same cost per pixel (``registry.best_routed``), since a fixed
  network would ignore the budget.
- A frame-rate target so low that the chosen model runs its full network everywhere with time to
  spare switches once to a dearer shipped model when one of that model's routes, on every tile, fits
  the same time and its Edge-to-PSNR table predicts at least ``MARGIN_DB`` more on this frame
  (``pick_dearer``). Only when the model was vidsr's to choose; only ARM models have tables, so PCSR
  models are neither switched from nor to.
"""

from __future__ import annotations

from typing import Callable

from .budget import TimeBudget
from .errors import SettingsError
from .models import registry
from .routing import ROUTERS, build_router

MARGIN_DB = 0.1  # predicted gain a switch needs (the tables' fit to new content is not exact)
# A switch is judged on the dearer model's routes everywhere only, never on a routed plan of it: the
# tables overrate routed plans of one model against another's full network. fps bench's lossless
# clip at 5 fps: arm-plain-wide's routed plans, predicted above arm-plain's full network, gave
# 0.3-0.5 dB less; val-pan at 5.5 fps, predicted +0.66 dB over arm-plain's w32, gave 0.15 dB less
# (38.27 against 38.42), and a run slower than the target.


def choose_model(scale: int, model: str | None = None, router: str | None = "auto", routed: bool = False,
                 warn: Callable[[str], None] | None = None) -> str:
    """The model to load for these settings. ``routed``: the frame asks for less than the full
    network (a budget below 1 or a time)."""
    if model:
        return model
    if router in ROUTERS:
        name = registry.best_shipped(scale, (router,))
        if name is None:
            raise SettingsError(f"no {router.upper()} model ships for x{scale}")
        return name
    if routed and router in (None, "auto"):
        name = registry.best_routed(scale)
        if name is not None:
            return name
    name = registry.default_model(scale)
    if name == "lanczos" and warn is not None:
        warn(f"no network ships for x{scale}; using Lanczos interpolation")
    return name


def load_engine(name: str, scale: int, device: str = "cpu", dtype=None, router: str | None = "auto",
                pcsr_mode: str = "budget", pcsr_k: float = 0.0, tile: int | None = None,
                overlap: int | None = None, batch: int = 64, route: str | None = None, sharpen: bool = True):
    """The engine for a model name (or weights path), with its router built complete; ``route``:
    instead, that one route of the model on every tile."""
    import torch

    upscaler = registry.load(name, scale, device=device, dtype=dtype or torch.float32)
    return engine_for(upscaler, router, pcsr_mode, pcsr_k, tile, overlap, batch, route, sharpen)


def engine_for(upscaler, router: str | None = "auto", pcsr_mode: str = "budget", pcsr_k: float = 0.0,
               tile: int | None = None, overlap: int | None = None, batch: int = 64, route: str | None = None,
               sharpen: bool = True):
    """An engine over a loaded model, with its router (None for a single-route model, or when one
    ``route`` runs everywhere); ``sharpen``: a video's interpolated tiles take the sharpened
    Lanczos base where the router leaves them to the caller (ARM) and one ships for the scale."""
    from .engine import Engine

    engine = Engine(upscaler, tile=tile, context=overlap, batch=batch, route=route,
                    router=None if route is not None else build_router(upscaler, router, pcsr_mode, pcsr_k))
    if sharpen and engine.router is not None and engine.router.fills_from_base:
        # video frames' interpolated tiles: the sharpened Lanczos base, where one ships for the scale
        engine.use_sharp_base(registry.load_sharp_base(upscaler.descriptor.scale))
    return engine


def dearer_candidates(engine, build: Callable[[str], object]) -> list[Callable[[], object]]:
    """Builders of the engines a frame-rate target may switch to from ``engine``'s model: the
    shipped ARM models of its scale whose full network beats it on validation, best first."""
    d = engine.descriptor
    return [lambda name=name: build(name) for name in registry.dearer_routed(d.scale, d.name)]


def predicted_psnr(engine, x, budget: TimeBudget) -> tuple[float, bool]:
    """(predicted PSNR of frame ``x`` under ``budget``, whether the plan puts the full network on
    every tile), as ``engine``'s ARM router would plan it with the caller's interpolated base."""
    router = engine.router
    grid = engine.grid(*x.shape[-2:])
    plan = router.plan(x, grid, budget, has_base=True, **({"sharp_base": True} if engine.sharp is not None else {}))
    router.reset()  # a plan made to compare leaves no memory for the frames that follow
    routes = plan.routes
    return plan.predicted_psnr(grid.core_pixels), bool((routes == len(router.names) - 1).all())


def uniform_psnr(engine, x, budget: TimeBudget) -> float | None:
    """Predicted PSNR of frame ``x`` with the best of ``engine``'s routes that fits on every tile
    under ``budget`` (None: none fits), from its ARM router's table."""
    grid = engine.grid(*x.shape[-2:])
    plan = engine.router.uniform_plan(x, grid, budget, sharp_base=engine.sharp is not None)
    return None if plan is None else plan.predicted_psnr(grid.core_pixels)


def has_table(engine) -> bool:
    return engine is not None and getattr(engine.router, "table", None) is not None


def pick_dearer(engine, candidates, x, network_ms: float, prices: dict[str, float], calibrated: dict | None = None,
                stream_ratio: float = 1.0):
    """(engine to run, its unit costs as calibrated here on its own thread count or None, a note
    or None). ``candidates``: callables that build the dearer models' engines (only called when the
    current model has time to spare); ``prices``: the current model's unit costs as the controller
    prices them; ``calibrated``: a cache of candidates' unit costs by model name, kept between calls
    (a decision taken again needs no second calibration); ``stream_ratio``: how much dearer the
    current model's units have run in the stream than their calibration (``FpsController.
    stream_over_calibration``). A candidate, calibrated once on one frame, is priced at that times
    its calibration, as the stream priced the running model: the switch is for the rest of the run,
    and one made to a route that only just fitted on paper falls behind the target and then to
    poorer plans (val-pan at 5.8 fps: arm-plain-wide's w24, calibrated at 149 ms where 154 ms were
    left, runs at 5.71 fps on its own; arm-plain had run 1.12 times its calibration)."""
    if not candidates or not has_table(engine):
        return engine, None, None
    current, full_everywhere = predicted_psnr(engine, x, TimeBudget(network_ms, prices))
    if not full_everywhere:  # the time is already spent: a dearer model could only buy less of itself
        return engine, None, None
    best = (current, engine, None)  # (predicted PSNR, engine, its units)
    for build in candidates:
        other = build()
        if not has_table(other):
            continue
        name = other.descriptor.name
        units = calibrated.get(name) if calibrated is not None else None
        if units is None:
            units = other.calibrate(x)
            if calibrated is not None:
                calibrated[name] = units
        psnr = uniform_psnr(other, x, TimeBudget(network_ms, {unit: ms * stream_ratio for unit, ms in units.items()}))
        if psnr is not None and psnr > best[0]:
            best = (psnr, other, units)
    if best[1] is engine or best[0] < current + MARGIN_DB:
        return engine, None, None
    old, new = engine.descriptor.name, best[1].descriptor.name
    return best[1], best[2], (f"switched to {new}: {old} runs its full network everywhere with time to spare, "
                              f"and {new} is predicted to give {best[0]:.2f} dB in the same time against "
                              f"{current:.2f} (the models' Edge-to-PSNR tables)")
