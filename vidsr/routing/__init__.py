"""Adaptive routing: turning a frame's compute budget into a route per tile (ARM) or per pixel
(PCSR). Routers only choose; the engine runs what they choose; the controller sets the budget."""

from __future__ import annotations

from ..errors import SettingsError

ROUTERS = ("arm", "pcsr")


def build_router(upscaler, kind: str | None = None):
    """The router for ``upscaler``: ``kind`` None/"auto" picks the model's own family; "none" runs
    the full network everywhere. Returns None when no routing applies."""
    family = upscaler.descriptor.router
    if kind in (None, "auto"):
        kind = family
    if kind in (None, "none"):
        return None
    if kind not in ROUTERS:
        raise SettingsError(f"unknown router {kind!r}; choose from auto, none, {', '.join(ROUTERS)}")
    if kind != family:
        raise SettingsError(
            f"model {upscaler.descriptor.name} is built for the {family or 'no'} router, not {kind}"
            + ("" if family else "; it has a single route")
        )
    if kind == "arm":
        from .arm import ARMRouter

        return ARMRouter(upscaler)
    from .pcsr import PCSRRouter

    return PCSRRouter(upscaler)
