"""``vidsr INPUT``: upscale a video or an image from the command line."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..budget import MacBudget
from ..errors import InputError, SettingsError, VidsrError
from ..routing import PCSR_MODES, PREDICTORS, ROUTER_CHOICES
from .options import Parser, finite_float, run_with_stats

INTERPOLATION = ("lanczos", "bicubic")



def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="vidsr",
        description="Upscale a video (re-encoded, keeping audio, subtitles, timestamps and colour "
        "metadata) or an image (written as PNG). Subcommands: vidsr downscale, vidsr batch, vidsr train, "
        "vidsr bench (each with --help).",
    )
    p.add_argument("input", nargs="?", type=Path, help="video or image file")
    p.add_argument("-o", "--output", type=Path, help="output file (default: INPUT_x<scale>.mp4, or .png for images)")
    p.add_argument("--preset", help="a preset name (vidsr --list-presets) or a .toml file; flags override it")
    p.add_argument("--scale", type=int, choices=(2, 3, 4), help="upscaling factor (default 2)")
    p.add_argument("--model", help="model name or .safetensors path (default: the best shipped model for the scale)")
    p.add_argument("--router", choices=ROUTER_CHOICES,
                   help="adaptive routing: auto (the model's own), none (full network everywhere), arm, pcsr")
    p.add_argument("--budget", type=finite_float,
                   help="fraction of the full network's cost per frame, 0 (interpolation) .. 1 (full network, default)")
    p.add_argument("--fps-target", type=finite_float, help="keep this frame rate: each frame gets the network time that fits")
    p.add_argument("--route", help="one route of the model on every tile, no routing (a width such as w24, "
                   "PCSR's light or heavy; vidsr --list-models lists them)")
    p.add_argument("--pcsr-mode", choices=PCSR_MODES, help="PCSR rule: budget (default), k, or adm (automatic)")
    p.add_argument("--pcsr-k", type=finite_float, help="k for --pcsr-mode k (0: plain argmax; larger: more light pixels)")
    p.add_argument("--stats", type=Path, help="write one JSON line per frame (budget, ms per stage, route shares)")
    p.add_argument("--codec", help="any FFmpeg video encoder: libx264 (default, or the container's own where it "
                   "cannot hold H.264, e.g. .webm), libx265, libsvtav1, ffv1, ...")
    p.add_argument("--crf", type=int, help="constant rate factor for x264/x265/SVT-AV1/VPx (default: encoder's)")
    p.add_argument("--encoder-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="encoder option, repeatable (e.g. preset=veryfast)")
    p.add_argument("--pix-fmt", help="output pixel format (default: the input's, where the encoder takes it)")
    p.add_argument("--tile", type=int, help="LR tile side (default: 64 with a router, 128 without)")
    p.add_argument("--overlap", type=int, help="LR context pixels around each tile (default: the model's receptive radius)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    p.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
                   help="network precision (default: fp16 on CUDA, fp32 on the CPU)")
    p.add_argument("--skip-damaged", action="store_true", help="drop damaged frames (each reported) instead of failing")
    p.add_argument("--no-reuse", action="store_true",
                   help="compute every tile of every frame (by default a routed run keeps the output of tiles "
                   "whose input has not changed, and spends the time on the others)")
    p.add_argument("--no-sharpen", action="store_true",
                   help="in a routed video, regions left to interpolation show swscale's Lanczos (by default "
                   "they show the sharpened Lanczos base: a learned prefilter undoes the blur the networks are "
                   "trained to undo, +0.8 dB at x2 on the validation images)")
    p.add_argument("--predictor", choices=PREDICTORS, default="edge",
                   help="where an ARM router puts its dear routes: edge (the Edge-to-PSNR table, default) or "
                   "last-frame (the table corrected by how much the networks changed each tile in recent frames)")
    p.add_argument("-y", "--overwrite", action="store_true", help="overwrite the output if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.add_argument("--list-models", action="store_true", help="list models with scale, size and cost, and exit")
    p.add_argument("--list-presets", action="store_true", help="list presets and exit")
    return p


@dataclass
class Settings:
    """Flags merged over the preset over the defaults."""

    scale: int = 2
    model: str | None = None
    router: str = "auto"
    budget: float = 1.0
    fps_target: float | None = None
    pcsr_mode: str = "budget"
    pcsr_k: float = 0.0
    tile: int | None = None
    overlap: int | None = None
    codec: str | None = None  # None: libx264, or the container's own encoder where it cannot hold H.264
    container: str | None = None  # the preset's output container (a suffix) when no -o is given
    crf: int | None = None
    pix_fmt: str | None = None
    encoder_options: dict = field(default_factory=dict)
    scale_given: bool = False  # by a flag or the preset
    model_flag: bool = False  # --model given as a flag: it beats a delivery tag (a preset's does not)
    scale_flag: bool = False  # --scale given as a flag

    def encode_options(self):
        from ..io.encoder import EncodeOptions

        return EncodeOptions(codec=self.codec, crf=self.crf, pix_fmt=self.pix_fmt, options=self.encoder_options)


def resolve_settings(args) -> Settings:
    from .. import presets

    preset = presets.load(args.preset) if args.preset else presets.Preset("none")
    s = Settings()
    for key in ("scale", "model", "router", "pcsr_mode", "pcsr_k", "tile", "overlap", "codec", "crf", "pix_fmt"):
        flag = getattr(args, key)
        value = flag if flag is not None else preset.get(key)
        if value is not None:
            setattr(s, key, value)
    s.container = preset.get("container")
    s.scale_given = args.scale is not None or preset.get("scale") is not None
    s.model_flag, s.scale_flag = args.model is not None, args.scale is not None
    # budget and fps target are two ways of saying one thing: a flag for either beats the preset's
    if args.budget is not None and args.fps_target is not None:
        raise SettingsError("give --budget or --fps-target, not both")
    if args.budget is not None:
        s.budget = args.budget
    elif args.fps_target is not None:
        s.fps_target = args.fps_target
    elif preset.get("fps_target") is not None:
        s.fps_target = preset.get("fps_target")
    elif preset.get("budget") is not None:
        s.budget = preset.get("budget")
    if not 0.0 <= s.budget <= 1.0:
        raise SettingsError(f"--budget must be between 0 and 1, got {s.budget!r}")
    if s.fps_target is not None and s.fps_target <= 0:
        raise SettingsError(f"--fps-target must be positive, got {s.fps_target:g}")
    if s.tile is not None and s.tile < presets.MIN_TILE:
        raise SettingsError(f"--tile must be at least {presets.MIN_TILE}")
    if s.overlap is not None and s.overlap < 0:
        raise SettingsError("--overlap must be >= 0")
    s.encoder_options = {**preset.encoder_options, **_encoder_options(args.encoder_opt)}
    return s


def _encoder_options(items: list[str]) -> dict:
    opts = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SettingsError(f"--encoder-opt expects KEY=VALUE, got {item!r}")
        opts[key] = value
    return opts


def _pick_dtype(precision: str, device: str):
    import torch

    if precision == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    if precision in ("fp16", "bf16") and not device.startswith("cuda"):
        raise SettingsError(f"--precision {precision} needs a CUDA device; the CPU runs fp32")
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def _warn(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"vidsr: warning: {msg}", file=sys.stderr)


def list_models() -> int:
    from ..models import registry

    models = registry.list_models()
    w = max(12, *(len(d.name) for d in models))
    print(f"{'model':<{w}} {'scale':>5} {'params':>8} {'size':>7} {'MACs/px':>9}  {'val PSNR-Y':>10}  {'routed':>8}  "
          "routes (MACs per output pixel)")
    for d in models:
        v = d.info.get("validation", {})
        psnr = f"{v['psnr_y']:.2f}" if v else "-"
        routed = f"{v['routed']['psnr_y']:.2f}" if "routed" in v else "-"
        size = f"{d.info['bytes'] / 1024:.0f} KB" if "bytes" in d.info else "-"
        routes = ", ".join(f"{r.name} {r.macs_per_pixel:,.0f}" for r in d.routes) if len(d.routes) > 1 else ""
        roles = []
        if d.weights_file and registry.default_model(d.scale) == d.name:
            roles.append("default")
        if d.weights_file and registry.best_routed(d.scale) == d.name:
            roles.append("routed default: --fps-target, --budget < 1")
        if d.weights_file and not registry.for_clean_input(d.info):
            roles.append("delivery: for video vidsr downscale made; val PSNR on x264-coded input")
        role = f" ({'; '.join(roles)})" if roles else ""
        print(f"{d.name:<{w}} {'x' + str(d.scale):>5} {d.params:>8,} {size:>7} {d.macs_per_pixel:>9,.0f}  {psnr:>10}  "
              f"{routed:>8}  {routes}{role}")
    from ..train.evaluate import ROUTED_MACS_PER_INPUT_PIXEL

    print(f"routed: val PSNR-Y under the model's own router at the same cost for every model of a scale, "
          f"{ROUTED_MACS_PER_INPUT_PIXEL:,} MACs per input pixel (x2: {ROUTED_MACS_PER_INPUT_PIXEL / 4:,.0f} per output "
          f"pixel, x4: {ROUTED_MACS_PER_INPUT_PIXEL / 16:,.0f}); the routed default is the best by it")
    return 0


def list_presets() -> int:
    from .. import presets

    for name, description in presets.describe_all():
        print(f"{name:<10} {description}")
    return 0




def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.list_models:
        return list_models()
    if args.list_presets:
        return list_presets()
    run(args)
    return 0


def run(args, engines: dict | None = None, on_frame=None, segment: tuple | None = None):
    """Upscale ``args.input`` as the flags say; returns the run's ``Summary`` (an image: one frame).
    ``engines``: a cache of loaded engines by settings, kept by a caller that runs many files
    (``vidsr batch``); ``on_frame``: called with each frame's stats record once it is encoded;
    ``segment``: only the video frames with timestamps in [start, end), into a video-only file."""
    s = resolve_settings(args)
    if args.input is None:
        raise SettingsError("an INPUT file is required (vidsr --help for usage)")

    from ..io.images import is_image
    from ..pipeline import Summary

    src: Path = args.input
    if not src.exists():
        raise InputError(f"{src}: no such file")
    tag = _follow_delivery_tag(src, s, args.quiet)
    delivery = tag if tag is not None and s.scale == tag.scale else None  # at its scale: crop to the source's size
    from ..io.output_paths import default_output, prepare_outputs, video_output

    image = is_image(src)
    if image:
        warn_encoder_flags_on_image(args)
        dst = args.output or default_output(src, s.scale, ".png")
    else:
        dst = video_output(src, args.output, s.scale, s.codec, s.container)
    prepare_outputs(src, dst, args.stats, args.overwrite)

    if not image and s.model in INTERPOLATION:  # swscale does it all: no torch, no engine
        if s.fps_target is not None:
            _warn(f"--fps-target has nothing to adapt with --model {s.model}; running as fast as it can")
        return _run_video(args, s, src, dst, engine=None, interpolation=s.model, on_frame=on_frame, segment=segment,
                          delivery=delivery)

    from .. import policy
    from ..engine import resolve_device

    device = resolve_device(args.device)
    dtype = _pick_dtype(args.precision, device)
    routed = s.fps_target is not None or s.budget < 1
    if args.route is not None and (routed or s.router not in ("auto", "none")):
        raise SettingsError("--route runs one route everywhere: it goes with no --budget, --fps-target or --router")

    def load(name):
        sharpen = not getattr(args, "no_sharpen", False)
        key = (name, s.scale, device, dtype, s.router, s.pcsr_mode, s.pcsr_k, s.tile, s.overlap, args.route, sharpen)
        if engines is not None and key in engines:
            engine = engines[key]
            if engine.router is not None:
                engine.router.reset()  # a new stream: no memory of the last file's frames
            return engine
        engine = policy.load_engine(name, s.scale, device, dtype, s.router, s.pcsr_mode, s.pcsr_k, s.tile, s.overlap,
                                    route=args.route, sharpen=sharpen)
        if engines is not None:
            engines[key] = engine
        return engine

    engine = load(policy.choose_model(s.scale, s.model, s.router, routed, _warn))
    name = engine.descriptor.name
    if engine.descriptor.params == 0:  # interpolation named by a path or alias: swscale does it on video
        engine_or_none = None
    else:
        engine_or_none = engine
        if s.fps_target is not None and engine.router is None:
            raise SettingsError(f"--fps-target needs a routed model (ARM or PCSR); {name} "
                                f"with --router {s.router} has a single route")
        if s.budget < 1 and engine.router is None:
            _warn(f"--budget {s.budget:g} has no effect: {name} with --router {s.router} "
                  f"has a single route (the full network runs everywhere)")
        if (s.pcsr_mode != "budget" or s.pcsr_k) and not _routes_with_pcsr(engine):
            _warn(f"--pcsr-mode and --pcsr-k have no effect: {name} does not route with PCSR")

    if image:
        from ..io.images import upscale_image

        upscale_image(engine, src, dst, budget=MacBudget(s.budget), delivery=delivery, warn=_warn)
        if not args.quiet:
            print(f"wrote {dst}", file=sys.stderr)
        return Summary(frames=1)

    dearer = []
    if s.fps_target is not None and engine_or_none is not None and not s.model and s.router == "auto":
        dearer = policy.dearer_candidates(engine, load)  # the model was ours to choose
    return _run_video(args, s, src, dst, engine_or_none, name if engine_or_none is None else "lanczos", dearer,
                      on_frame, segment, delivery=delivery)


def warn_encoder_flags_on_image(args) -> None:
    """An image is written as PNG, losslessly: the video encoder's flags do not apply, nor
    ``--stats`` (its lines are per frame of a video)."""
    given = [flag for flag, value in (("--codec", args.codec), ("--crf", args.crf), ("--pix-fmt", args.pix_fmt),
                                      ("--encoder-opt", args.encoder_opt), ("--stats", getattr(args, "stats", None)))
             if value]
    if given:
        _warn(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to video; an image is written as PNG")


def _routes_with_pcsr(engine) -> bool:
    from ..routing.pcsr import PCSRRouter

    return isinstance(engine.router, PCSRRouter)


def _follow_delivery_tag(src: Path, s: Settings, quiet: bool):
    """A file ``vidsr downscale`` made names the upscaler and scale it was made for: unless
    ``--model`` or ``--scale`` asks otherwise, use them, over a preset's model and scale (a preset
    is an operating point for general video; the file was made for its model). Either way, say so.
    Returns the tag (None: the file has none)."""
    from ..delivery import tags

    tag = tags.read(src)
    if tag is None:
        return None
    from ..models import registry

    made_for = f"{src.name} was downscaled for {tag.upscaler} x{tag.scale} (--mode {tag.mode})"

    def say(msg: str) -> None:
        if not quiet:
            print(f"vidsr: {made_for}; {msg}", file=sys.stderr)

    preset_scale = s.scale if s.scale_given and not s.scale_flag else None
    if not s.scale_flag:
        s.scale = tag.scale  # the file's scale, whatever model or router is asked for: only --scale changes it
    if s.model_flag or (s.scale_flag and s.scale != tag.scale):
        if (s.model, s.scale) != (tag.upscaler, tag.scale):
            asked = [f"--model {s.model}"] * s.model_flag + [f"--scale {s.scale}"] * (s.scale_flag and s.scale != tag.scale)
            say(f"using {s.model or 'the default model'} x{s.scale} as asked ({' and '.join(asked)})")
        return tag
    try:
        router = registry.architecture(registry.manifest_entry(tag.upscaler, tag.scale)["architecture"]).router
    except (VidsrError, KeyError, TypeError):
        say("no such model ships here; upscaling with the default model (--model to choose)")
        s.scale = tag.scale
        return tag
    if s.router in ("arm", "pcsr") and router != s.router:
        say(f"it routes with {router.upper()}, so --router {s.router} takes another model (at x{s.scale})")
        return tag
    overridden = [f"model {s.model}"] * (s.model is not None and s.model != tag.upscaler)
    overridden += [f"x{preset_scale}"] * (preset_scale is not None and preset_scale != tag.scale)
    s.model, s.scale = tag.upscaler, tag.scale
    if not quiet:
        print(f"vidsr: {made_for}; upscaling with it" + (f" instead of the preset's {' and '.join(overridden)}"
                                                          if overridden else ""), file=sys.stderr)
    return tag


def _run_video(args, s: Settings, src: Path, dst: Path, engine, interpolation: str, dearer=(), on_frame=None,
               segment=None, delivery=None):
    from ..pipeline import VideoJob, upscale_video

    job = VideoJob(
        input=src,
        output=dst,
        scale=s.scale,
        encode=s.encode_options(),
        engine=engine,
        interpolation=interpolation,
        budget=s.budget,
        fps_target=s.fps_target if engine is not None else None,
        skip_damaged=args.skip_damaged,
        reuse=not args.no_reuse,
        predictor=args.predictor,
        progress=not args.quiet,
        dearer=list(dearer),
        segment=segment,
        delivery=delivery,
    )
    summary = run_with_stats(job, args.stats, on_frame, lambda j: upscale_video(j, _warn))
    if not args.quiet:
        print(_summary_line(dst, summary, s), file=sys.stderr)
    return summary


def _summary_line(dst, summary, s: Settings) -> str:
    line = f"wrote {dst}: {summary.frames} frames in {summary.seconds:.1f} s ({summary.fps:.1f} fps"
    if summary.fps_target:
        steady = summary.steady_fps
        if steady is not None:
            line += f"; {steady:.1f} fps after start-up"
        line += f", target {summary.fps_target:g}"
    line += ")"
    lost = sum(d.count for d in summary.skipped)
    if lost:
        line += f", {lost} damaged frames skipped"
    shares = summary.route_shares()
    if shares:
        line += "; mean budget {:.0%} of full network; routes ".format(summary.budget_sum / max(summary.frames, 1))
        line += ", ".join(f"{k} {v:.0%}" for k, v in shares.items())
    return line
