"""PCSR router: per-pixel choice between MLP upsamplers, from the model's own classifier.

Under a budget (a fraction of full-network MACs, or milliseconds from the fps controller):
1. If the budget cannot pay for the backbone on every tile, tiles are ranked by edge score (as ARM
   does) and only the edgiest run the network; the rest are interpolated.
2. On those tiles the classifier scores every LR pixel (``PCSR.heavy_score``: its HR pixels'
   largest heavy logit); the LR pixels with the highest scores get the heavy upsampler on all
   their s*s HR pixels, as many as the budget pays for. Ranking by the heavy probability is the
   published k rule (``argmax_j p_j / cost_j^k`` with two upsamplers is a threshold on
   ``p_heavy``) with k set to the value at which the budget binds; choosing whole LR pixels rather
   than HR pixels is ours: on the x2 and x4 validation images it gave 0.01-0.05 dB *more* at the
   same heavy share, and each upsampler then gathers one LR row per s*s HR pixels, so it runs at
   its dense speed (``PCSR.render_rows``) instead of paying a gather per HR pixel.
3. Each upsampler runs only on its gathered pixels.
4. Pixel-wise refinement: a light pixel with a heavy pixel among its 8 neighbours takes the 3x3
   mean of the output (no extra network pass); by default at x4 only (``REFINE_MIN_SCALE``).

The published fixed-k rule (``mode="k"``) and the automatic mode ADM (``mode="adm"``: k-means on
the normalised heavy probability, deterministic) are available too, per HR pixel as published
(``PCSR.render``); they ignore the budget.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from ..engine import REGION_SIDE, UNROUTED_REGION_SIDE, FrameStats, TimeBudget
from ..models.interpolation import interpolation_ms, upscale
from .edge import tile_edge_scores

INTERP_UNIT = "interpolation"
MODES = ("budget", "k", "adm")
CHOICE_DTYPE = torch.int8  # per-pixel route maps: -1 interpolated, 0 light .. heavy
STATIC_DIFF = 1.0 / 255  # mean absolute change of a frame below which it counts as static
# Pixel-wise refinement by default only from this scale up. The published step (PCSR is trained and
# shown at x4) blurs each light pixel next to a heavy one with a 3x3 box of HR pixels: at x4 that
# box is under one LR pixel and changed the val PSNR by +0.000..+0.004 dB across budgets 0.7-0.95;
# at x2 it spans 1.5 LR pixels and cost 0.4-1.6 dB (light-head x2 candidate at budget 0.7: 37.70
# dB refined, 39.28 not).
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
    """The ``k``-th largest value of a 1-D array, exactly. A full ``np.partition`` is most of the
    PCSR planning time at x4 (16 ms for a 1.2M-pixel window), so the value is first bracketed from
    a strided 1/16 sample's quantiles; only the values inside the bracket are partitioned (about 3
    ms in all). When the bracket misses (a skewed sample), the full partition answers."""
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
    no particular order. On the CPU numpy is ~10x faster than ``torch.topk`` for k in the millions
    (24 vs 240 ms for 1.4M of 4M: a PCSR frame's heavy quota at x4); selecting only the k-th value
    (``kth_largest``) and then the indices above it is faster again than ``argpartition``, which
    moves an index array along."""
    if values.device.type == "cpu":
        v = values.numpy()
        kth = kth_largest(v, k)
        above = np.flatnonzero(v > kth)
        return torch.from_numpy(np.concatenate([above, np.flatnonzero(v == kth)[: k - above.size]]))
    return torch.topk(values, k).indices


def refine(out: torch.Tensor, choice: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Light pixels (0) next to a heavy pixel (1) take the 3x3 mean of ``out``; -1 = not routed.
    Dilation by shifted ORs on bools and the mean by separable shifted sums: same values as a float
    max-pool plus average-pool over the HR frame, 6x faster on the CPU (30 vs 180 ms at 2560x1600)."""
    heavy = choice == 1
    near = heavy.clone()
    near[1:] |= heavy[:-1]
    near[:-1] |= heavy[1:]
    wide = near.clone()
    wide[:, 1:] |= near[:, :-1]
    wide[:, :-1] |= near[:, 1:]
    mask = (choice == 0) & wide
    if not mask.any():
        return out, 0
    p = F.pad(out, (1, 1, 1, 1), mode="replicate")[0, 0]
    rows = p[:-2] + p[1:-1] + p[2:]
    box = rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]
    return torch.where(mask, box / 9, out[0, 0])[None, None], int(mask.sum())


class PCSRRouter:
    def __init__(self, upscaler, mode: str = "budget", k: float = 0.0, refinement: bool | None = None):
        if mode not in MODES:
            raise ValueError(f"unknown PCSR mode {mode!r}; choose from {MODES}")
        self.upscaler = upscaler
        self.model = upscaler.module
        d = upscaler.descriptor
        self.descriptor = d
        self.mode, self.k = mode, k
        self.refinement = d.scale >= REFINE_MIN_SCALE if refinement is None else refinement
        self._previous = None
        self.names = tuple(r.name for r in d.routes)  # ("bicubic", "light", "heavy")
        self.macs = np.array([r.macs_per_pixel for r in d.routes])
        self.backbone_macs = d.info.get("backbone_macs", 0.0)
        self.head_macs = [max(c - self.macs[0] - self.backbone_macs, 1.0) for c in self.macs[1:]]  # per HR pixel
        # the part of each head that runs at LR on every pixel of a window it serves at all (the MLPs'
        # first-layer projection, a sub-pixel head's whole convolution), for the executed MACs
        self.lr_macs = [up.lr_macs(d.scale) for up in self.model.upsamplers]

    # the mode may be set after construction (the CLI sets ``--pcsr-mode`` on a built router), so
    # what depends on it is derived, not stored

    @property
    def whole_lr(self) -> bool:
        """Whether this mode routes whole LR pixels (the budget) or HR pixels (the published rules)."""
        return self.mode == "budget"

    @property
    def classifier_macs(self) -> float:
        """MACs per HR pixel of what this mode classifies with: the LR score, or every HR pixel's
        probabilities."""
        return self.descriptor.info.get("score_macs" if self.whole_lr else "router_overhead_macs", 0.0)

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

    def _tile_plan(self, x, grid, budget) -> tuple[np.ndarray, float | None]:
        """Which tiles run the network, and how many heavy pixels the rest of the budget pays for
        (None: every routed pixel heavy, no classifier needed)."""
        s2 = self.descriptor.scale ** 2
        px = grid.core_pixels * s2
        n = px.sum()
        bic, light, heavy = self.macs
        if isinstance(budget, TimeBudget):
            u = budget.unit_ms
            per_tile = u["backbone"] + u["classifier"]
            avail = budget.ms - u.get(INTERP_UNIT, 0.0)
            light_px, heavy_px = u["light"] / 1000.0, u["heavy"] / 1000.0  # per pixel
            all_light = len(grid) * per_tile + n * light_px
            all_heavy = len(grid) * u["backbone"] + n * heavy_px
            if avail >= all_heavy:
                return np.ones(len(grid), bool), None
            if avail >= all_light:
                return np.ones(len(grid), bool), (avail - all_light) / max(heavy_px - light_px, 1e-12)
            unit = per_tile + px * light_px
            spend = avail
        else:
            f = min(max(float(budget), 0.0), 1.0)
            total = n * (bic + f * (heavy - bic))
            if f >= 1.0 - 1e-9:
                return np.ones(len(grid), bool), None
            all_light = n * (light + self.classifier_macs)
            if total >= all_light:
                return np.ones(len(grid), bool), (total - all_light) / (heavy - light)
            unit = px * (light - bic)  # no heavy pixels below this point: no classifier either
            spend = total - n * bic
        order = np.argsort(-tile_edge_scores(x, grid).flatten().cpu().numpy(), kind="stable")
        run = np.zeros(len(grid), bool)
        unit = np.broadcast_to(unit, (len(grid),))
        for i in order:
            if unit[i] <= spend:
                run[i] = True
                spend -= unit[i]
        return run, 0.0

    # -- running ------------------------------------------------------------------------------

    @torch.inference_mode()
    def run(self, engine, x: torch.Tensor, grid, budget, base: torch.Tensor | None = None):
        t0 = time.perf_counter()
        m, s = self.model, self.descriptor.scale
        if self.mode == "budget":
            run, heavy_quota = self._steady(x, grid, *self._tile_plan(x, grid, budget))
        else:
            run, heavy_quota = np.ones(len(grid), bool), 0.0
        ids = np.nonzero(run)[0]
        ms = {"route": (time.perf_counter() - t0) * 1000}
        work = {}
        if run.all():  # the network writes every core (its upsamplers add their own bicubic)
            out = grid.new_output(x, s)
        else:
            t1 = time.perf_counter()
            out = base.clone() if base is not None else upscale(x, s)  # what unrouted tiles keep
            ms[INTERP_UNIT], work[INTERP_UNIT] = (time.perf_counter() - t1) * 1000, 1
            if base is None:
                engine.executed_macs += self.macs[0] * out.numel()
        unit = 1 if self.whole_lr else s  # the choice map's pixels: LR or HR
        choice_map = torch.full((x.shape[-2] * unit, x.shape[-1] * unit), -1, dtype=CHOICE_DTYPE, device=x.device)
        if len(ids):
            # pass 1: backbone (and classifier) per batch of windows; neighbouring routed tiles are
            # merged into one window (as the engine does) so they pay for their context once. With
            # every tile routed, the windows are as large as an unrouted pass takes: the per-pixel
            # choice does not depend on them, and larger windows compute less context
            t1 = time.perf_counter()
            batches = engine.region_batches(grid, ids, UNROUTED_REGION_SIDE if run.all() else REGION_SIDE)
            windows = [grid.extract_regions(x, b) for b in batches]
            with engine.network_threads():
                feats = [m.backbone(w) for w in windows]
            ms["backbone"], work["backbone"] = (time.perf_counter() - t1) * 1000, len(ids)
            window_hr = engine.batched_pixels(batches) * s * s
            engine.executed_macs += window_hr * (self.backbone_macs + self.macs[0])  # and each window's bicubic base
            need_classifier = heavy_quota is not None and (self.mode != "budget" or heavy_quota > 0)
            t1 = time.perf_counter()
            with engine.network_threads():
                probs = [self._classify(f) for f in feats] if need_classifier else None
            if need_classifier:
                ms["classifier"], work["classifier"] = (time.perf_counter() - t1) * 1000, len(ids)
                engine.executed_macs += window_hr * self.classifier_macs
            choices = self._choose(batches, probs, heavy_quota, unit, x.device)
            # pass 2: every upsampler on its gathered pixels
            t1 = time.perf_counter()
            render = m.render_rows if self.whole_lr else m.render
            for b, w, f, c in zip(batches, windows, feats, choices):
                with engine.network_threads():
                    y = render(w, f, c)
                grid.place_regions(out, b, y, s)
                grid.place_regions(choice_map[None, None], b, c[:, None], unit)
                engine.executed_macs += self._heads_executed(c, unit)
            head_ms = (time.perf_counter() - t1) * 1000
            counts = [int((choice_map == j).sum()) * (s // unit) ** 2 for j in range(len(m.upsamplers))]  # HR pixels
            load = [c * h for c, h in zip(counts, self.head_macs)]
            for j, name in enumerate(self.names[1:]):  # split the heads' time by their MACs, for calibration
                ms[name], work[name] = head_ms * load[j] / max(sum(load), 1e-9), counts[j] / 1000.0
        refined = 0
        if self.refinement and (choice_map == 1).any():
            out, refined = refine(out, choice_map.repeat_interleave(s // unit, 0).repeat_interleave(s // unit, 1))
        return out, self._stats(choice_map, ms, work, refined, run)

    def _heads_executed(self, choice: torch.Tensor, unit: int) -> float:
        """MACs the heads really ran on one batch of windows with this choice map: each head's
        per-pixel part on its pixels, and its LR part (projection, or a sub-pixel head's whole
        convolution) on every pixel of the windows, or only on its own rows where it gathers them
        (``PixelMLP.gathers_projection``; whole-LR-pixel routing only)."""
        per_px = (self.descriptor.scale // unit) ** 2  # HR pixels per choice-map pixel
        total = 0.0
        for j, (up, head, lo) in enumerate(zip(self.model.upsamplers, self.head_macs, self.lr_macs)):
            k = int((choice == j).sum())
            if k:
                lr_rows = k if unit == 1 and up.gathers_projection(k, choice.numel()) else choice.numel()
                total += lr_rows * per_px * lo + k * per_px * (head - lo)
        return total

    def _classify(self, feats: torch.Tensor) -> torch.Tensor:
        """What the mode decides on: the heavy score per LR pixel (N, h, w) under a budget; every
        upsampler's probability (N, M, H, W) for the k rule with more than two upsamplers; else the
        heavy probability per HR pixel (N, H, W)."""
        m = self.model
        if self.whole_lr:
            return m.heavy_score(feats)
        if self.mode == "k" and len(m.upsamplers) > 2:
            return m.probabilities(feats)
        return m.heavy_probability(feats)

    def _choose(self, batches, probs, heavy_quota, unit, device):
        """Per batch of regions, a (n, h*unit, w*unit) int8 choice map over each window: -1 outside the
        core (context, not computed). ``unit``: the map's pixels per LR pixel side (1 when whole LR pixels
        are routed). Elementwise ``where`` over whole windows, not boolean-mask gathers of the core
        pixels: those are single-threaded on the CPU and took 10% of a routed x4 frame."""
        cores = []
        for b in batches:
            h, w = b[0].window_shape
            mask = torch.zeros(len(b), h * unit, w * unit, dtype=torch.bool, device=device)
            for k, g in enumerate(b):
                cy, cx = (g.y0 - g.wy0) * unit, (g.x0 - g.wx0) * unit
                mask[k, cy : cy + g.h * unit, cx : cx + g.w * unit] = True
            cores.append(mask)
        heavy = len(self.model.upsamplers) - 1
        unrouted = torch.tensor(-1, dtype=CHOICE_DTYPE, device=device)
        if probs is None:  # everything heavy (full budget) or everything light (no quota)
            fill = torch.tensor(heavy if heavy_quota is None else 0, dtype=CHOICE_DTYPE, device=device)
            return [torch.where(c, fill, unrouted) for c in cores]
        if self.mode == "k":
            costs = self.macs[1:]
            probs = [p if p.dim() == 4 else torch.stack([1 - p, p], dim=1) for p in probs]
            return [torch.where(c, k_rule_choice(p.transpose(0, 1), costs, self.k).to(CHOICE_DTYPE), unrouted)
                    for p, c in zip(probs, cores)]
        if self.mode == "adm":  # k-means over all routed core pixels of the frame at once
            ph = torch.cat([p[c] for p, c in zip(probs, cores)])
            flat, out, at = adm_choice(ph).to(CHOICE_DTYPE), [], 0
            for c in cores:
                ch = torch.full(c.shape, -1, dtype=CHOICE_DTYPE, device=device)
                n = int(c.sum())
                ch[c] = flat[at : at + n]
                at += n
                out.append(ch)
            return out
        # budget: exactly as many core LR pixels of the frame as the heavy quota (in HR pixels) pays
        # for, those with the highest scores; context pixels score -inf, so they are never picked
        ph = torch.cat([torch.where(c, p, -torch.inf).flatten() for p, c in zip(probs, cores)])
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

    def _stats(self, choice, ms, work, refined, run) -> FrameStats:
        """``choice``: the frame's choice map, LR or HR (shares are the same either way)."""
        n = choice.numel()
        counts = {"bicubic": int((choice == -1).sum())}
        for j, name in enumerate(self.names[1:]):
            counts[name] = int((choice == j).sum())
        shares = {k: v / n for k, v in counts.items()}
        macs = sum(self.macs[i] * shares[name] for i, name in enumerate(self.names))
        if "classifier" in work:
            macs += self.classifier_macs * (1 - shares["bicubic"])
        fraction = (macs - self.macs[0]) / (self.macs[-1] - self.macs[0])
        ms = dict(ms)
        return FrameStats(budget=float(fraction), route_shares=shares, macs_per_pixel=float(macs), ms=ms,
                          counts={"network_tiles": int(run.sum()), "interpolated_tiles": int((~run).sum()),
                                  "refined_px": refined}, work=work)

    @torch.inference_mode()
    def calibrate(self, engine, x: torch.Tensor, samples: int = 8) -> dict[str, float]:
        """Measured milliseconds per unit on ``x``'s size: backbone and classifier per tile, each
        upsampler per thousand pixels, one interpolation pass."""
        m, s = self.model, self.descriptor.scale
        grid = engine.grid(*x.shape[-2:])
        ids = np.unique(np.linspace(0, len(grid) - 1, min(samples, len(grid))).round().astype(int))
        windows = grid.extract(x, ids)
        self._classify(m.backbone(windows[:1]))  # warm-up
        t0 = time.perf_counter()
        feats = m.backbone(windows)
        t1 = time.perf_counter()
        self._classify(feats)
        t2 = time.perf_counter()
        units = {"backbone": (t1 - t0) * 1000 / len(ids), "classifier": (t2 - t1) * 1000 / len(ids)}
        px = windows.shape[0] * windows.shape[-2] * windows.shape[-1] * s * s
        unit, render = (1, m.render_rows) if self.whole_lr else (s, m.render)
        for j, name in enumerate(self.names[1:]):
            choice = torch.full((windows.shape[0], windows.shape[-2] * unit, windows.shape[-1] * unit), j, device=x.device)
            t0 = time.perf_counter()
            render(windows, feats, choice)
            units[name] = (time.perf_counter() - t0) * 1000 / (px / 1000.0)
        units[INTERP_UNIT] = interpolation_ms(x, s)
        return units

    def unit_macs(self, grid) -> dict[str, float]:
        """MACs of one unit of each kind of work, for the controller's first guesses."""
        s2 = self.descriptor.scale ** 2
        win = grid.window_pixels() * s2
        units = {"backbone": self.backbone_macs * win, "classifier": self.classifier_macs * win,
                 INTERP_UNIT: self.macs[0] * grid.height * grid.width * s2}
        for name, head in zip(self.names[1:], self.head_macs):
            units[name] = 1000 * head  # per 1000 pixels
        return units
