"""HCD refinement (Hierarchical Collaborative Downscaling): a better low-resolution frame for a
fixed upscaler, found per frame by projected gradient steps.

Stage 1 works on the high-resolution frame: a perturbation ``d_hr`` inside an L2 ball such that
upscale(codec(downscale(x + d_hr))) comes closest to x. Stage 2 starts from the low-resolution
frame that gives, y0, and moves it by ``d_lr`` (in its own ball) such that upscale(codec(y0 + d_lr))
comes closest to x. Each step moves along the L2-normalised gradient and projects back into the
ball; the codec stand-in (``codec_proxy``) rounds straight-through, so the steps see what survives
encoding. Settings follow the published code (15 + 15 steps of 20/255 in a 0.3 ball), applied per
``REFERENCE_PIXELS`` of frame: the ball and step scale with the square root of a frame's pixel
count, so the bound per pixel is the same at any resolution. The reference area was chosen on two
training images (640x360, arm-plain x2, the codec stand-in at QP 26): per 2 MP frame (the published
whole images) HCD gained +0.21 / +0.03 dB over the fast downscaler, per 20,000 pixels +0.58 / +0.29,
per 2,200 pixels it lost 2-3 dB (steps too long to converge in 15).

Through a real codec the published objective (squared error alone) adds fine perturbations that
cost bits: on 8-frame clips of ``vidsr bench delivery`` (x264, arm-plain x2; the same clips the
benchmark reports, so this setting was chosen on them) it was 4-13% worse in BD-rate than the fast
downscaler it started from. ``rate_weight`` adds the codec stand-in's rate proxy to the objective
(both relative to the starting frame's): at 1 the loss fell to 0-3% there; on the whole benchmark
(x2 and x4, x264 and x265) neither objective beats the fast downscaler. 0 is the published one.

Where it starts: the published code refines the output of the downscaler it was trained with;
``vidsr downscale --mode hcd`` refines the bicubic downscale, because after a real codec the
learned ``fast`` downscaler is no better than bicubic and HCD keeps more of a better start
(``benchmarks/studies/hcd_start.py`` measures it). On 12-frame clips rendered from the training
images (the benchmark's four kinds of clip, x2 arm-plain-delivery, x264 CRF 18-34 on its own
threads) the refinement
from bicubic saved 3.0% BD-rate against the bicubic downscale itself and the one from ``fast``
cost 1.9%; on the validation clips the benchmark reports, -2.4% and +0.5%. At x4 the training
clips gave -2.1% and +0.1%, but on the validation clips the start from ``fast`` saved 1.5 points
more with x264 (both refined at QP 26 and encoded at every CRF). On the training clips the rate weight (0.5, 1, 2) and a ball twice
as wide were tried beside it at x2: 1 and the published ball were best (-2.0%, -0.9%, +2.9% for
the others). A real libx264 decode in the forward pass instead of the stand-in did worse on the
validation clips (-9.5% against B, where the stand-in gave -12.1% from the same start).
Two ways of optimising harder did worse on the training clips (x2): steps that shrink to a tenth
on a half cosine (``last_step``), which come closer to the stand-in's optimum, cost 2.7% BD-rate
against the bicubic downscale where constant steps cost 0.7% (refined once at QP 26; 30 steps a
stage, 2.5%): closer to the stand-in's optimum is not closer to the real codec's. Refined per CRF,
a ball and step that grow with the quantiser step beyond QP 26's (``qball1`` in the study) saved
10.3% against B on the ``sample`` clip where the published ball saved 11.5%: at CRF 30-34 what
the wider ball adds costs bits and does not survive the codec.

Video: a frame must not flicker against its neighbours where the source does not. Both stages
start from the previous frame's perturbations (not from a random point), and stage 2 adds a
temporal term: where the source did not change (``STATIC_DIFF``), the refinement's change from the
previous frame costs ten times its squared error (``temporal_weight``), so a static region keeps
its refinement (the tests measure how much less it moves than frames refined alone).
Two temporal objectives that follow the picture were tried and not kept (training clips, x2,
refined once at QP 26, BD-rate against B, plain term first): the temporal term compared along
the global motion (phase correlation of the HR frames) -11.1/-10.8% on ``sample``, -5.7/-5.8% on
``val-pan``, -9.2/-4.3% on ``static``; the inter-frame rate proxy (``codec_proxy.inter_rate``,
weight 1) added to the objective -10.3%, -5.5% and -0.2%. On the pans, where following the motion
should pay, it moved BD-rate by a few tenths of a point either way.

One round of training the pair in alternation (``vidsr train --hcd-against``: arm-plain-delivery x2
fine-tuned 1,000 steps on HCD's libx264-coded LR of 18 training images, judged on clips rendered
from the 4 held out; BD-rate against B). Refined once at QP 26: LR refined against the shipped
upscaler and upscaled by the fine-tuned one -9.0% against -8.9% with the shipped one; refined
against the fine-tuned one -7.9% (1-5 points better on three clips, 13 worse on ``static``).
Refined per CRF, as ``--crf`` does: the shipped pair -8.6% (its bicubic mode -10.1%), the
fine-tuned pair -10.2% (its bicubic mode -9.0%), +0.4 to +7.0 points on three clips (the most on
``animation``) and -1.2 on ``static``. On these clips HCD with the shipped upscaler is behind the
bicubic downscale, where on the benchmark's validation clips it is 3 points ahead: the gain of
the alternation is within what another set of clips changes, so it is not shipped yet.

The rate proxy misjudges HCD's LR: on the first 6 frames of the same held-out clips it predicts
1-9% fewer bits than the bicubic downscale, where libx264 at a fixed QP 26 spends 5-12% more on
them as intra frames. A 4x4 block DCT with x264's intra dead zone (1/3 of a step) follows libx264
much better (correlation of the per-frame ratios 0.94 at QP 26, against 0.59 for the 8x8 proxy;
0.81-0.98 over QP 22-30) and puts HCD's LR at +6% as libx264 does. Refining against it did worse
all the same (refined once at QP 26, against the bicubic downscale: +3.1%, where the 8x8 proxy
gave +1.4%), so the rate term's shape is not what holds HCD back on these clips. Nor is the
transform's size: the whole stand-in (quantisation and rate) on 4x4 blocks gave +3.2%, and with
the dead-zone rate +2.9%.

Cheaper refinements (``benchmarks/studies/hcd_start.py``, x2, libx264, 12-frame clips; BD-rate
against B, mean over the four clips; the validation clips are the benchmark's, the training ones
rendered from ``../shared/data/train``). Refined at each CRF's QP, the LR stage alone with 5 steps
on every frame after the first (``hr_steps=0, warm_steps=5``) matched the shipped (published)
schedule at a fifth of its time: -13.4% against -12.5% on the validation clips, -7.3% against -7.4%
on the training ones, 0.5 s against 2.3-2.7 s per 640x360 frame on 2 cores. Per clip the two differ
by up to 2.5 points either way, and refined once at QP 26 other cheap schedules swing a clip by
5-20 points (``warm3``, ``hr0``), so only the mean over both sets is evidence. The whole benchmark
(``vidsr bench delivery --frames 12``) with it as the default did not bear it out beyond x2 with
x264: D-hcd against B -13.2% (published -12.6%) there, but -7.2% (-9.5%) at x2 with x265, -11.4%
(-12.0%) and -9.0% (-10.8%) at x4, for 0.42 s against about 2.8 s per frame at x2 (0.15 against 0.9
at x4). A point of BD-rate on average for six times the speed; ``--mode hcd`` is for quality, so
the published schedule stays. Holding static LR pixels exactly (``hold_static``, so the encoder can
skip them) did not pay: -12.4% against -13.7% on the validation clips refined at QP 26.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .codec_proxy import codec, quantise_levels, rate

REFERENCE_PIXELS = 20_000  # HR pixels the published ball and step apply to (see above)
STATIC_DIFF = 2 / 255  # a source pixel is static when it moved less than this since the last frame


@dataclass(frozen=True)
class HCDSettings:
    hr_steps: int = 15
    lr_steps: int = 15
    step: float = 20 / 255  # L2 length of one step, per REFERENCE_PIXELS
    epsilon: float = 0.3  # L2 radius of the ball, per REFERENCE_PIXELS
    rate_weight: float = 1.0  # the rate proxy's weight against the error, both relative to the start
    temporal_weight: float = 10.0  # a static pixel's change costs ten times its squared error
    last_step: float = 1.0  # the last step's length as a fraction of the first, cosine between (1: constant)
    # two knobs for the studies above; the published schedule leaves them off
    hold_static: bool = False  # an LR pixel whose source stood still keeps the last frame's value (a slow fade would freeze)
    warm_steps: int | None = None  # steps per stage for a frame that starts from the last one's (None: as the first)


def _lengths(steps: int, first: float, last_fraction: float) -> list[float]:
    """Step lengths from ``first`` down to ``first * last_fraction`` on a half cosine."""
    if steps < 2 or last_fraction == 1.0:
        return [first] * steps
    return [first * (last_fraction + (1 - last_fraction) * (1 + math.cos(math.pi * i / (steps - 1))) / 2)
            for i in range(steps)]


def _project(d: torch.Tensor, radius: float) -> torch.Tensor:
    norm = d.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return d * (radius / norm).clamp(max=1.0)


def _step(d: torch.Tensor, grad: torch.Tensor, length: float, radius: float) -> torch.Tensor:
    g = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return _project(d - length * g, radius)


class HCDRefiner:
    """Refines frames of one stream in order; keeps the previous frame's perturbations."""

    def __init__(self, downscaler, upscaler, settings: HCDSettings = HCDSettings(), qstep: float = 0.0,
                 peak: int = 255):
        self.down, self.up = downscaler, upscaler  # torch callables: HR -> LR, LR -> HR (full network)
        self.settings, self.qstep, self.peak = settings, qstep, peak
        self.prev: dict | None = None

    def _sizes(self, hr: torch.Tensor, lr_shape) -> tuple[float, float, float, float]:
        s = self.settings
        k_hr = math.sqrt(hr[0, 0].numel() / REFERENCE_PIXELS)
        k_lr = math.sqrt(lr_shape[-1] * lr_shape[-2] / REFERENCE_PIXELS)
        return s.step * k_hr, s.epsilon * k_hr, s.step * k_lr, s.epsilon * k_lr

    def _decoded(self, lr: torch.Tensor) -> torch.Tensor:
        """What the client decodes of ``lr``, differentiably: the codec stand-in."""
        return codec(lr, self.qstep, self.peak)

    def _error(self, lr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """The objective: squared error of the upscaled frame after the codec stand-in; with a rate
        weight, relative to the fast downscale's error, plus the weighted rate relative to its rate."""
        out = self.up(self._decoded(lr))
        h, w = hr.shape[-2:]
        err = (out[..., :h, :w] - hr).square().mean()
        if not (self.settings.rate_weight and self.qstep):
            return err
        return err / self._start[0] + self.settings.rate_weight * rate(lr, self.qstep)[0] / self._start[1]

    def refine(self, hr: torch.Tensor) -> torch.Tensor:
        """(1, 1, H, W) luma in [0, 1] -> its refined LR frame, rounded to integer levels."""
        with torch.no_grad():
            fast = self.down(hr)
            if self.settings.rate_weight and self.qstep:
                out = self.up(codec(fast, self.qstep, self.peak))[..., : hr.shape[-2], : hr.shape[-1]]
                self._start = (float((out - hr).square().mean()) + 1e-12, float(rate(fast, self.qstep)[0]) + 1e-6)
        hr_step, hr_radius, lr_step, lr_radius = self._sizes(hr, fast.shape)
        prev = self.prev if self.prev is not None and self.prev["shape"] == hr.shape else None
        hr_steps, lr_steps = self.settings.hr_steps, self.settings.lr_steps
        if prev is not None and self.settings.warm_steps is not None:
            hr_steps, lr_steps = min(hr_steps, self.settings.warm_steps), min(lr_steps, self.settings.warm_steps)
        # stage 1: the HR frame, from the last frame's perturbation (zero for the first)
        d_hr = prev["d_hr"].clone() if prev is not None else torch.zeros_like(hr)
        for length in _lengths(hr_steps, hr_step, self.settings.last_step):
            d_hr.requires_grad_(True)
            loss = self._error(self.down((hr + d_hr).clamp(0, 1)), hr)
            (grad,) = torch.autograd.grad(loss, d_hr)
            d_hr = _step(d_hr.detach(), grad, length, hr_radius)
        with torch.no_grad():
            y0 = quantise_levels(self.down((hr + d_hr).clamp(0, 1)), self.peak)
        # stage 2: the LR frame, kept where the source stood still
        static = None
        if prev is not None:
            moved = F.max_pool2d((hr - prev["hr"]).abs(), self.down_scale(hr, fast), ceil_mode=True)
            static = (moved < STATIC_DIFF).to(hr.dtype)[..., : fast.shape[-2], : fast.shape[-1]]
        d_lr = _project(prev["y"] - y0, lr_radius) if prev is not None else torch.zeros_like(y0)
        for length in _lengths(lr_steps, lr_step, self.settings.last_step):
            d_lr.requires_grad_(True)
            y = y0 + d_lr
            loss = self._error(y, hr)
            if static is not None and self.settings.temporal_weight:
                loss = loss + self.settings.temporal_weight * (static * (y - prev["y"]).square()).mean()
            (grad,) = torch.autograd.grad(loss, d_lr)
            d_lr = _step(d_lr.detach(), grad, length, lr_radius)
        with torch.no_grad():
            y = torch.round((y0 + d_lr).clamp(0, 1) * self.peak) / self.peak
            if static is not None and self.settings.hold_static:
                held = 1 - F.max_pool2d(1 - static, 5, stride=1, padding=2)  # static with a 2-pixel margin
                y = torch.where(held > 0, prev["y"], y)
        self.prev = {"shape": hr.shape, "hr": hr, "d_hr": d_hr, "y": y}
        return y

    @staticmethod
    def down_scale(hr: torch.Tensor, lr: torch.Tensor) -> int:
        return -(-hr.shape[-1] // lr.shape[-1])
