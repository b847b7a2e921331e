"""A dearer model for a frame-rate target that leaves time over.

``--fps-target`` runs the routed model that is best at a low cost per pixel. When the target is so
low that this model runs its full network on every tile with time to spare, the spare time buys
nothing; a dearer model routed under the same time budget may give more. This decides that once,
on the second frame (when the controller knows what a frame costs without the network), from
measurements on this machine and this frame:

- the time the controller would give the network (``FpsController.network_ms``);
- each candidate's calibrated cost per tile and route (``ARMRouter.calibrate``), the same prices
  the controller uses;
- each model's predicted PSNR for the frame under that time budget: its router plans the frame as
  it would run it and reads the plan's quality off its Edge-to-PSNR table (mean PSNR of validation
  patches per edge score and route, so the tables of different models are on one scale).

The candidate must beat the current model by ``MARGIN_DB``; only ARM models have tables, so PCSR
models are neither switched from nor to.
"""

from __future__ import annotations

from .budget import TimeBudget

MARGIN_DB = 0.1  # predicted gain a switch needs (the tables' fit to new content is not exact)


def predicted_psnr(engine, x, budget: TimeBudget) -> tuple[float, bool]:
    """(predicted PSNR of frame ``x`` under ``budget``, whether the plan puts the full network on
    every tile), as ``engine``'s ARM router would run it with the caller's interpolated base."""
    router = engine.router
    grid = engine.grid(*x.shape[-2:])
    plan = router.plan(x, grid, budget, interpolates=False)
    router.reset()  # a plan made to compare leaves no memory for the frames that follow
    return plan.predicted_psnr(grid.core_pixels), bool((plan.routes == len(router.names) - 1).all())


def has_table(engine) -> bool:
    return engine is not None and getattr(engine.router, "table", None) is not None


def pick_dearer(engine, candidates, x, network_ms: float, prices: dict[str, float]):
    """(engine to run, its unit costs as calibrated here on its own thread count or None, a note
    or None). ``candidates``: callables that build the dearer models' engines (only called when the
    current model has time to spare); ``prices``: the current model's unit costs as the controller
    prices them."""
    if not candidates or not has_table(engine):
        return engine, None, None
    current, full_everywhere = predicted_psnr(engine, x, TimeBudget(network_ms, prices))
    if not full_everywhere:  # the time is already spent: a dearer model could only buy less of itself
        return engine, None, None
    best = (current, engine, None)
    for build in candidates:
        other = build()
        if not has_table(other):
            continue
        units = other.router.calibrate(other, x)
        psnr, _ = predicted_psnr(other, x, TimeBudget(network_ms, units))
        if psnr > best[0]:
            best = (psnr, other, units)
    if best[1] is engine or best[0] < current + MARGIN_DB:
        return engine, None, None
    old, new = engine.upscaler.descriptor.name, best[1].upscaler.descriptor.name
    return best[1], best[2], (f"switched to {new}: {old} runs its full network everywhere with time to spare, "
                              f"and {new} is predicted to give {best[0]:.2f} dB in the same time against "
                              f"{current:.2f} (the models' Edge-to-PSNR tables)")
