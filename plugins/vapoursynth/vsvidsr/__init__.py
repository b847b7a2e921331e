"""vsvidsr: vidsr's video super-resolution as a VapourSynth filter.

    import vapoursynth as vs
    import vsvidsr

    core = vs.core
    clip = core.resize.Bicubic(clip, format=vs.YUV444PS)
    clip = vsvidsr.upscale(clip, scale=2)               # best shipped model for x2 (else Lanczos)
    clip = core.resize.Bicubic(clip, format=vs.YUV420P10)
    clip.set_output()

``upscale`` runs the same models, routers, tiler and engine as the ``vidsr`` command (it calls
``vidsr.engine.Engine``); see ``plugins/vapoursynth/README.md``.
"""

from __future__ import annotations

import math

import vapoursynth as vs

from vidsr.presets import MIN_TILE  # light: no torch until the first frame

__all__ = ["ACCEPTED_FORMATS", "BUDGET_PROP", "upscale", "clear_cache"]

# Formats upscale() takes, by the route their planes take: "rgb" (split into BT.601 studio-range
# Y'CbCr, Y through the model, CbCr through Lanczos, back to RGB) or "luma" (plane 0 through the
# model, the chroma planes of 4:4:4 YUV through Lanczos).
ACCEPTED_FORMATS: dict[int, str] = {
    vs.RGBS: "rgb",
    vs.RGBH: "rgb",
    vs.YUV444PS: "luma",
    vs.YUV444PH: "luma",
    vs.GRAYS: "luma",
    vs.GRAYH: "luma",
}
BUDGET_PROP = "VidsrBudget"


def _format_names() -> str:
    return ", ".join(vs.core.get_video_format(f).name for f in ACCEPTED_FORMATS)


def _conversion_hint(fmt: vs.VideoFormat) -> str:
    family = fmt.color_family
    if family == vs.RGB:
        return "clip = core.resize.Point(clip, format=vs.RGBS)"
    if family == vs.GRAY:
        return "clip = core.resize.Point(clip, format=vs.GRAYS)"
    if family == vs.YUV and fmt.subsampling_w == 0 and fmt.subsampling_h == 0:
        return "clip = core.resize.Point(clip, format=vs.YUV444PS)"
    if family == vs.YUV:
        return "clip = core.resize.Bicubic(clip, format=vs.YUV444PS)"
    return "clip = core.resize.Bicubic(clip, format=vs.RGBS)"


def check_clip(clip) -> str:
    """The plane route ("rgb"/"luma") for ``clip``, or ``vs.Error`` saying what to do instead."""
    if not isinstance(clip, vs.VideoNode):
        raise vs.Error(f"vsvidsr.upscale: clip must be a video clip (vs.VideoNode), got {type(clip).__name__}")
    fmt = clip.format
    if fmt is None or fmt.id == 0 or fmt.color_family == vs.UNDEFINED:
        raise vs.Error(
            "vsvidsr.upscale: clip has a variable format; every frame must have one format. Accepted formats: "
            f"{_format_names()}. Convert with core.resize, e.g. clip = core.resize.Bicubic(clip, format=vs.RGBS)"
        )
    if clip.width == 0 or clip.height == 0:
        raise vs.Error(
            "vsvidsr.upscale: clip has a variable frame size; every frame must have one size. Make it constant "
            "first with core.resize, e.g. clip = core.resize.Spline36(clip, width=1280, height=720)"
        )
    family = ACCEPTED_FORMATS.get(fmt.id)
    if family is None:
        raise vs.Error(
            f"vsvidsr.upscale: format {fmt.name} is not supported. Accepted formats: {_format_names()}. "
            f"Convert with core.resize, e.g. {_conversion_hint(fmt)}"
        )
    return family


def _resolve_device(device: str) -> str:
    if not isinstance(device, str):
        raise vs.Error(f"vsvidsr.upscale: device must be a string (auto, cpu, cuda, cuda:N), got {device!r}")
    from vidsr.engine import resolve_device
    from vidsr.errors import SettingsError

    try:
        return resolve_device(device)
    except SettingsError as e:
        raise vs.Error(f"vsvidsr.upscale: {e}") from None


def upscale(clip: vs.VideoNode, scale: int = 2, model: str | None = None, budget: float = 1.0,
            router: str | None = "auto", tile: int | None = None, device: str = "auto",
            overlap: int | None = None, batch: int = 8, fp16: bool = False,
            max_ms: float | None = None) -> vs.VideoNode:
    """Upscale ``clip`` by ``scale`` (2, 3 or 4) with a vidsr model; returns a clip of the same
    format and length, ``scale`` times wider and taller.

    clip     RGBS, RGBH, YUV444PS, YUV444PH, GRAYS or GRAYH, constant format and size
             (anything else: ``vs.Error`` with the ``core.resize`` call that converts).
    model    a shipped model name, "bicubic", "lanczos", or a ``.safetensors`` path listed in a
             manifest.json beside it; default: the best shipped model for ``scale`` (Lanczos if
             none ships), or with ``budget`` < 1 or ``max_ms`` the model that routes best (as the
             CLI picks them).
    budget   fraction (0..1) of the full network's cost to spend per frame, for routed models;
             a frame's ``VidsrBudget`` property, where present, overrides it for that frame.
    router   "auto" (the model's own), "none" (full network everywhere), "arm" or "pcsr".
    tile     LR tile side (default 128; 64 with a router); overlap: LR context pixels per tile
             side (default: the model's receptive radius, so tiles merge without seams).
    max_ms   instead of ``budget``: milliseconds of network time per frame (routed models). The
             price of each route's work is measured once, when the clip is built, so every frame
             is planned from the same prices and frame n plans the same whatever order frames are
             asked in; another run of the script measures again, so outputs can differ slightly
             between runs. A frame's ``VidsrBudget`` property still wins.
    device   "auto" (CUDA if torch sees one), "cpu", "cuda", "cuda:N".
    batch    tiles per model call; fp16: run the model in half precision (CUDA only).

    Output frame n is the upscale of input frame n alone (but for a routed model's tiles kept from
    frame n-1 when it was computed just before, where their input changed by at most one 8-bit
    level); input frame properties are kept
    (``_SARNum``/``_SARDen`` unchanged, since both axes scale alike; an attached ``_Alpha`` frame
    is dropped), and per-frame stats are added: VidsrBudget, VidsrModel, VidsrRoutes,
    VidsrRouteShares (share of output pixels per route, same order), VidsrMACsPerPixel,
    VidsrCost (MACs spent / full network's) and VidsrMs (wall time of the frame).
    """
    family = check_clip(clip)
    if isinstance(scale, bool) or not isinstance(scale, int):
        raise vs.Error(f"vsvidsr.upscale: scale must be an integer (2, 3 or 4), got {scale!r}")
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0.0 <= budget <= 1.0:
        raise vs.Error(f"vsvidsr.upscale: budget must be between 0 and 1, got {budget!r}")
    # bool is an int in Python: True is no tile size, batch or overlap
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < MIN_TILE):
        raise vs.Error(f"vsvidsr.upscale: tile must be an integer >= {MIN_TILE}, got {tile!r}")
    if overlap is not None and (isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0):
        raise vs.Error(f"vsvidsr.upscale: overlap must be an integer >= 0, got {overlap!r}")
    if max_ms is not None and (isinstance(max_ms, bool) or not isinstance(max_ms, (int, float))
                               or not math.isfinite(max_ms) or max_ms <= 0):
        raise vs.Error(f"vsvidsr.upscale: max_ms must be a positive, finite number of milliseconds, got {max_ms!r}")
    if max_ms is not None and budget != 1.0:
        raise vs.Error("vsvidsr.upscale: give budget or max_ms, not both (max_ms is a budget in milliseconds)")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise vs.Error(f"vsvidsr.upscale: batch must be an integer >= 1, got {batch!r}")
    if not isinstance(fp16, bool):
        raise vs.Error(f"vsvidsr.upscale: fp16 must be True or False, got {fp16!r}")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise vs.Error(f"vsvidsr.upscale: model must be a name or a path, got {model!r}")
    if router is not None and not isinstance(router, str):
        raise vs.Error(f"vsvidsr.upscale: router must be auto, none, arm or pcsr, got {router!r}")
    device = _resolve_device(device)
    if fp16 and not device.startswith("cuda"):
        raise vs.Error("vsvidsr.upscale: fp16=True needs a CUDA device")

    import torch

    from vidsr.errors import VidsrError
    from vidsr.policy import choose_model
    from vidsr.runtime import tune_allocator

    tune_allocator()

    from . import _filter

    try:
        name = choose_model(scale, model, router, routed=budget < 1 or max_ms is not None)
        shared = _filter.shared_engine(name, scale, device, torch.float16 if fp16 else torch.float32,
                                       router, tile, overlap, batch)
    except VidsrError as e:
        raise vs.Error(str(e)) from None
    s = shared.engine.scale
    template = vs.core.std.BlankClip(clip, width=clip.width * s, height=clip.height * s, keep=True)
    if max_ms is not None and shared.engine.router is None:
        raise vs.Error(f"vsvidsr.upscale: max_ms needs a routed model (ARM or PCSR); {name} with router={router!r} "
                       "has a single route")
    fn = _filter.FrameFunction(shared, family, float(budget), None if max_ms is None else float(max_ms),
                               (clip.width, clip.height))
    return vs.core.std.ModifyFrame(template, [template, clip], fn)


def clear_cache() -> None:
    """Forget loaded models and engines (clips made before keep theirs)."""
    from . import _filter

    _filter.clear_cache()
