"""PCSR router: per-pixel choice between MLP upsamplers, from the model's own classifier.

Under a budget (a fraction of full-network MACs, or milliseconds from the fps controller):
1. If the budget cannot pay for the backbone on every tile, tiles are ranked by edge score (as ARM
   does) and only the edgiest run the network; the rest are interpolated.
2. On those tiles the classifier scores every LR pixel (``PCSR.heavy_score``: its HR pixels'
   largest heavy logit); the LR pixels with the highest scores get the heavy upsampler on all
   their s*s HR pixels, as many as the budget pays for. Ranking by the heavy probability is the
   published k rule (``argmax_j p_j / cost_j^k`` with two upsamplers is a threshold on
   ``p_heavy``) with k set to the value at which the budget binds. Choosing whole LR pixels rather
   than HR pixels is ours: it is at least as good at the same heavy share, and each upsampler then
   gathers one LR row for all s*s HR pixels of it, so it runs at its dense speed
   (``PCSR.render_rows``) instead of paying a gather per HR pixel.
3. Each upsampler runs only on its gathered pixels.
4. Pixel-wise refinement: a light pixel with a heavy pixel among its 8 neighbours takes the 3x3
   mean of the output (no extra network pass); by default at x4 only (``REFINE_MIN_SCALE``).

The published fixed-k rule (``mode="k"``) and the automatic mode ADM (``mode="adm"``: k-means on
the normalised heavy probability, deterministic) are available too, per HR pixel as published
(``PCSR.render``); they ignore the budget.
"""

from __future__ import annotations

import numpy as np
import torch

from . import PCSR_MODES as MODES
from .edge import tile_edge_scores
from .protocol import INTERPOLATION_UNIT, PixelPlan

CHOICE_DTYPE = torch.int8  # per-pixel choice maps: -1 not routed, 0 light .. heavy
STATIC_DIFF = 1.0 / 255  # mean absolute change of a frame below which it counts as static
# Pixel-wise refinement by default only from this scale up: the published step blurs a light pixel
# next to a heavy one with a 3x3 box of HR pixels, which at x4 stays inside one LR pixel (harmless)
# but at x2 spans one and a half and blurs real detail away.
REFINE_MIN_SCALE = 4
SAMPLE_FROM, SAMPLE_STEP = 1 << 16, 16  # kth_largest brackets its answer from a sample above this size
DEADBAND = 0.05  # share of the routed pixels by which a static frame's heavy quota may grow unused


def adm_choice(p_heavy: torch.Tensor, iterations: int = 20) -> torch.Tensor:
    """ADM: normalise p_heavy to [0, 1] over the image, 2-means from centres at 0 and 1, the
    cluster with the higher centre is heavy. Deterministic: no random initialisation."""
    p = p_heavy.flatten().float()
    lo, hi = p.min(), p.max()
    z = (p - lo) / (hi - lo) if hi > lo else torch.zeros_like(p)
    centres = torch.tensor([0.0, 1.0], device=z.device)
    for _ in range(iterations):
        assign = (z - centres[0]).abs() > (z - centres[1]).abs()
        new = torch.stack([z[~assign].mean() if (~assign).any() else centres[0],
                           z[assign].mean() if assign.any() else centres[1]])
        if torch.allclose(new, centres):
            break
        centres = new
    heavy = assign if centres[1] >= centres[0] else ~assign
    return heavy.reshape(p_heavy.shape).long()


def k_rule_choice(probs: torch.Tensor, costs: np.ndarray, k: float) -> torch.Tensor:
    """The published rule: argmax_j p_j / cost_j^k over upsamplers (dim 0 of ``probs``)."""
    c = torch.as_tensor(costs / costs.sum(), dtype=probs.dtype, device=probs.device)
    return torch.argmax(probs / c.view(-1, *([1] * (probs.dim() - 1))) ** k, dim=0)


def kth_largest(v: np.ndarray, k: int):
    """The ``k``-th largest value of a 1-D array, exactly. A full ``np.partition`` of a large
    window's scores would be most of PCSR's planning time, so the value is first bracketed from a
    strided sample's quantiles and only the values inside the bracket are partitioned. When the
    bracket misses (a skewed sample), the full partition answers."""
    n = v.size
    if n < SAMPLE_FROM:
        return np.partition(v, n - k)[n - k]
    sample = v[::SAMPLE_STEP]
    m, rank = sample.size, k * sample.size / n  # where the k-th largest of v falls in the sample
    margin = 4 * np.sqrt(m) + 16  # the sample rank is binomial: 4 sigma or more either side
    top, bottom = int(rank - margin), int(rank + margin)
    part = np.partition(sample, [m - 1 - min(max(i, 0), m - 1) for i in (top, bottom)])
    upper = part[m - 1 - top] if top >= 0 else np.inf  # bracket (lower, upper] in value
    lower = part[m - 1 - bottom] if bottom < m else -np.inf
    above = np.count_nonzero(v > upper)
    inside = v[(v > lower) & (v <= upper)]
    need = k - above
    if 1 <= need <= inside.size:
        return np.partition(inside, inside.size - need)[inside.size - need]
    return np.partition(v, n - k)[n - k]


def top_indices(values: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest of a 1-D tensor (ties at the k-th value: the first ones), in
    no particular order. On the CPU, selecting the k-th value (``kth_largest``) and then the
    indices above it is much faster than ``torch.topk`` or ``argpartition`` for k in the millions
    (a PCSR frame's heavy quota)."""
    if values.device.type == "cpu":
        v = values.numpy()
        kth = kth_largest(v, k)
        above = np.flatnonzero(v > kth)
        return torch.from_numpy(np.concatenate([above, np.flatnonzero(v == kth)[: k - above.size]]))
    return torch.topk(values, k).indices


class PCSRRouter:
    fills_from_base = False  # its interpolated tiles take the float base (or its own bicubic)
    reuses = False  # every routed tile runs its backbone: no output is kept between frames
    takes_evidence = False  # its choice is its own classifier's, per pixel, on this frame

    def __init__(self, upscaler, mode: str = "budget", k: float = 0.0, refinement: bool | None = None):
        if mode not in MODES:
            raise ValueError(f"unknown PCSR mode {mode!r}; choose from {MODES}")
        self.model = upscaler.module
        d = upscaler.descriptor
        self.descriptor = d
        self.mode, self.k = mode, k
        # whole LR pixels under a budget (ours); HR pixels for the published k rule and ADM
        self.whole_lr = mode == "budget"
        self.refinement = d.scale >= REFINE_MIN_SCALE if refinement is None else refinement
        self._previous = None
        self.names = tuple(r.name for r in d.routes)  # ("bicubic", "light", "heavy")
        self.macs = np.array([r.macs_per_pixel for r in d.routes])
        self.backbone_macs = d.info.get("backbone_macs", 0.0)
        self.head_macs = [max(c - self.macs[0] - self.backbone_macs, 1.0) for c in self.macs[1:]]  # per HR pixel
        # MACs per HR pixel of what this mode scores with: the LR score, or every HR pixel's probabilities
        self.classifier_macs = d.info.get("score_macs" if self.whole_lr else "router_overhead_macs", 0.0)

    def reset(self) -> None:
        self._previous = None

    def _steady(self, x, grid, run, quota):
        """Static content keeps its routing while the budget moves within a dead band: the same
        frame and the same heavy quota give the same pixels, so small controller adjustments do not
        make the marginal pixels flicker between upsamplers. The band is a share of the routed
        pixels; the old quota is kept only while it still fits the budget."""
        prev = self._previous
        self._previous = (x.clone(), run, quota)
        if prev is None or prev[0].shape != x.shape or quota is None or prev[2] is None:
            return run, quota
        old_x, old_run, old_quota = prev
        if float((x - old_x).abs().mean()) >= STATIC_DIFF or not np.array_equal(run, old_run):
            return run, quota
        routed_px = sum(t.h * t.w for t, r in zip(grid.tiles, run) if r) * self.descriptor.scale**2
        if old_quota <= quota <= old_quota + DEADBAND * routed_px:
            self._previous = (x.clone(), run, old_quota)
            return run, old_quota
        return run, quota

    # -- planning -----------------------------------------------------------------------------

    @property
    def score_kind(self) -> str:
        """What this mode's choice is made from: the heavy score per LR pixel (budget), every
        upsampler's probability (the k rule over more than two), else the heavy probability."""
        if self.whole_lr:
            return "lr_score"
        if self.mode == "k" and len(self.model.upsamplers) > 2:
            return "probabilities"
        return "heavy_probability"

    def plan(self, x: torch.Tensor, grid, budget, has_base: bool = False, reuse=None, evidence=None) -> PixelPlan:
        if self.mode == "budget":
            run, heavy_quota = self._steady(x, grid, *self._tile_plan(x, grid, budget, has_base))
        else:
            run, heavy_quota = np.ones(len(grid), bool), 0.0
        needs_scores = heavy_quota is not None and (self.mode != "budget" or heavy_quota > 0)
        unit = 1 if self.whole_lr else self.descriptor.scale  # the choice map's pixels per LR pixel side
        return PixelPlan(run, self.score_kind if needs_scores else None,
                         lambda scores, cores: self._choose(scores, cores, heavy_quota, unit),
                         self.whole_lr, self.refinement)

    def _tile_plan(self, x, grid, budget, has_base) -> tuple[np.ndarray, float | None]:
        """Which tiles run the network, and how many heavy HR pixels the rest of the budget pays
        for (None: every routed pixel heavy, no classifier needed). Each piece of work is priced
        per tile in the budget's currency: the backbone and the scoring, and each upsampler over
        the tile's pixels."""
        px = grid.core_pixels * self.descriptor.scale ** 2  # HR pixels per tile
        n = px.sum()
        light_head, heavy_head = self.head_macs
        interpolated = budget.price(self.macs[0] * px, None)
        backbone = budget.price(self.backbone_macs * px, "backbone")
        scoring = budget.price(self.classifier_macs * px, "classifier")
        light = budget.price(light_head * px, "light", px / 1000.0)
        heavy = budget.price(heavy_head * px, "heavy", px / 1000.0)
        floor = interpolated.sum()
        spend = budget.allowance(floor, floor + (backbone + heavy).sum(), () if has_base else (INTERPOLATION_UNIT,)) - floor
        all_heavy = (backbone + heavy).sum()
        all_light = (backbone + scoring + light).sum()
        if spend >= all_heavy:
            return np.ones(len(grid), bool), None
        if spend >= all_light:
            return np.ones(len(grid), bool), (spend - all_light) / ((heavy.sum() - light.sum()) / n)
        # below every tile light: only the edgiest tiles run the network, all light (no scores)
        unit = backbone + light
        order = np.argsort(-tile_edge_scores(x, grid).flatten().cpu().numpy(), kind="stable")
        run = np.zeros(len(grid), bool)
        for i in order:
            if unit[i] <= spend:
                run[i] = True
                spend -= unit[i]
        return run, 0.0

    def _choose(self, scores, cores, heavy_quota, unit) -> list[torch.Tensor]:
        """Per batch of windows, an int8 choice map over each window (-1 outside the core: context,
        not decided here). ``unit``: the map's pixels per LR pixel side (1 when whole LR pixels are
        routed). Elementwise ``where`` over whole windows, not boolean-mask gathers of the core
        pixels: those are single-threaded on the CPU and took a tenth of a routed x4 frame."""
        device = cores[0].device
        heavy = len(self.model.upsamplers) - 1
        unrouted = torch.tensor(-1, dtype=CHOICE_DTYPE, device=device)
        if scores is None:  # everything heavy (no quota limit) or everything light (no quota)
            fill = torch.tensor(heavy if heavy_quota is None else 0, dtype=CHOICE_DTYPE, device=device)
            return [torch.where(c, fill, unrouted) for c in cores]
        if self.mode == "k":
            costs = self.macs[1:]
            probs = [p if p.dim() == 4 else torch.stack([1 - p, p], dim=1) for p in scores]
            return [torch.where(c, k_rule_choice(p.transpose(0, 1), costs, self.k).to(CHOICE_DTYPE), unrouted)
                    for p, c in zip(probs, cores)]
        if self.mode == "adm":  # k-means over all routed core pixels of the frame at once
            ph = torch.cat([p[c] for p, c in zip(scores, cores)])
            flat, out, at = adm_choice(ph).to(CHOICE_DTYPE), [], 0
            for c in cores:
                ch = torch.full(c.shape, -1, dtype=CHOICE_DTYPE, device=device)
                n = int(c.sum())
                ch[c] = flat[at : at + n]
                at += n
                out.append(ch)
            return out
        # budget: exactly as many core pixels of the frame as the heavy quota (in HR pixels) pays
        # for, those with the highest scores; context pixels score -inf, so they are never picked
        ph = torch.cat([torch.where(c, p, -torch.inf).flatten() for p, c in zip(scores, cores)])
        heavy_px = torch.zeros(ph.numel(), dtype=CHOICE_DTYPE, device=ph.device)
        per_unit = (self.descriptor.scale // unit) ** 2  # HR pixels per choice-map pixel
        quota = int(min(max(heavy_quota, 0) // per_unit, sum(int(c.sum()) for c in cores)))
        if quota:
            heavy_px[top_indices(ph, quota)] = 1
        out, at = [], 0
        for c in cores:
            out.append(torch.where(c, heavy_px[at : at + c.numel()].view(c.shape), unrouted))
            at += c.numel()
        return out

    def calibration_plan(self) -> PixelPlan:
        """What pricing this mode's units needs: its scoring and its choice unit."""
        return PixelPlan(np.ones(1, bool), self.score_kind, self._choose, self.whole_lr)

    def unit_macs(self, grid) -> dict[str, float]:
        """MACs of one unit of each kind of work, for the controller's first guesses."""
        s2 = self.descriptor.scale ** 2
        win = grid.window_pixels() * s2
        units = {"backbone": self.backbone_macs * win, "classifier": self.classifier_macs * win,
                 INTERPOLATION_UNIT: self.macs[0] * grid.height * grid.width * s2}
        for name, head in zip(self.names[1:], self.head_macs):
            units[name] = 1000 * head  # per 1000 pixels
        return units
