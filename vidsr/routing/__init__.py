"""Adaptive routing: turning a frame's compute budget into a route per tile (ARM) or per pixel
(PCSR). Routers only plan (``protocol``); the executor runs what they plan; the controller sets
the budget. The names below are the one list the CLI, presets and the VapourSynth filter accept."""

from __future__ import annotations

from ..errors import SettingsError

ROUTERS = ("arm", "pcsr")
ROUTER_CHOICES = ("auto", "none") + ROUTERS  # auto: the model's own family; none: full network everywhere
PCSR_MODES = ("budget", "k", "adm")  # ours under a budget; the published k rule; the published ADM
PREDICTORS = ("edge", "last-frame")  # ARM's prediction: the Edge-to-PSNR table, or it and recent frames (evidence)


def build_router(upscaler, kind: str | None = None, pcsr_mode: str = "budget", pcsr_k: float = 0.0):
    """The router for ``upscaler``, complete: ``kind`` None/"auto" picks the model's own family,
    "none" runs the full network everywhere (returns None, as for a model with one route).
    ``pcsr_mode`` and ``pcsr_k`` set PCSR's rule."""
    family = upscaler.descriptor.router
    if kind in (None, "auto"):
        kind = family
    if kind in (None, "none"):
        return None
    if kind not in ROUTERS:
        raise SettingsError(f"unknown router {kind!r}; choose from {', '.join(ROUTER_CHOICES)}")
    if kind != family:
        raise SettingsError(
            f"model {upscaler.descriptor.name} is built for the {family or 'no'} router, not {kind}"
            + ("" if family else "; it has a single route")
        )
    if kind == "arm":
        from .arm import ARMRouter

        return ARMRouter(upscaler)
    if pcsr_mode not in PCSR_MODES:
        raise SettingsError(f"unknown PCSR mode {pcsr_mode!r}; choose from {', '.join(PCSR_MODES)}")
    from .pcsr import PCSRRouter

    return PCSRRouter(upscaler, pcsr_mode, pcsr_k)
