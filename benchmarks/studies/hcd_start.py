"""Where should HCD's refinement start, and with which settings, once a real codec follows?

Runs ``vidsr bench delivery``'s clips (its four kinds, rendered from ``--data``: the training
images to choose on, the validation images to report on) through one scale and libx264 at the
benchmark's CRFs: the bicubic downscale, and HCD variants refined at QP 26 against the delivery
upscaler. Prints, per clip and as the mean, each variant's BD-rate against B (Lanczos down,
``arm-plain`` up) and against the bicubic downscale itself.

Variants are names joined by ``-``: ``hcd`` plus ``fast`` or ``bic`` (the start), and optionally
``rw<w>`` (rate weight), ``eps<r>`` (the ball's radius), ``last<f>`` (the last step's length as a
fraction of the first, cosine between), ``steps<n>`` (steps per stage), ``hr<n>`` / ``lr<n>`` (steps of one
stage), ``warm<n>`` (steps per stage for every frame after the first, which starts from the last
frame's perturbations), ``hold`` (an LR pixel whose source stood still keeps the last frame's value), ``qball<p>`` (with ``--per-crf``:
the ball and step grow by (qstep / QP 26's qstep) ** p at coarser QPs), ``x264`` (the forward pass through a real
libx264 decode, the candidate coded as a P frame after the last output; the gradient passes
straight through it). ``fast`` is the shipped learned downscaler as it is (no refinement), and
``--downscalers`` adds learned downscalers from training run folders (``vidsr train --recipe``'s),
each as it is: how a candidate fast downscaler is chosen before it ships.

``--upscaler`` takes a candidate delivery upscaler (a training run's ``.safetensors``, its manifest
beside it) for every pipeline but B, and ``--refine-against`` the one HCD refines against (by
default the same): a delivery upscaler fine-tuned on HCD's LR is judged on LR refined against the
upscaler it was trained on and on LR refined against itself (the next round of the alternation).

``--per-crf`` refines at each CRF's own QP, as ``vidsr downscale --mode hcd --crf N`` does (five times
the refinements).

    python benchmarks/studies/hcd_start.py --data ../shared/data/train --scale 2 --variants hcd-fast hcd-bic
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from vidsr import policy
from vidsr.bench import delivery as bd
from vidsr.bench.rd import bd_rate
from vidsr.delivery.codec_proxy import qstep_of_qp, straight_through
from vidsr.delivery.downscale import FrameDownscaler
from vidsr.delivery.hcd import HCDRefiner, HCDSettings
from vidsr.models import registry
from vidsr.models.downscaler import bicubic_downscale
from vidsr.train.coded import encode_planes

UPSCALER, QP = "arm-plain-delivery", 26


def to8(t: torch.Tensor) -> np.ndarray:
    """(1, 1, h, w) in [0, 1] -> 8-bit plane."""
    return np.round(t[0, 0].detach().clamp(0, 1).numpy() * 255).astype(np.uint8)


class RealCodecRefiner(HCDRefiner):
    """HCD whose forward pass is a real libx264 decode of the candidate (a P frame after the last
    output) at the CRF of the refinement's QP; the gradient passes straight through it."""

    def _decoded(self, lr):
        planes = ([to8(self.prev["y"])] if self.prev is not None else []) + [to8(lr)]
        decoded = encode_planes(planes, "libx264", QP)[-1].astype(np.float32) / 255
        return straight_through(lr, torch.from_numpy(decoded)[None, None])


def refiner(variant: str, scale: int, qp: float = QP, upscaler: str = UPSCALER) -> HCDRefiner:
    kw = {}
    for part in variant.split("-"):
        if part.startswith("rw"):
            kw["rate_weight"] = float(part[2:])
        elif part.startswith("eps"):
            kw["epsilon"] = float(part[3:])
        elif part.startswith("last"):
            kw["last_step"] = float(part[4:])
        elif part.startswith("steps"):
            kw["hr_steps"] = kw["lr_steps"] = int(part[5:])
        elif part.startswith("hr") and part[2:].isdigit():
            kw["hr_steps"] = int(part[2:])
        elif part.startswith("lr") and part[2:].isdigit():
            kw["lr_steps"] = int(part[2:])
        elif part == "hold":
            kw["hold_static"] = True
        elif part.startswith("warm"):
            kw["warm_steps"] = int(part[4:])
        elif part.startswith("qball"):
            k = max(1.0, qstep_of_qp(qp) / qstep_of_qp(QP)) ** float(part[5:])
            kw["epsilon"], kw["step"] = kw.get("epsilon", HCDSettings.epsilon) * k, HCDSettings.step * k
    parts = variant.split("-")
    down = (lambda x: bicubic_downscale(x, scale)) if "bic" in parts else FrameDownscaler(upscaler, scale, "fast").net
    up = registry.load(upscaler, scale)
    for p in up.module.parameters():
        p.requires_grad_(False)
    cls = RealCodecRefiner if "x264" in parts else HCDRefiner
    return cls(down, up.differentiable, HCDSettings(**kw), qstep_of_qp(qp))


def run_downscaler(folder: Path, scale: int):
    """A learned downscaler from a training run folder (its manifest.json and weights), unshipped."""
    import json

    from safetensors.torch import load_file

    entry = json.loads((folder / "manifest.json").read_text())["downscalers"][0]
    if entry["scale"] != scale or entry["upscaler"] != UPSCALER:
        raise SystemExit(f"{folder}: a downscaler for {entry['upscaler']} x{entry['scale']}, not {UPSCALER} x{scale}")
    net = registry.build_downscaler(entry["architecture"], scale, entry.get("config"))
    net.load_state_dict(load_file(folder / entry["file"]), strict=True)
    return net.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="image folder the clips are rendered from")
    ap.add_argument("--scale", type=int, choices=(2, 4), default=2)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--clips", nargs="+", default=list(bd.CLIPS))
    ap.add_argument("--variants", nargs="+", default=["hcd-fast", "hcd-bic"])
    ap.add_argument("--downscalers", nargs="*", type=Path, default=[], help="training run folders of candidate fast downscalers")
    ap.add_argument("--per-crf", action="store_true", help="refine at each CRF's QP instead of once at QP 26")
    ap.add_argument("--upscaler", default=UPSCALER,
                    help="the client's upscaler for every pipeline but B: a shipped name or a run's .safetensors "
                         "(a candidate delivery upscaler)")
    ap.add_argument("--refine-against", help="the upscaler HCD refines against (default: --upscaler)")
    args = ap.parse_args()
    scale = args.scale
    against = args.refine_against or args.upscaler
    engine, baseline = policy.load_engine(args.upscaler, scale), policy.load_engine(bd.BASELINE, scale)
    crfs = bd.CODECS["libx264"][1]
    per_clip = {}
    for clip in args.clips:
        src = bd.source_frames(clip, args.data, args.frames)
        src_y = [bd.luma(f) for f in src]
        lanczos = bd.lanczos(src, bd.SOURCE[0] // scale, bd.SOURCE[1] // scale)
        ys = [torch.from_numpy(y).float()[None, None] / 255 for y in src_y]
        lrs = {"bicubic": [to8(bicubic_downscale(y, scale)) for y in ys]}  # name -> LR planes, or per CRF
        seconds = {}
        for v in args.variants:
            t0 = time.perf_counter()
            if v == "fast":
                net = FrameDownscaler(against, scale, "fast").net
                with torch.no_grad():
                    lrs[v] = [to8(net(y)) for y in ys]
            elif args.per_crf:
                lrs[v] = {crf: [to8(r.refine(y)) for y in ys] for crf in crfs for r in [refiner(v, scale, crf, against)]}
            else:
                r = refiner(v, scale, upscaler=against)
                lrs[v] = [to8(r.refine(y)) for y in ys]
            seconds[v] = (time.perf_counter() - t0) / len(ys) / (len(crfs) if isinstance(lrs[v], dict) else 1)
        for folder in args.downscalers:
            net = run_downscaler(folder, scale)
            with torch.no_grad():
                lrs[folder.name] = [to8(net(y)) for y in ys]
        curves = {k: [] for k in ["B", *lrs]}
        for crf in crfs:
            runs = [("B", baseline, lanczos)] + [(k, engine, bd.with_luma(lanczos, v[crf] if isinstance(v, dict) else v))
                                                 for k, v in lrs.items()]
            for k, eng, frames in runs:
                kbps, decoded = bd.encode(frames, "libx264", crf)
                curves[k].append((kbps, bd.score(bd.upscale_all(eng, decoded, 1.0)[0], src_y)[0]))
        per_clip[clip] = {k: (bd_rate(curves["B"], c), bd_rate(curves["bicubic"], c)) for k, c in curves.items() if k != "B"}
        print(f"{clip}: " + ", ".join(f"{k} {a:+.2f}% / {b:+.2f}%" for k, (a, b) in per_clip[clip].items()
                                      if a is not None and b is not None)
              + "  (s per frame: " + ", ".join(f"{k} {s:.2f}" for k, s in seconds.items()) + ")", flush=True)
    refined = "at each CRF's QP" if args.per_crf else f"at QP {QP}"
    print(f"\nx{scale} libx264, {args.frames} frames, HCD refined {refined} against {against}, upscaled by {args.upscaler}, "
          f"clips from {args.data}: BD-rate against B / against bicubic, mean over clips")
    for k in per_clip[args.clips[0]]:
        vs_b = [per_clip[c][k][0] for c in args.clips if per_clip[c][k][0] is not None]
        vs_bic = [per_clip[c][k][1] for c in args.clips if per_clip[c][k][1] is not None]
        print(f"| {k} | {np.mean(vs_b):+.2f}% | {np.mean(vs_bic):+.2f}% |")


if __name__ == "__main__":
    main()
