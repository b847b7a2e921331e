"""The model registry: architectures vidsr can build, the trained models it ships, and loading.

An *architecture* is code (how to build the module, which routes it has, what tiles it needs).
A *model* is an architecture at a scale with trained weights, listed in a manifest
(``vidsr/weights/manifest.json`` for the shipped ones). ``load`` is the one way the CLI, the
VapourSynth filter, the benchmarks and training turn a name or a path into a ready ``Upscaler``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from ..errors import SettingsError, WeightsError
from . import weights
from .descriptor import ModelDescriptor, Route, TileSpec, Upscaler
from .bsrn import BSRN
from .downscaler import LearnedDownscaler
from .espcn import ESPCN
from .interpolation import kernel_radius, upscale
from .blocks import WidthSupernet
from .interpolation import Interpolation
from .macs import macs_per_pixel
from .pcsr import PCSR
from .plain import PlainSR, SlimPlain
from .wdsr import WDSR, SlimWDSR

SHIPPED_DIR = weights.SHIPPED_DIR
SCALES = (2, 3, 4)


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[..., nn.Module]  # build(scale, **config)
    defaults: dict
    summary: str
    router: str | None = None  # which router family drives its routes
    # LR context per tile side for a seamless merge: the receptive radius, or less where measured to
    # change nothing visible (context is most of a small routed tile's cost)
    context: int = 8
    min_tile: int = 1
    routes: Callable[[nn.Module], tuple] = field(default=lambda m: (None,))  # route keys, cheapest first
    trainable: bool = True


def _width_routes(m: WidthSupernet):
    return ("bicubic",) + tuple(f"w{w}" for w in m.widths)


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in [
        Architecture("bicubic", lambda s: Interpolation(s, "bicubic"), {}, "bicubic interpolation (Keys, a=-0.5)",
                     context=kernel_radius("bicubic"), trainable=False),
        Architecture("lanczos", lambda s: Interpolation(s, "lanczos"), {}, "Lanczos-3 interpolation",
                     context=kernel_radius("lanczos"), trainable=False),
        Architecture("plain", PlainSR, {"channels": 32, "convs": 6},
                     "plain baseline: 6 hidden 3x3 convs of 32 channels", context=8),
        Architecture("espcn", ESPCN, {"channels": 16}, "ESPCN-class, 3 convs, for CPU real time", context=4),
        Architecture("arm-espcn", ESPCN, {"channels": 16},
                     "ESPCN-class under the ARM router: per tile the net or bicubic (real time on a CPU)",
                     router="arm", context=4, routes=lambda m: ("bicubic", "full")),
        Architecture("wdsr", WDSR, {"channels": 32, "blocks": 8}, "WDSR-B wide-activation blocks", context=10),
        Architecture("bsrn", BSRN, {"channels": 64, "blocks": 8}, "BSRN (64 channels, 8 blocks)",
                     context=12, min_tile=17),
        Architecture("bsrn-s", BSRN, {"channels": 48, "blocks": 5}, "BSRN-S (48 channels, 5 blocks)",
                     context=12, min_tile=17),
        Architecture("arm-wdsr", SlimWDSR, {"widths": [8, 16, 24, 32], "blocks": 8},
                     "ARM supernet: slimmable WDSR-B widths sharing weights + bicubic branch",
                     # less context than its receptive radius (10): the shipped weights stay within
                     # an 8-bit level of an exact merge (test_shipped_context_is_seamless), and a
                     # lone tile computes much less beyond its core
                     router="arm", context=6, routes=_width_routes),
        Architecture("arm-plain", SlimPlain, {"widths": [8, 16, 24, 32], "convs": 6},
                     "ARM supernet over the plain stack: slimmable widths sharing weights + bicubic branch",
                     # context 7 of a receptive radius of 8, as above (6 would be visibly off at x4)
                     router="arm", context=7, routes=_width_routes),
        Architecture("pcsr-wdsr", PCSR,
                     {"channels": 32, "blocks": 4, "backbone": "wdsr", "upsamplers": [[16, 16], [64, 64, 64]],
                      "unfold": [False, True], "classifier": [16]},
                     "PCSR: WDSR-B backbone, per-pixel classifier, light and heavy MLP upsamplers",
                     router="pcsr", context=6, routes=lambda m: ("bicubic",) + m.route_names),
    ]
}


def architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise SettingsError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}") from None


def build_module(arch: str, scale: int, config: dict | None = None) -> nn.Module:
    a = architecture(arch)
    return a.build(scale, **{**a.defaults, **(config or {})})


def _route_costs(arch: Architecture, module: nn.Module, scale: int) -> tuple[tuple[Route, ...], dict]:
    """Per-route MACs per HR pixel, and the parts routers need (PCSR: backbone and classifier)."""
    size = max(32, arch.min_tile)
    if arch.router == "pcsr":
        backbone = macs_per_pixel(module.backbone, scale, size)  # charged per HR pixel like the rest
        base = macs_per_pixel(lambda x: upscale(x, scale), scale, size)
        routes = [Route("bicubic", base)]
        for name, up in zip(module.route_names, module.upsamplers):
            head = macs_per_pixel(lambda x, up=up: up.dense(module.backbone(x), scale), scale, size) - backbone
            routes.append(Route(name, base + backbone + head))
        cls = macs_per_pixel(lambda x: module.heavy_probability(module.backbone(x)), scale, size) - backbone
        score = macs_per_pixel(lambda x: module.heavy_score(module.backbone(x)), scale, size) - backbone
        return tuple(routes), {"router_overhead_macs": cls, "score_macs": score, "backbone_macs": backbone}
    keys = arch.routes(module)
    routes = tuple(Route(str(k) if k is not None else "full", macs_per_pixel(lambda x, k=k: module(x, k), scale, size)) for k in keys)
    return routes, {"router_overhead_macs": 0.0}


@functools.lru_cache(maxsize=64)
def _costs_cached(arch_name: str, scale: int, config_json: str):
    arch = architecture(arch_name)
    module = build_module(arch_name, scale, json.loads(config_json))
    params = sum(p.numel() for p in module.parameters())
    routes, overhead = _route_costs(arch, module, scale)
    return routes, overhead, params


def describe(name: str, arch_name: str, scale: int, config: dict | None = None, entry: dict | None = None) -> ModelDescriptor:
    arch = architecture(arch_name)
    config = {**arch.defaults, **(config or {})}
    routes, parts, params = _costs_cached(arch_name, scale, json.dumps(config, sort_keys=True))
    info = dict(entry or {})
    info.update(parts)
    return ModelDescriptor(
        name=name,
        architecture=arch_name,
        scale=scale,
        params=params,
        routes=routes,
        tile=TileSpec(context=arch.context, min_size=arch.min_tile),
        router=arch.router,
        weights_file=(entry or {}).get("file"),
        info=info,
    )


def shipped_models() -> list[dict]:
    """Manifest entries of the models that come with vidsr."""
    return weights.read_manifest(SHIPPED_DIR)


def for_clean_input(entry: dict) -> bool:
    """Whether a shipped model is for ordinary footage. A model trained on decoded video
    (``"input": "coded"``, the delivery upscalers) is chosen only by name or by a delivery tag: on a
    clean frame it restores less detail than the others, so no automatic choice lands on it."""
    return entry.get("input", "clean") == "clean"


def general_models() -> list[dict]:
    """The shipped models an automatic choice (default model, frame-rate target, benchmarks'
    model sets) picks from."""
    return [m for m in shipped_models() if for_clean_input(m)]


def _best(scale: int, keep, score) -> str | None:
    """The general shipped model at ``scale`` whose router family passes ``keep`` with the highest
    ``score(entry)``; None if none ships."""
    found = [m for m in general_models() if m["scale"] == scale and keep(architecture(m["architecture"]).router)]
    return max(found, key=score)["name"] if found else None


def _full_psnr(entry: dict) -> float:
    return entry.get("validation", {}).get("psnr_y", 0.0)


def best_shipped(scale: int, routers: tuple[str | None, ...] | None = None) -> str | None:
    """The shipped model with the best validation PSNR at ``scale``, among those whose router
    family is in ``routers`` (None: any); None if none ships."""
    return _best(scale, lambda router: routers is None or router in routers, _full_psnr)


def best_routed(scale: int) -> str | None:
    """The shipped routed (ARM or PCSR) model that gives the best validation PSNR under its router
    at the same cost per pixel as every other model of its scale (``validation.routed``, measured
    at export; ``evaluate.ROUTED_MACS_PER_INPUT_PIXEL``), for a frame-rate target or a budget below
    1; entries without that measure count with their full-network PSNR."""
    return _best(scale, lambda router: router is not None,
                 lambda m: m.get("validation", {}).get("routed", {}).get("psnr_y", _full_psnr(m)))


def dearer_routed(scale: int, name: str) -> list[str]:
    """The shipped ARM models at ``scale`` whose full network beats ``name``'s on validation, best
    first: what a frame-rate target that leaves ``name`` time over may switch to (``vidsr.policy``)."""
    entries = [m for m in general_models() if m["scale"] == scale]
    own = next((_full_psnr(m) for m in entries if m["name"] == name), None)
    if own is None:
        return []
    better = [m for m in entries if architecture(m["architecture"]).router == "arm" and _full_psnr(m) > own]
    return [m["name"] for m in sorted(better, key=_full_psnr, reverse=True)]


def default_model(scale: int) -> str:
    """The shipped model with the best validation PSNR at ``scale`` (Lanczos if none ships)."""
    return best_shipped(scale) or "lanczos"


def manifest_entry(name: str, scale: int | None) -> dict | None:
    """The manifest entry for a shipped name, or for a path to a weights file (its manifest must
    sit beside it). ``scale`` None accepts a path's file at whatever scale it was trained for
    (``vidsr train --init``, where an x2 net starts an x4 run)."""
    if name.endswith(".safetensors") or "/" in name or "\\" in name:
        path = Path(name)
        if not path.is_file():
            raise WeightsError(f"weights file {path} {'is a folder' if path.is_dir() else 'does not exist'}")
        entries = [e for e in weights.read_manifest(path.parent) if e["file"] == path.name]
        if not entries:
            raise WeightsError(f"{path} is not listed in {path.parent / weights.MANIFEST}; refusing unverified weights")
        entry = entries[0]
        _check_entry(entry, path.parent / weights.MANIFEST)
        if scale is not None and entry["scale"] != scale:
            raise SettingsError(f"{path} is a x{entry['scale']} model, but --scale is {scale}")
        return entry
    if name in ARCHITECTURES and not architecture(name).trainable:
        return None
    entries = [e for e in shipped_models() if e["name"] == name]
    if not entries:
        known = sorted({e["name"] for e in shipped_models()} | {a.name for a in ARCHITECTURES.values() if not a.trainable})
        raise SettingsError(f"unknown model {name!r}; choose from {', '.join(known)} or give a .safetensors path")
    for e in entries:
        if e["scale"] == scale:
            return e
    scales = sorted(e["scale"] for e in entries)
    raise SettingsError(f"model {name!r} has no x{scale} weights (available: {', '.join(f'x{s}' for s in scales)})")


def _check_entry(entry: dict, manifest: Path) -> None:
    """A manifest entry beside a user's weights file, checked before anything is built from it."""
    missing = [k for k in ("architecture", "scale", "sha256") if not entry.get(k)]
    if missing:
        raise WeightsError(f"{manifest}: the entry for {entry['file']} has no {', '.join(missing)}")
    if not isinstance(entry["scale"], int) or entry["scale"] not in SCALES:
        raise WeightsError(f"{manifest}: the entry for {entry['file']} has scale {entry['scale']!r}; "
                           f"it must be one of {', '.join(map(str, SCALES))}")
    if entry["architecture"] not in ARCHITECTURES:
        raise WeightsError(f"{manifest}: the entry for {entry['file']} names an unknown architecture "
                           f"{entry['architecture']!r} (known: {', '.join(sorted(ARCHITECTURES))})")
    if not isinstance(entry.get("config") or {}, dict):
        raise WeightsError(f"{manifest}: the entry for {entry['file']} has a config that is not a table")


def load(name: str | None, scale: int, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> Upscaler:
    """Resolve a model name (or weights path) at ``scale`` and return it ready to run."""
    if scale not in SCALES:
        raise SettingsError(f"scale {scale} is not supported; choose from {', '.join(map(str, SCALES))}")
    name = name or default_model(scale)
    entry = manifest_entry(name, scale)
    if entry is None:  # interpolation
        module = build_module(name, scale)
        return Upscaler(describe(name, name, scale), module).to(device, dtype)
    arch_name = entry["architecture"]
    try:
        module = build_module(arch_name, scale, entry.get("config"))
    except TypeError as e:  # options the architecture does not take
        raise WeightsError(f"{entry['file']}: its manifest's config {entry.get('config')} does not fit "
                           f"architecture {arch_name} ({e})") from None
    state, extras = weights.load_checked(entry)
    _load_state(module, state, entry["file"], arch_name)
    desc = describe(entry["name"], arch_name, scale, entry.get("config"), entry)
    return Upscaler(desc, module, extras).to(device, dtype)


def list_models() -> list[ModelDescriptor]:
    """Descriptors of everything ``--model`` accepts without a path, for ``--list-models``."""
    out = [describe(a.name, a.name, s) for a in ARCHITECTURES.values() if not a.trainable for s in SCALES]
    for e in shipped_models():
        out.append(describe(e["name"], e["architecture"], e["scale"], e.get("config"), e))
    return out


# Delivery downscalers: one per (upscaler model, scale), in the manifest's "downscalers" section,
# each tied to the exact upscaler weights it was trained against (their sha256).
DOWNSCALER_ARCHITECTURES = {"learned-downscaler": LearnedDownscaler}


def shipped_downscalers() -> list[dict]:
    return weights.read_manifest(SHIPPED_DIR, "downscalers")


def downscaler_entry(upscaler: str, scale: int, folder: Path | None = None) -> dict | None:
    entries = weights.read_manifest(folder, "downscalers") if folder is not None else shipped_downscalers()
    return next((e for e in entries if e["upscaler"] == upscaler and e["scale"] == scale), None)


def build_downscaler(arch: str, scale: int, config: dict | None = None) -> nn.Module:
    if arch not in DOWNSCALER_ARCHITECTURES:
        raise WeightsError(f"unknown downscaler architecture {arch!r}")
    return DOWNSCALER_ARCHITECTURES[arch](scale, **(config or {}))


def load_sharp_base(scale: int, folder: Path | None = None):
    """The sharpened Lanczos base shipped for ``scale`` (``vidsr.models.sharpen``), its checksum
    verified, or None where none ships."""
    from .sharpen import LABEL, SharpBase

    entries = weights.read_manifest(folder or SHIPPED_DIR, "bases")
    entry = next((e for e in entries if e["name"] == LABEL and e["scale"] == scale), None)
    if entry is None:
        return None
    tensors, _ = weights.load_checked(entry)
    try:
        return SharpBase.from_tensors(scale, tensors)
    except (KeyError, ValueError) as e:
        raise WeightsError(f"{entry['file']}: not a sharpened Lanczos base ({e})") from None


def load_downscaler(entry: dict, device: str | torch.device = "cpu") -> nn.Module:
    """The downscaler of a manifest entry, its checksum verified, ready to run."""
    module = build_downscaler(entry["architecture"], entry["scale"], entry.get("config"))
    state, _ = weights.load_checked(entry)
    _load_state(module, state, entry["file"], entry["architecture"])
    return module.to(device).eval()


def _load_state(module: nn.Module, state: dict, file: str, arch: str) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        # torch's message: a header line, then the missing, unexpected and mis-shaped tensors
        detail = " ".join(line.strip() for line in str(e).strip().splitlines()[1:])
        detail = detail if len(detail) <= 300 else detail[:297] + "..."
        raise WeightsError(f"weights {file} do not fit architecture {arch}: {detail}") from None
