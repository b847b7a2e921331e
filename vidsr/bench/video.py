"""``vidsr bench video``: does an fps target buy more than any fixed choice at the same speed?

Clips that were not trained on (but ``sample``, whose photograph is a training image), 720p
ground truth rendered as 2 s at 30 fps and downscaled x2 (antialiased bicubic, studio-range luma
as training makes it) to a 360p input encoded with x264 at CRF 16, as footage arrives:
- ``sample``: the bundled sample's slow pan and zoom, rendered at 720p;
- ``val-pan``: a slow pan over each validation image;
- ``static``: a static validation image with a subject (a patch of another) moving across it;
- ``fast-pan``: a pan across a validation image at about a screen width a second;
- ``animation``: flat colours and hard edges (a posterised validation illustration) with flat
  shapes moving over it.
For each clip: Lanczos, then every uniform configuration (each routed model's widths or heads on
every tile, ``vidsr --route``, and the sharpened Lanczos base everywhere, ``--budget 0``), with
its fps (after start-up: the first two frames, as a target keeps it) and PSNR-Y against the
truth; then ``vidsr --fps-target F`` as users run it (the routed default model) at each of those
fps and at 30, with and without keeping unchanged tiles (``--no-reuse``), and at 30 fps without
the sharpened base (``--no-sharpen``). The machine's speed drifts by several percent within
minutes, which at a width's own fps decides whether the width fits: each configuration a target
was taken from runs again after its targets, and its fps is the mean of both runs (the table
shows both). Flicker is the mean absolute frame-to-frame change of the output minus that of the
truth, over the pixels the truth keeps unchanged (8-bit levels).
A second table measures the reuse bound: at a fixed budget, each clip's frames planned as alone,
with and without keeping the tiles whose input changed less than a bound (same routes either way),
and the PSNR-Y of the kept tiles both ways. ``--parts still`` measures keeping the still pixels of
tiles that run again: each clip in-process at a budget that moves from frame to frame as an fps
target's does (the same drawn sequence both ways), with and without, PSNR-Y and flicker; it
depends on no timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

from ..io.formats import plane_view
from ..metrics import psnr, rgb_to_luma
from ..models import registry
from ..pipeline import fps_after_start_up
from ..train.data import default_folder, list_images

HR = (1280, 720)
FPS = 30
CLIPS = ("sample", "val-pan", "static", "fast-pan", "animation")
SHARP_EVERYWHERE = "sharpened Lanczos everywhere (--budget 0)"
ENCODE = ["--codec", "libx264", "--crf", "12", "--encoder-opt", "preset=veryfast"]
WARMUP = 0.25
TARGET_30 = 30.0
REUSE_BOUNDS = (0, 1, 2, 3, 4)  # 8-bit levels: the largest change of any pixel of a tile


def _pan(im: Image.Image, n: int, speed: float):
    """Frames moving a 720p window across ``im`` (``speed``: image widths over the clip)."""
    w = im.width * 0.6
    h = w * HR[1] / HR[0]
    for i in range(n):
        t = i / max(1, n - 1)
        x0 = (im.width - w) * min(1.0, t * speed)
        y0 = (im.height - h) * (0.3 + 0.4 * t)
        yield np.asarray(im.resize(HR, Image.Resampling.LANCZOS, box=(x0, y0, x0 + w, y0 + h)))


def render(name: str, val_dir: Path, seconds: float):
    """The clip's 720p RGB frames."""
    n = int(round(seconds * FPS))
    images = [Image.open(p).convert("RGB") for p in list_images(val_dir)]
    if name == "sample":
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "samples"))
        from make_sample import DEFAULT_PHOTO, render as render_sample

        yield from render_sample(Image.open(DEFAULT_PHOTO).convert("RGB"), HR, seconds, FPS)
    elif name == "val-pan":
        from .fps import hr_frames

        yield from hr_frames(val_dir, seconds)
    elif name == "fast-pan":
        yield from _pan(images[0], n, 1.0)
    else:
        back = images[1].resize(HR, Image.Resampling.LANCZOS)
        if name == "animation":  # flat colours and hard edges, as cel animation has them
            back = ImageOps.posterize(back.filter(ImageFilter.ModeFilter(9)), 3)
        subject = images[2].resize((320, 240), Image.Resampling.LANCZOS)
        if name == "animation":
            subject = ImageOps.posterize(subject.filter(ImageFilter.ModeFilter(9)), 2)
        for i in range(n):
            frame = back.copy()
            x = int(40 + (HR[0] - 400) * i / max(1, n - 1))
            frame.paste(subject, (x, 240 + int(60 * np.sin(i / 8))))
            yield np.asarray(frame)


def make_input(name: str, val_dir: Path, seconds: float, path: Path) -> np.ndarray:
    """Write the 360p input; returns the truth's 8-bit luma frames (N, 720, 1280)."""
    from .fps import write_lr_clip

    truth = []

    def frames():
        for rgb in render(name, val_dir, seconds):
            truth.append(np.round(rgb_to_luma(rgb) * 255).astype(np.uint8))
            yield rgb

    write_lr_clip(frames(), path, "libx264", {"crf": "16", "preset": "medium"})
    return np.stack(truth)


def score(path: Path, truth: np.ndarray) -> tuple[float, float | None]:
    """(mean PSNR-Y against the truth over every frame, flicker on the truth's unchanged pixels
    after the first quarter of the frames (start-up, when an fps target measures what a frame
    costs), or None when the truth keeps too few pixels)."""
    ys = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            ys.append(frame.to_ndarray()[: frame.height].astype(np.float32))
    ps = [psnr(y / 255, t.astype(np.float32) / 255, 2) for y, t in zip(ys, truth)]
    return float(np.mean(ps)), flicker(ys, truth)


def flicker(outs, truth: np.ndarray) -> float | None:
    """The output's mean absolute frame-to-frame change minus the truth's, over the pixels the
    truth keeps unchanged, after the first quarter of the frames; None when it keeps too few."""
    flick, count = 0.0, 0
    for k in range(max(1, int(len(outs) * WARMUP)), min(len(outs), len(truth))):
        still = truth[k] == truth[k - 1]
        if still.mean() < 0.05:
            continue
        change = np.abs((outs[k].astype(np.float32) - outs[k - 1]) - (truth[k].astype(np.float32) - truth[k - 1]))
        flick += float(change[still].mean())
        count += 1
    return flick / count if count else None


def _vidsr(lr: Path, out: Path, stats: Path, *flags: str) -> float:
    cmd = [sys.executable, "-m", "vidsr", str(lr), "-o", str(out), "-y", "--quiet", "--stats", str(stats), *ENCODE, *flags]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"vidsr {' '.join(flags)} failed: {proc.stderr.strip()[-400:]}")
    # frames a second after start-up, the rate an fps target keeps: opening, loading and calibrating
    # come before the first frame, and with a target the choice of a dearer model (which prices it,
    # seconds for a wide one) before the second. Later stalls, the encoder's first frames included,
    # count, as they do for the target's schedule
    times = [json.loads(line)["t"] for line in stats.read_text().splitlines()]
    return fps_after_start_up(len(times), times[1], times[-1])


def uniform_configs(models: list[str] | None) -> list[tuple[str, str]]:
    """(model, route) for each network route of each shipped routed x2 model."""
    out = []
    # a delivery model (trained on decoded video) only when named
    for e in sorted(registry.shipped_models() if models else registry.general_models(), key=lambda e: e["name"]):
        if e["scale"] != 2 or registry.architecture(e["architecture"]).router is None:
            continue
        if models and e["name"] not in models:
            continue
        d = registry.describe(e["name"], e["architecture"], 2, e.get("config"), e)
        out += [(d.name, r.name) for r in d.routes if r.name != "bicubic"]
    return out


# The reuse-bound table's budget: between arm-plain's w8 (0.07 of the full network's MACs) and w16
# (0.26), where frames planned alone route. A frame planned as one width everywhere (at 0.5, w16
# fits) runs it in the large windows and keeps no tile, so at 0.5 the table measured nothing.
REUSE_BOUND_BUDGET = 0.2


def reuse_bound(lr: Path, truth: np.ndarray, model: str = "arm-plain", budget: float = REUSE_BOUND_BUDGET) -> dict:
    """Per bound: the share of tiles kept and the PSNR-Y of the kept tiles' pixels when kept and
    when computed again (frames planned alone, so the routes are the same both ways)."""
    from .. import temporal
    from ..budget import MacBudget
    from ..policy import load_engine

    engine = load_engine(model, 2)
    with av.open(str(lr)) as c:
        planes = [plane_view(f, 0).copy() for f in c.decode(video=0)]
    res = {}
    before = temporal.REUSE_DIFF
    try:
        for bound in REUSE_BOUNDS:
            temporal.REUSE_DIFF = bound / 255
            stream = temporal.StreamState(reallocate=False)
            kept_err = fresh_err = 0.0
            kept_px = tiles = kept_tiles = 0
            for k, plane in enumerate(planes):
                engine.router.reset()
                out, stats = engine.upscale_plane(plane, budget=MacBudget(budget), stream=stream)
                engine.router.reset()
                alone, _ = engine.upscale_plane(plane, budget=MacBudget(budget))
                grid = engine.grid(*plane.shape)
                tiles += len(grid)
                kept = stream.age > 0 if stream.age is not None else np.zeros(len(grid), bool)  # kept this frame
                if kept.any():
                    mask = grid.core_mask(kept, 2)
                    t = truth[k].astype(np.float64)
                    kept_err += float(((out[mask] - t[mask]) ** 2).sum())
                    fresh_err += float(((alone[mask] - t[mask]) ** 2).sum())
                    kept_px += int(mask.sum())
                    kept_tiles += int(kept.sum())
            res[bound] = {"kept_share": kept_tiles / tiles,
                          "kept_psnr": 10 * np.log10(255**2 / (kept_err / kept_px)) if kept_px else None,
                          "fresh_psnr": 10 * np.log10(255**2 / (fresh_err / kept_px)) if kept_px else None}
    finally:
        temporal.REUSE_DIFF = before
    return res


REFERENCE = ("arm-espcn", "full")  # the still-pixels table's fixed configuration beside the routed runs
STILL_BUDGETS = (0.08, 0.2)  # shares of the MACs a frame's budget is drawn between (arm-plain at 360p: about
# what 20-30 fps leave on this kind of machine)


def still_pixels(lr: Path, truth: np.ndarray, model: str = "arm-plain") -> dict:
    """PSNR-Y and flicker with and without keeping still pixels of tiles that run again, the
    frames planned with reuse at budgets drawn per frame (the same sequence both ways)."""
    from .. import temporal
    from ..budget import MacBudget
    from ..policy import load_engine

    engine = load_engine(model, 2)
    with av.open(str(lr)) as c:
        planes = [plane_view(f, 0).copy() for f in c.decode(video=0)]
    budgets = np.random.default_rng(0).uniform(*STILL_BUDGETS, len(planes))
    res = {"budgets": list(STILL_BUDGETS)}
    for keep in (False, True):
        engine.router.reset()
        stream = temporal.StreamState(still=keep)
        outs = [engine.upscale_plane(p, budget=MacBudget(float(b)), stream=stream)[0] for p, b in zip(planes, budgets)]
        res["on" if keep else "off"] = {"psnr_y": float(np.mean([psnr(o / 255, t / 255, 2) for o, t in zip(outs, truth)])),
                                         "flicker": flicker(outs, truth)}
    # the reference a user compares with at a similar speed: the real-time network on every pixel
    ref = load_engine(REFERENCE[0], 2, route=REFERENCE[1])
    outs = [ref.upscale_plane(p)[0] for p in planes]
    res["reference"] = {"run": f"{REFERENCE[0]} {REFERENCE[1]} everywhere", "flicker": flicker(outs, truth),
                        "psnr_y": float(np.mean([psnr(o / 255, t / 255, 2) for o, t in zip(outs, truth)]))}
    return res


PREDICTOR_BUDGETS = (0.25, 0.5, 0.75)  # shares of the MACs between interpolation and the full network
PREDICTORS = ("blind", "edge", "last-frame", "same-frame", "oracle")


def route_errors(lr: Path, truth: np.ndarray, model: str = "arm-plain") -> tuple[list[dict], np.ndarray, tuple[str, ...]]:
    """(per frame, everything the predictors are judged on, for every route on every tile of the
    router's grid: the true MSE against the truth, the disagreement of the route's output with
    interpolation, and the Edge-to-PSNR table's predicted MSE; and each tile's HR pixels; the
    routes' MACs per pixel; their names)."""
    from ..engine import disagreement
    from ..models.interpolation import upscale
    from ..policy import load_engine
    from ..routing.edge import tile_edge_scores

    engine = load_engine(model, 2)
    router = engine.router
    frames = []
    with av.open(str(lr)) as c:
        planes = [plane_view(f, 0).copy() for f in c.decode(video=0)]
    for plane, t in zip(planes, truth):
        x = engine.to_unit(plane, 8, False)
        grid = engine.grid(*plane.shape)
        hr = torch.from_numpy(t.astype(np.float32) / 255)[None, None]
        base = upscale(x, 2).clamp_(0, 1)
        outs = [base] + [engine.upscale_uniform(x, r)[0] for r in router.names[1:]]
        scores = tile_edge_scores(x, grid).flatten()
        frames.append({"mse": np.stack([grid.tile_means((o - hr) ** 2, 2).flatten().double().numpy() for o in outs]),
                       "disagreement": np.stack([disagreement(o, base, grid, 2) for o in outs]),
                       "table": torch.pow(10.0, -router.table.lookup(scores) / 10).double().numpy(),
                       "pixels": grid.core_pixels * 4})
    return frames, router.macs, router.names


def predictor_psnr(frames: list[dict], macs: np.ndarray, budget: float, predictor: str) -> float:
    """Mean PSNR-Y (on the router's tiles' true errors) when each frame's routes are the budgeted
    solver's choice from ``predictor``'s MSE:
    - ``blind``: no idea where (every tile predicted the frame's mean error per route): the
      budget's mix of routes on random tiles, in expectation;
    - ``edge``: the Edge-to-PSNR table, as the router runs by default;
    - ``last-frame``: the table corrected by the disagreement the earlier frames' chosen routes
      measured (``routing.evidence``, as ``--predictor last-frame`` runs);
    - ``same-frame``: the same correction from the full network's disagreement on this very
      frame, which no run has before running it: a ceiling for this kind of evidence;
    - ``oracle``: the true errors."""
    from ..routing.evidence import RouteEvidence
    from .routing import routes_at_share

    evidence = RouteEvidence()
    psnrs = []
    for f in frames:
        mse, px = f["mse"], f["pixels"]
        items = np.arange(len(px))
        if predictor == "oracle":
            predicted = mse
        elif predictor == "blind":
            predicted = np.repeat((mse * px).sum(1, keepdims=True) / px.sum(), len(px), 1)
        elif predictor == "same-frame":
            full = np.full(len(px), len(macs) - 1)
            evidence.clear()
            evidence.adjust(f["table"])
            evidence.observe(full, f["disagreement"][-1])
            predicted = evidence.adjust(f["table"])
        else:
            predicted = evidence.adjust(f["table"]) if predictor == "last-frame" else f["table"]
        routes, _ = routes_at_share(macs, px, predicted, budget)
        if predictor == "blind":  # identical tiles: the mix of routes, on tiles at random
            share = np.bincount(routes, minlength=len(macs)) / len(px)
            frame_mse = float((share[:, None] * mse * px[None]).sum() / px.sum())
        else:
            frame_mse = float((mse[routes, items] * px).sum() / px.sum())
        if predictor == "last-frame":
            evidence.observe(routes, f["disagreement"][routes, items])
        psnrs.append(10 * np.log10(1 / max(frame_mse, 1e-12)))
    return float(np.mean(psnrs))


def table_levels(frames: list[dict], routes: tuple[str, ...], shown: tuple[str, ...] = ("w16", "w32")) -> list[dict]:
    """How far the table's levels are from this footage: the tiles split into thirds by the
    table's predicted interpolation error (their edge score, in effect), and per third each
    ``shown`` route's gain over interpolation in dB, as the table predicts it and as measured
    (pooled over the third's tiles)."""
    mse = np.concatenate([f["mse"] for f in frames], axis=1)
    table = np.concatenate([f["table"] for f in frames], axis=1)
    order = np.argsort(table[0], kind="stable")
    out = []
    for third, tiles in zip(("flattest", "middle", "edgiest"), np.array_split(order, 3)):
        row = {"third": third}
        for name in shown:
            r = routes.index(name)
            row[name] = {"table": float(10 * np.log10(table[0, tiles].mean() / table[r, tiles].mean())),
                         "measured": float(10 * np.log10(mse[0, tiles].mean() / mse[r, tiles].mean()))}
        out.append(row)
    return out


ROUTING_BUDGETS = (0.3, 0.4, 0.5, 0.7, 0.9)  # shares where a routed plan competes with a narrower width everywhere


def routing_gains(frames: list[dict], macs: np.ndarray, routes: tuple[str, ...],
                  budgets: tuple[float, ...] = ROUTING_BUDGETS) -> list[dict]:
    """Per MAC share: the dearest width everywhere it affords, and the gain in dB of the table's
    budgeted routed plan over it, as the table predicts it and as measured (mean over frames). The
    router runs a routed plan instead of a width that fits only when the prediction clears
    ``arm.ROUTED_MARGIN_DB``: this is the evidence for that margin. MACs only: at equal time a
    routed plan affords less still (its small windows compute more context)."""
    from .routing import routes_at_share

    shares = (macs - macs[0]) / (macs[-1] - macs[0])

    def db(mse, px):
        return 10 * np.log10(px.sum() / max(float((mse * px).sum()), 1e-12))

    out = []
    for b in budgets:
        width = max(r for r in range(1, len(macs)) if shares[r] <= b + 1e-9) if any(shares[1:] <= b + 1e-9) else None
        if width is None:
            continue
        predicted, measured = [], []
        for f in frames:
            px, items = f["pixels"], np.arange(len(f["pixels"]))
            plan, _ = routes_at_share(macs, px, f["table"], b)
            predicted.append(db(f["table"][plan, items], px) - db(f["table"][width], px))
            measured.append(db(f["mse"][plan, items], px) - db(f["mse"][width], px))
        out.append({"budget": b, "width": routes[width], "predicted": float(np.mean(predicted)),
                    "measured": float(np.mean(measured))})
    return out


def predictors(lr: Path, truth: np.ndarray, model: str = "arm-plain") -> dict:
    """Per budget, each predictor's PSNR-Y (``predictor_psnr``); the table's levels against the
    measured gains (``table_levels``); and what routing gains over a width everywhere
    (``routing_gains``)."""
    frames, macs, routes = route_errors(lr, truth, model)
    return {"model": model, "budgets": {b: {p: predictor_psnr(frames, macs, b, p) for p in PREDICTORS}
                                        for b in PREDICTOR_BUDGETS},
            "levels": table_levels(frames, routes), "routing": routing_gains(frames, macs, routes)}


@torch.no_grad()
def run(val_dir: Path | None, clips: list[str], seconds: float = 2.0, models: list[str] | None = None,
        parts: tuple[str, ...] = ("targets", "predictors", "still")) -> dict:
    val_dir = Path(val_dir or default_folder("val"))
    res = {"seconds": seconds, "clips": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in clips:
            lr = tmp / f"{name}.mp4"
            truth = make_input(name, val_dir, seconds, lr)
            res["clips"][name] = {}
            if "predictors" in parts:
                res["clips"][name]["predictors"] = predictors(lr, truth)
            if "still" in parts:
                res["clips"][name]["still_pixels"] = still_pixels(lr, truth)
            if "targets" not in parts:
                continue
            rows = []

            def measure(label, *flags):
                out, stats = tmp / "out.mp4", tmp / "stats.jsonl"
                fps = _vidsr(lr, out, stats, *flags)
                p, flicker = score(out, truth)
                rows.append({"run": label, "fps": fps, "psnr_y": p, "flicker": flicker})
                return rows[-1]

            lanczos = measure("Lanczos", "--model", "lanczos")
            # every network route everywhere, and the sharpened Lanczos base everywhere (the routed
            # default model at budget 0: no network runs)
            configs = [(f"{m} {r} everywhere", ("--model", m, "--route", r)) for m, r in uniform_configs(models)]
            configs.append((SHARP_EVERYWHERE, ("--budget", "0")))
            uniform = [measure(label, *flags) for label, flags in configs]
            targets = {}  # target fps -> the uniform configuration it was taken from (None: 30 fps)
            for u, config in sorted(zip(uniform, configs), key=lambda uc: uc[0]["fps"]):
                f = round(u["fps"], 1)
                if f > 0.5 and (not targets or f > max(targets) * 1.1):  # one target per 10% of speed
                    targets[f] = (u, config)
            if not any(abs(f - TARGET_30) < 0.5 for f in targets):
                targets[TARGET_30] = None  # the real-time target users ask for
            target_rows = []

            def fps_again(source) -> float:
                """The source configuration's fps, run once more (not a row of the table)."""
                again = measure("again", *source[1][1])
                rows.remove(again)
                return again["fps"]

            for f, source in sorted(targets.items()):
                # the machine's speed drifts by a few percent over minutes: the configuration a target
                # was taken from runs again right before its targets and right after them, and its
                # speed is the mean of those two (the sweep's run, minutes earlier, only chose the target)
                before = fps_again(source) if source is not None else None
                for reuse in (True, False):
                    row = measure(f"--fps-target {f:g}" + ("" if reuse else " --no-reuse"), "--fps-target", str(f),
                                  *(() if reuse else ("--no-reuse",)))
                    row["target"] = f
                    target_rows.append(row)
                if f == TARGET_30:  # what the sharpened base adds at 30 fps: the same target without it
                    row = measure(f"--fps-target {f:g} --no-sharpen", "--fps-target", str(f), "--no-sharpen")
                    row["target"] = f
                    target_rows.append(row)
                if source is not None:
                    u, after = source[0], fps_again(source)
                    u["fps_runs"] = [u["fps"], before, after]
                    u["fps"] = float(np.mean([before, after]))
            for row in target_rows:
                f = row["target"]
                best = max((u for u in uniform if u["fps"] >= f * 0.98), key=lambda u: u["psnr_y"], default=None)
                row["best_uniform"] = best and {"run": best["run"], "psnr_y": best["psnr_y"], "fps": best["fps"]}
            res["clips"][name].update({"lanczos_psnr_y": lanczos["psnr_y"], "rows": rows,
                                       "reuse_bound": reuse_bound(lr, truth)})
    return res


def report(res: dict) -> str:
    parts = []
    if any("rows" in c for c in res["clips"].values()):
        parts.append(targets_report(res))
    if any("predictors" in c for c in res["clips"].values()):
        parts.append(predictors_report(res))
    if any("still_pixels" in c for c in res["clips"].values()):
        parts.append(still_report(res))
    return "\n".join(parts)


def still_report(res: dict) -> str:
    clips = {n: c["still_pixels"] for n, c in res["clips"].items() if "still_pixels" in c}
    lo, hi = next(iter(clips.values()))["budgets"]
    out = [f"Still pixels (arm-plain x2, reuse on, each frame's budget drawn between {lo:g} and {hi:g} of the full "
           "network's MACs, the same draws both ways): tiles that run again keep the pixels nothing changed near, "
           "or compute them again. PSNR-Y against the 720p truth; flicker in 8-bit levels on the pixels the truth "
           "keeps unchanged. Beside them, in the same run, a fixed configuration on every pixel.\n",
           "| clip | PSNR-Y, computed again (dB) | PSNR-Y, kept (dB) | flicker, computed again | flicker, kept "
           "| fixed | its PSNR-Y (dB) | its flicker |",
           "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for name, c in clips.items():
        ref = c.get("reference", {"run": "-", "psnr_y": None, "flicker": None})
        out.append(f"| {name} | {c['off']['psnr_y']:.3f} | {c['on']['psnr_y']:.3f} | {fmt(c['off']['flicker'])} | "
                   f"{fmt(c['on']['flicker'])} | {ref['run']} | {fmt(ref['psnr_y'])} | {fmt(ref['flicker'])} |")
    return "\n".join(out) + "\n"


def predictors_report(res: dict) -> str:
    clips = {n: c["predictors"] for n, c in res["clips"].items() if "predictors" in c}
    model = next(iter(clips.values()))["model"]
    out = [f"Predictors ({model}, x2, clips of {res['seconds']:g} s): PSNR-Y of the frames when each frame's routes are the "
           "budgeted choice from each predictor, and in brackets the share of the oracle's gain over a blind "
           "choice it reaches. Budget: the share of the MACs between interpolation everywhere and the full network "
           "everywhere. Blind: the budget's mix of routes on tiles at random. Same frame: the correction the last "
           "frame's evidence makes, from the full network's disagreement on the frame itself, which no run has "
           "before running it (a ceiling for this evidence).\n",
           "| clip | budget | blind (dB) | edge table | edge + last frame | same frame (ceiling) | oracle (dB) |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    shares = {p: [] for p in ("edge", "last-frame", "same-frame")}
    for name, c in clips.items():
        for b, r in c["budgets"].items():
            span = r["oracle"] - r["blind"]

            def cell(p):
                share = (r[p] - r["blind"]) / span if span > 1e-9 else float("nan")
                shares[p].append(share)
                return f"{r[p]:.3f} ({share:.0%})"

            out.append(f"| {name} | {float(b):g} | {r['blind']:.3f} | {cell('edge')} | {cell('last-frame')} | "
                       f"{cell('same-frame')} | {r['oracle']:.3f} |")
    mean = {p: np.nanmean(v) for p, v in shares.items()}
    out.append(f"\nMean share of the oracle's gain: edge table {mean['edge']:.0%}, edge + last frame "
               f"{mean['last-frame']:.0%}, same frame {mean['same-frame']:.0%}.\n")
    levels = {n: c["levels"] for n, c in clips.items() if c.get("levels")}
    if levels:
        shown = [k for k in next(iter(levels.values()))[0] if k != "third"]
        out.append("The table's levels against this footage: the tiles in thirds by the table's predicted "
                   "interpolation error (flattest to edgiest), and each route's gain over interpolation in dB as the "
                   "table predicts it / as measured on the clip, over every frame.\n")
        out.append("| clip | tiles | " + " | ".join(f"{r}: table / measured" for r in shown) + " |")
        out.append("| --- | --- | " + " | ".join("---:" for _ in shown) + " |")
        for name, rows in levels.items():
            for row in rows:
                out.append(f"| {name} | {row['third']} | "
                           + " | ".join(f"{row[r]['table']:+.2f} / {row[r]['measured']:+.2f}" for r in shown) + " |")
        out.append("")
    routing = {n: c["routing"] for n, c in clips.items() if c.get("routing")}
    if routing:
        budgets = [r["budget"] for r in next(iter(routing.values()))]
        out.append("Routing against one width everywhere: at each share of the MACs, the gain in dB of the "
                   "table's routed plan over the dearest width that share affords on every tile, as the table "
                   "predicts it / as measured (the router routes instead of a width that fits only when the "
                   "prediction clears its margin, 0.5 dB).\n")
        out.append("| clip | " + " | ".join(f"{b:g} (vs {next(iter(routing.values()))[i]['width']})"
                                            for i, b in enumerate(budgets)) + " |")
        out.append("| --- | " + " | ".join("---:" for _ in budgets) + " |")
        for name, rows in routing.items():
            out.append(f"| {name} | " + " | ".join(f"{r['predicted']:+.2f} / {r['measured']:+.2f}" for r in rows) + " |")
        out.append("")
    return "\n".join(out)


def targets_report(res: dict) -> str:
    out = [f"Clips of {res['seconds']:g} s, 640x360 (x264 CRF 16) -> 1280x720, PSNR-Y against the 720p truth; "
           "flicker in 8-bit levels on the pixels the truth keeps unchanged. A configuration a target was taken "
           "from shows three speeds: the sweep's run, one right before its targets and one right after them; its fps "
           "is the mean of the last two.\n",
           "Summary: `--fps-target` (reuse on) against the best uniform configuration that reaches the same fps "
           "(within 2%), over the targets of each clip; and `--fps-target 30` against Lanczos.\n",
           "| clip | targets | worst vs best uniform (dB) | mean (dB) | flicker: target / uniform (mean) | "
           "--fps-target 30: fps, vs Lanczos (dB) | the same with --no-sharpen |",
           "| --- | ---: | ---: | ---: | --- | --- | --- |"]
    targets = {n: c for n, c in res["clips"].items() if "rows" in c}
    for name, c in targets.items():
        rows = [r for r in c["rows"] if "target" in r and r["run"] == f"--fps-target {r['target']:g}" and r.get("best_uniform")]
        diffs = [r["psnr_y"] - r["best_uniform"]["psnr_y"] for r in rows]
        uni = {u["run"]: u for u in c["rows"] if "target" not in u}
        fl = [(r["flicker"], uni[r["best_uniform"]["run"]]["flicker"]) for r in rows
              if r["flicker"] is not None and uni[r["best_uniform"]["run"]]["flicker"] is not None]
        flick = f"{np.mean([a for a, _ in fl]):.3f} / {np.mean([b for _, b in fl]):.3f}" if fl else "-"
        t30 = next((r for r in c["rows"] if r["run"] == f"--fps-target {TARGET_30:g}"), None)
        at30 = f"{t30['fps']:.1f} fps, {t30['psnr_y'] - c['lanczos_psnr_y']:+.3f}" if t30 else "-"
        plain = next((r for r in c["rows"] if r["run"] == f"--fps-target {TARGET_30:g} --no-sharpen"), None)
        at30_plain = f"{plain['fps']:.1f} fps, {plain['psnr_y'] - c['lanczos_psnr_y']:+.3f}" if plain else "-"
        worst = f"{min(diffs):+.3f}" if diffs else "-"
        mean = f"{np.mean(diffs):+.3f}" if diffs else "-"
        out.append(f"| {name} | {len(rows)} | {worst} | {mean} | {flick} | {at30} | {at30_plain} |")
    out.append("")
    for name, c in targets.items():
        base = c["lanczos_psnr_y"]
        out.append(f"**{name}**\n")
        out.append("| run | fps | PSNR-Y (dB) | vs Lanczos (dB) | flicker | best uniform at this fps | vs it (dB) |")
        out.append("| --- | ---: | ---: | ---: | ---: | --- | ---: |")
        for r in c["rows"]:
            flick = "-" if r["flicker"] is None else f"{r['flicker']:.3f}"
            best = r.get("best_uniform")
            vs = f"{best['run']} ({best['fps']:.1f} fps) | {r['psnr_y'] - best['psnr_y']:+.3f}" if best else "- | -"
            if "target" not in r:
                vs = "- | -"
            fps = " / ".join(f"{f:.2f}" for f in r["fps_runs"]) if "fps_runs" in r else f"{r['fps']:.2f}"
            out.append(f"| {r['run']} | {fps} | {r['psnr_y']:.3f} | {r['psnr_y'] - base:+.3f} | {flick} | {vs} |")
        out.append(f"\nReuse bound (arm-plain, budget {REUSE_BOUND_BUDGET:g}, frames planned alone): the largest change of a tile's pixels "
                   "up to which it is kept; its pixels' PSNR-Y kept against computed again\n")
        out.append("| bound (levels) | tiles kept | kept (dB) | computed (dB) | cost (dB) |")
        out.append("| ---: | ---: | ---: | ---: | ---: |")
        for bound, b in c["reuse_bound"].items():
            if b["kept_psnr"] is None:
                out.append(f"| {float(bound):g} | 0% | - | - | - |")
            else:
                out.append(f"| {float(bound):g} | {b['kept_share']:.0%} | {b['kept_psnr']:.3f} | {b['fresh_psnr']:.3f} | "
                           f"{b['kept_psnr'] - b['fresh_psnr']:+.3f} |")
        out.append("")
    return "\n".join(out)
