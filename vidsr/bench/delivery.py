"""``vidsr bench delivery``: downscale, encode, upscale, against shipping full resolution.

Sources: clips not trained on (but ``sample``, whose photograph is a training image), rendered as
in ``vidsr bench video`` at 720p, of which the central 640x360 window is the source (the images'
own detail per pixel, as a camera's frames have theirs), yuv420p. For each scale, codec and
CRF, side by side on the same frames:
- ``A``: the source encoded at full resolution;
- ``B``: Lanczos down (swscale, as ffmpeg users do) -> encode -> vidsr up with the general model
  (``BASELINE``, the full network): what a user does today;
- ``B-delivery``: the same with the delivery upscaler (trained on decoded video): how much of D's
  gain is the upscaler's alone;
- ``C``: Lanczos down -> encode -> Lanczos up (what a plain player shows);
- ``D-bicubic``: the antialiased bicubic downscale the upscalers were trained on, -> the delivery
  upscaler (how much of D's gain is only the matching kernel);
- ``D-fast`` / ``D-hcd``: ``vidsr downscale --mode fast|hcd`` -> encode -> the delivery upscaler
  (what ``vidsr`` picks from the file's tag);
- ``B-again``: B's LR encoded a second time, the same way: the encoders do not always give the
  same bitstream for the same frames (libx264 here: the same 12 frames came out in two sizes 2%
  apart), so its BD-rate against B is the noise every other figure sits on;
- ``B@0.5`` / ``D-bicubic@0.5`` / ``D-fast@0.5`` / ``D-hcd@0.5``: the same with the client running
  ``--budget 0.5`` (first codec only).
Bitrate is the encoded video bitstream's size; PSNR-Y (and SSIM) at the source resolution against
the source, mean over frames. Chroma goes through swscale in every pipeline. Each pipeline's LR is
also upscaled as it is, before any codec: the most that LR gives the upscaler, which the codec's
own loss then mostly covers.

``--mode hcd`` refines for the QP it will be encoded at, so D-hcd is refined once per codec and
CRF, at that CRF's QP (``vidsr downscale --mode hcd --crf N`` does the same); with ``hcd_qp`` set
it is refined once, at that QP, and encoded at every CRF (cheaper; understated away from that QP).
D-hcd's LR figures (against the Lanczos LR, flicker, before any codec) are those of the refinement
at ``HCD_QP``.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import av
import numpy as np
import torch

from ..budget import MacBudget
from ..io.formats import plane_view
from ..metrics import ssim
from ..train.coded import ENCODER_OPTIONS
from .rd import bd_rate, crossover

SOURCE = (640, 360)
FPS = 30
CLIPS = ("sample", "val-pan", "static", "animation")
# (encoder options, CRFs): the presets the delivery upscaler was trained through, on one thread.
# With their own threads the encoders code a short clip worse, and by a different amount at each
# resolution (x264 picks its thread count by frame size: A and the LR pipelines differ): on a
# 12-frame static clip, libx264 at 640x360 on its own threads needed 30% more bits for the same
# PSNR than on one (48 frames: 7%), since its lookahead cannot see across frame threads. One
# thread codes as on a long clip, alike at every resolution.
CODECS = {"libx264": ({**ENCODER_OPTIONS["libx264"], "threads": "1"}, (18, 22, 26, 30, 34)),
          "libx265": ({**ENCODER_OPTIONS["libx265"],
                       "x265-params": ENCODER_OPTIONS["libx265"]["x265-params"] + ":pools=none:frame-threads=1"},
                      (20, 24, 28, 32, 36))}
HCD_QP = 26  # the refinement D-hcd's LR figures come from (the middle of the x264 CRFs)
PIPELINES = ("A", "B", "B-again", "B-delivery", "C", "D-bicubic", "D-fast", "D-hcd", "B@0.5", "D-bicubic@0.5", "D-fast@0.5",
             "D-hcd@0.5")
BASELINE = "arm-plain"  # the upscaler of B: the general model the delivery upscaler was fine-tuned from
# (pipeline, the pipeline it is measured against) in the tables
COMPARISONS = (("D-bicubic", "B"), ("D-fast", "B"), ("D-hcd", "B"), ("B-delivery", "B"), ("D-bicubic", "B-delivery"),
               ("D-fast", "B-delivery"), ("D-hcd", "B-delivery"), ("C", "B"), ("B-again", "B"), ("B", "A"), ("D-bicubic@0.5", "B@0.5"),
               ("D-fast@0.5", "B@0.5"), ("D-hcd@0.5", "B@0.5"))


def source_frames(name: str, val_dir: Path, frames: int) -> list[av.VideoFrame]:
    """The clip's central 640x360 window, yuv420p studio range, luma as training computes it."""
    from .fps import studio_frame
    from .video import HR, render

    x0, y0 = (HR[0] - SOURCE[0]) // 2, (HR[1] - SOURCE[1]) // 2
    out = []
    for i, rgb in enumerate(render(name, val_dir, frames / FPS)):
        if i == frames:
            break
        out.append(studio_frame(rgb[y0 : y0 + SOURCE[1], x0 : x0 + SOURCE[0]].astype(np.float32) / 255, i))
    return out


def lanczos(frames, width: int, height: int) -> list[av.VideoFrame]:
    out = []
    for f in frames:
        g = f.reformat(width=width, height=height, format="yuv420p", interpolation="LANCZOS",
                       src_color_range="MPEG", dst_color_range="MPEG")
        g.pts, g.time_base = f.pts, f.time_base
        out.append(g)
    return out


def with_luma(frames, lumas) -> list[av.VideoFrame]:
    """Copies of ``frames`` (chroma) with their luma planes replaced."""
    out = []
    for f, y in zip(frames, lumas):
        g = av.VideoFrame(f.width, f.height, "yuv420p")  # reformat to the same format would not copy
        plane_view(g, 0)[:] = y
        for i in (1, 2):
            plane_view(g, i)[:] = plane_view(f, i)
        g.colorspace, g.color_range = f.colorspace, f.color_range
        g.pts, g.time_base = f.pts, f.time_base
        out.append(g)
    return out


def luma(f: av.VideoFrame) -> np.ndarray:
    return plane_view(f, 0).copy()


def encode(frames, codec: str, crf: int) -> tuple[float, list[av.VideoFrame]]:
    """(kbps of the video bitstream, the decoded frames)."""
    options, _ = CODECS[codec]
    buf = io.BytesIO()
    out = av.open(buf, "w", format="matroska")
    st = out.add_stream(codec, rate=FPS, options={**options, "crf": str(crf)})
    st.width, st.height, st.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
    st.codec_context.colorspace, st.codec_context.color_range = 6, 1
    size = 0
    for f in frames + [None]:
        for p in st.encode(f):
            size += p.size
            out.mux(p)
    out.close()
    buf.seek(0)
    with av.open(buf) as c:
        decoded = [f.reformat(format="yuv420p") for f in c.decode(video=0)]
    if len(decoded) != len(frames):
        raise RuntimeError(f"{codec} crf {crf}: {len(decoded)} frames decoded of {len(frames)}")
    return size * 8 / 1000 / (len(frames) / FPS), decoded


def psnr8(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))


def score(outs: list[np.ndarray], src: list[np.ndarray]) -> tuple[float, float]:
    """Mean PSNR-Y and SSIM over frames (SSIM on every 4th frame: it costs more than the rest)."""
    p = float(np.mean([psnr8(o, s) for o, s in zip(outs, src)]))
    q = float(np.mean([ssim(torch.from_numpy(o).float() / 255, torch.from_numpy(s).float() / 255)
                       for o, s in list(zip(outs, src))[::4]]))
    return p, q


def flicker(frames: list[np.ndarray]) -> float:
    """Mean absolute frame-to-frame difference, 8-bit levels."""
    return float(np.mean([np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() for a, b in zip(frames, frames[1:])]))


def upscale_all(engine, frames, budget: float) -> tuple[list[np.ndarray], float]:
    """Luma of each decoded LR frame through vidsr's engine; (planes, seconds per frame)."""
    if engine.router is not None:
        engine.router.reset()  # a new stream
    t0 = time.perf_counter()
    outs = [engine.upscale_plane(luma(f), 8, False, MacBudget(budget))[0] for f in frames]
    return outs, (time.perf_counter() - t0) / len(frames)


def hcd_key(qp: float) -> str:
    """The LR of D-hcd refined at ``qp``."""
    return f"hcd@qp{qp:g}"


def make_lrs(src, scale: int, upscaler: str, hcd_qps) -> tuple[dict, dict]:
    """The LR frames of each downscaling pipeline (``hcd_key(qp)`` for each of ``hcd_qps``), and
    the seconds per frame of fast and hcd (mean over the refinements)."""
    from ..delivery.downscale import FrameDownscaler

    w, h = SOURCE[0] // scale, SOURCE[1] // scale
    lz = lanczos(src, w, h)
    ys = [torch.from_numpy(luma(f)).float()[None, None] / 255 for f in src]

    def through(fd) -> tuple[list, float]:
        fd.reset()
        t0 = time.perf_counter()
        planes = [np.round(fd.luma(y)[0, 0].detach().numpy() * 255).astype(np.uint8) for y in ys]
        return with_luma(lz, planes), (time.perf_counter() - t0) / len(ys)

    bicubic, _ = through(FrameDownscaler(upscaler, scale, "bicubic"))  # vidsr downscale's default
    fast, fast_s = through(FrameDownscaler(upscaler, scale, "fast"))
    lrs = {"lanczos": lz, "bicubic": bicubic, "fast": fast}
    hcd_s = []
    for qp in sorted(set(hcd_qps) | {HCD_QP}):
        lrs[hcd_key(qp)], s = through(FrameDownscaler(upscaler, scale, "hcd", qp))
        hcd_s.append(s)
    lrs["hcd"] = lrs[hcd_key(HCD_QP)]
    return lrs, {"fast": fast_s, "hcd": float(np.mean(hcd_s))}


def run_clip(name: str, val_dir: Path, frames: int, scales, codecs, upscalers: dict, baseline: str, progress,
             hcd_qp: float | None = None) -> dict:
    """One clip: every pipeline at every scale, codec and CRF. ``upscalers``: per scale, the
    upscaler the downscalers are made for; ``baseline``: the upscaler B runs (what a user has);
    ``hcd_qp``: refine D-hcd once at this QP (default: at each CRF's own)."""
    from .. import policy
    from ..delivery.downscale import qp_for

    def lr_of(mode: str, codec: str, crf: int) -> str:
        """The LR a pipeline encodes at this CRF: D-hcd's is refined for it."""
        if mode != "hcd":
            return mode
        return hcd_key(hcd_qp if hcd_qp is not None else qp_for(codec, crf))

    src = source_frames(name, val_dir, frames)
    src_y = [luma(f) for f in src]
    res = {}
    for scale in scales:
        engine = policy.load_engine(upscalers[scale], scale)
        base_engine = engine if baseline == upscalers[scale] else policy.load_engine(baseline, scale)
        qps = [hcd_qp] if hcd_qp is not None else [qp_for(c, crf) for c in codecs for crf in CODECS[c][1]]
        lrs, seconds = make_lrs(src, scale, upscalers[scale], qps)
        lz_y = [luma(f) for f in lrs["lanczos"]]
        entry = {"seconds_per_frame": seconds, "lr": {}}
        for mode in ("bicubic", "fast", "hcd"):
            ys = [luma(f) for f in lrs[mode]]
            entry["lr"][mode] = {"psnr_vs_lanczos": float(np.mean([psnr8(a, b) for a, b in zip(ys, lz_y)])),
                                 "flicker": flicker(ys)}
        entry["lr"]["lanczos"] = {"flicker": flicker(lz_y)}
        # (pipeline, its LR, the engine that upscales it); B-delivery: the delivery upscaler on Lanczos
        # LR, which separates the downscaler's own gain from the upscaler's
        ups = [("B", "lanczos", base_engine), ("B-again", "lanczos", base_engine)]
        if base_engine is not engine:
            ups.append(("B-delivery", "lanczos", engine))
        ups += [("D-bicubic", "bicubic", engine), ("D-fast", "fast", engine), ("D-hcd", "hcd", engine)]
        # before any codec (the 8-bit LR as it is): the most each downscaler's LR gives its upscaler
        entry["no_codec"] = {pipe: score(upscale_all(eng, lrs[mode], 1.0)[0], src_y)[0] for pipe, mode, eng in ups
                             if pipe != "B-again"}
        entry["no_codec"]["C"] = score([luma(f) for f in lanczos(lrs["lanczos"], *SOURCE)], src_y)[0]
        curves = {p: [] for p in PIPELINES}
        for codec in codecs:
            _, crfs = CODECS[codec]
            for crf in crfs:
                progress(f"{name} x{scale} {codec} crf {crf}")
                kbps, dec = encode(src, codec, crf)
                curves["A"].append({"codec": codec, "crf": crf, "kbps": kbps, **dict(zip(("psnr", "ssim"), score([luma(f) for f in dec], src_y)))})
                decoded = {}
                for pipe, mode, eng in ups:
                    key = lr_of(mode, codec, crf)
                    again = key + " again" if pipe == "B-again" else key  # its own encode of the same LR
                    if again not in decoded:
                        decoded[again] = encode(lrs[key], codec, crf)
                    kbps, dec = decoded[again]
                    outs, up_s = upscale_all(eng, dec, 1.0)
                    if eng is engine:
                        entry.setdefault("upscale_seconds_per_frame", up_s)
                    curves[pipe].append({"codec": codec, "crf": crf, "kbps": kbps, **dict(zip(("psnr", "ssim"), score(outs, src_y)))})
                    if pipe == "B":
                        up = [luma(f) for f in lanczos(dec, *SOURCE)]
                        curves["C"].append({"codec": codec, "crf": crf, "kbps": kbps, **dict(zip(("psnr", "ssim"), score(up, src_y)))})
                    if pipe in ("B", "D-bicubic", "D-fast", "D-hcd") and codec == codecs[0]:
                        outs, _ = upscale_all(eng, dec, 0.5)
                        curves[pipe + "@0.5"].append({"codec": codec, "crf": crf, "kbps": kbps,
                                                      **dict(zip(("psnr", "ssim"), score(outs, src_y)))})
        entry["curves"] = curves
        res[str(scale)] = entry
    return res


def run(val_dir: Path | None, clips, frames: int = 16, scales=(2, 4), codecs=("libx264", "libx265"),
        upscaler: str | None = None, baseline: str = BASELINE, progress=print, plot: Path | None = None,
        hcd_qp: float | None = None) -> dict:
    """``upscaler``: the one the downscalers are made for (default: per scale, the delivery
    upscaler that ships a downscaler, ``vidsr downscale``'s own default); ``hcd_qp``: refine D-hcd
    once at this QP instead of at each CRF's own."""
    from ..delivery.downscale import default_upscaler
    from ..train.data import default_folder, shown

    val_dir = Path(val_dir or default_folder("val"))
    upscalers = {s: upscaler or default_upscaler(s, "fast") for s in scales}  # fast and hcd run too
    res = {"data": shown(val_dir), "frames": frames, "source": f"{SOURCE[0]}x{SOURCE[1]}",
           "upscalers": {str(s): u for s, u in upscalers.items()}, "baseline": baseline,
           "scales": list(scales), "codecs": list(codecs), "hcd_qp": hcd_qp, "clips": {}}
    for name in clips:
        res["clips"][name] = run_clip(name, val_dir, frames, scales, list(codecs), upscalers, baseline, progress, hcd_qp)
    res["summary"] = summarise(res)
    if plot is not None:
        draw(res, plot)
        res["plot"] = plot.name
    return res


def _curve(rows, codec) -> list[tuple[float, float]]:
    return [(r["kbps"], r["psnr"]) for r in rows if r["codec"] == codec]


def summarise(res: dict) -> dict:
    """Per scale and codec, per D pipeline: BD-rates (mean over clips), crossover with A per clip,
    bitrate change at equal CRF against B, and the LR picture's figures."""
    out = {}
    for scale in map(str, res["scales"]):
        for codec in res["codecs"]:
            rows = {}
            for pipe, base in COMPARISONS:
                per_clip = {"vs_B": [], "vs_hull": [], "crossover": {}, "rate_change": []}
                for clip, r in res["clips"].items():
                    c = r[scale]["curves"]
                    test, ref = _curve(c.get(pipe, []), codec), _curve(c.get(base, []), codec)
                    if not test or not ref:
                        continue
                    per_clip["vs_B"].append(bd_rate(ref, test))
                    per_clip["vs_hull"].append(bd_rate(_curve(c["A"], codec), test, hull_with=_curve(c["B"], codec)))
                    per_clip["crossover"][clip] = crossover(test, _curve(c["A"], codec))
                    bits = {x["crf"]: x["kbps"] for x in c[base] if x["codec"] == codec}
                    per_clip["rate_change"] += [x["kbps"] / bits[x["crf"]] - 1 for x in c[pipe] if x["codec"] == codec]
                if not per_clip["vs_B"]:
                    continue
                rows[f"{pipe} vs {base}"] = {"pipeline": pipe, "against": base, "bd_rate": _mean(per_clip["vs_B"]),
                              "bd_rate_vs_hull": _mean(per_clip["vs_hull"]),
                              "clips_overlapping": sum(x is not None for x in per_clip["vs_B"]),
                              "per_clip_bd_rate": dict(zip(res["clips"], per_clip["vs_B"])),
                              "crossover_vs_A": per_clip["crossover"],
                              "rate_change_at_crf": float(np.mean(per_clip["rate_change"]) * 100)}
            out[f"x{scale} {codec}"] = rows
    lr = {}
    for scale in map(str, res["scales"]):
        clips = res["clips"].values()
        lr[f"x{scale}"] = {
            mode: {"psnr_vs_lanczos": float(np.mean([c[scale]["lr"][mode]["psnr_vs_lanczos"] for c in clips])),
                   "flicker_ratio": float(np.mean([c[scale]["lr"][mode]["flicker"] / max(c[scale]["lr"]["lanczos"]["flicker"], 1e-9)
                                                   for c in clips])),
                   **({"seconds_per_frame": float(np.mean([c[scale]["seconds_per_frame"][mode] for c in clips]))}
                      if mode != "bicubic" else {})}
            for mode in ("bicubic", "fast", "hcd")}
        lr[f"x{scale}"]["upscaler_seconds_per_frame"] = float(np.mean([c[scale]["upscale_seconds_per_frame"] for c in clips]))
    out["lr"] = lr
    out["no_codec"] = {
        f"x{scale}": {pipe: {"psnr": float(np.mean([c[scale]["no_codec"][pipe] for c in have])),
                             "vs_B": [float(c[scale]["no_codec"][pipe] - c[scale]["no_codec"]["B"]) for c in have]}
                      for pipe in ("B", "B-delivery", "C", "D-bicubic", "D-fast", "D-hcd") if pipe in have[0][scale]["no_codec"]}
        for scale in map(str, res["scales"])
        if (have := [c for c in res["clips"].values() if "no_codec" in c[scale]])}
    return out


def _mean(values) -> float | None:
    """The mean over the clips where the curves overlap in PSNR (None where none does)."""
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def draw(res: dict, path: Path) -> None:
    """RD curves, mean over clips per CRF, one panel per scale and codec."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(s, c) for s in map(str, res["scales"]) for c in res["codecs"]]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), squeeze=False)
    for ax, (scale, codec) in zip(axes[0], panels):
        for pipe in ("A", "B", "B-delivery", "C", "D-bicubic", "D-fast", "D-hcd", "D-bicubic@0.5"):
            per = [[x for x in r[scale]["curves"].get(pipe, []) if x["codec"] == codec] for r in res["clips"].values()]
            if not per or not per[0]:
                continue
            kbps = np.mean([[x["kbps"] for x in p] for p in per], axis=0)
            psnr = np.mean([[x["psnr"] for x in p] for p in per], axis=0)
            ax.plot(kbps, psnr, marker="o", ms=3, label=pipe, linestyle="--" if pipe in ("C", "D-bicubic@0.5") else "-")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"x{scale} {codec} ({res['source']} source)")
        ax.set_xlabel("kbit/s (video bitstream)")
        ax.set_ylabel("PSNR-Y (dB)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(v, suffix="%") -> str:
    return "-" if v is None else f"{v:+.1f}{suffix}"


def _cross(c: dict) -> str:
    if c.get("everywhere"):
        return f"all (to {c['up_to_kbps']:.0f})"
    if c.get("never"):
        return "none"
    if "below_kbps" in c:
        return f"< {c['below_kbps']:.0f}"
    if "above_kbps" in c:
        return f"> {c['above_kbps']:.0f}"
    return "no common rates"


def hcd_refined(res: dict) -> str:
    # results saved before per-CRF refinement have no "hcd_qp" and were refined at QP 26
    qp = res.get("hcd_qp", HCD_QP)
    if qp is None:
        return f"D-hcd refined at each CRF's QP (its LR figures: the refinement at QP {HCD_QP})"
    return f"D-hcd refined once, at QP {qp:g}, and encoded at every CRF"


def report(res: dict) -> str:
    res = {**res, "summary": summarise(res)}  # recomputed: a saved JSON reports as the code now does
    ups = ", ".join(f"x{s} {u}" for s, u in res["upscalers"].items())
    lines = [f"Source: {len(res['clips'])} clips ({', '.join(res['clips'])}), {res['frames']} frames each at "
             f"{res['source']}, {FPS} fps, rendered from {res['data']}. B upscales with {res['baseline']}; B-delivery "
             f"and the D pipelines with the delivery upscaler ({ups}); full networks unless @0.5 (--budget 0.5). "
             f"x264 preset medium, x265 preset fast, one thread each; {hcd_refined(res)}.", ""]
    for key, rows in res["summary"].items():
        if key in ("lr", "no_codec"):
            continue
        lines += [f"**{key}**", "",
                  "| pipeline | against | BD-rate | BD-rate vs hull(A, B) | bitrate at equal CRF | crossover with A (kbit/s, per clip) |",
                  "|---|---|---|---|---|---|"]
        clips = len(res["clips"])
        for r in rows.values():
            cross = ", ".join(f"{clip} {_cross(c)}" for clip, c in r["crossover_vs_A"].items())
            if all(_cross(c) == "no common rates" for c in r["crossover_vs_A"].values()):
                cross = "no common rates (A's lowest CRF costs more bits)"
            n = r.get("clips_overlapping", clips)
            bd = _fmt(r["bd_rate"]) + ("" if n == clips else f" ({n} of {clips} clips overlap)")
            lines.append(f"| {r['pipeline']} | {r['against']} | {bd} | {_fmt(r['bd_rate_vs_hull'])} | "
                         f"{_fmt(r['rate_change_at_crf'])} | {cross} |")
        lines.append("")
    if res["summary"].get("no_codec"):
        lines += ["Before any codec (the 8-bit LR upscaled as it is): what each LR gives at most, against B "
                  "(mean over clips, and the range)", "",
                  "| scale | pipeline | PSNR-Y (dB) | vs B (dB) | vs B, per clip (dB) |", "|---|---|---|---|---|"]
        for scale, rows in res["summary"]["no_codec"].items():
            for pipe, r in rows.items():
                lines.append(f"| {scale} | {pipe} | {r['psnr']:.2f} | {np.mean(r['vs_B']):+.2f} | "
                             f"{min(r['vs_B']):+.2f} .. {max(r['vs_B']):+.2f} |")
        lines.append("")
    lines += ["LR pictures (what a client without vidsr sees) and time per frame:", "",
              "| scale | downscaler | PSNR-Y vs Lanczos LR (dB) | flicker / Lanczos LR's | s per frame |", "|---|---|---|---|---|"]
    for scale, modes in res["summary"]["lr"].items():
        for mode in ("bicubic", "fast", "hcd"):
            m = modes[mode]
            sec = f"{m['seconds_per_frame']:.3f}" if "seconds_per_frame" in m else "-"
            lines.append(f"| {scale} | {mode} | {m['psnr_vs_lanczos']:.2f} | {m['flicker_ratio']:.3f} | {sec} |")
        lines.append(f"| {scale} | (upscaler, full network) | | | {modes['upscaler_seconds_per_frame']:.3f} |")
    if res.get("plot"):
        lines += ["", f"RD curves: {res['plot']}"]
    return "\n".join(lines)
