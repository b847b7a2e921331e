"""``vidsr INPUT``: upscale a video or an image from the command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import OutputError, SettingsError


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line (``vidsr: error: ...``), exit code 2."""

    def error(self, message):
        raise SettingsError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="vidsr",
        description="Upscale a video (re-encoded, keeping audio, subtitles, timestamps and colour "
        "metadata) or an image (written as PNG). Subcommands: vidsr train, vidsr bench.",
    )
    p.add_argument("input", nargs="?", type=Path, help="video or image file")
    p.add_argument("-o", "--output", type=Path, help="output file (default: INPUT_x<scale>.mp4, or .png for images)")
    p.add_argument("--scale", type=int, choices=(2, 3, 4), default=2, help="upscaling factor (default 2)")
    p.add_argument("--model", help="model name or .safetensors path (default: the best shipped model for the scale)")
    p.add_argument("--budget", type=float, default=None,
                   help="fraction of the full network's cost to spend per frame, 0..1 (default 1: full network)")
    p.add_argument("--codec", default="libx264", help="any FFmpeg video encoder (libx264, libx265, libsvtav1, ffv1, ...)")
    p.add_argument("--crf", type=int, help="constant rate factor for x264/x265/SVT-AV1/VPx (default: encoder's)")
    p.add_argument("--encoder-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="encoder option, repeatable (e.g. preset=veryfast)")
    p.add_argument("--pix-fmt", help="output pixel format (default: the input's, where the encoder takes it)")
    p.add_argument("--tile", type=int, help="LR tile side (default 128; 32 with a router)")
    p.add_argument("--overlap", type=int, help="LR context pixels around each tile (default: the model's receptive radius)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    p.add_argument("--skip-damaged", action="store_true", help="drop damaged frames (each reported) instead of failing")
    p.add_argument("-y", "--overwrite", action="store_true", help="overwrite the output if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.add_argument("--list-models", action="store_true", help="list models with scale, size and cost, and exit")
    return p


def _encoder_options(items: list[str]) -> dict:
    opts = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SettingsError(f"--encoder-opt expects KEY=VALUE, got {item!r}")
        opts[key] = value
    return opts


def _pick_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SettingsError("--device cuda asked for, but torch sees no CUDA device")
    if not (name == "cpu" or name.startswith("cuda")):
        raise SettingsError(f"unknown device {name!r} (auto, cpu, cuda, cuda:N)")
    return name


def _warn(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"vidsr: warning: {msg}", file=sys.stderr)


def list_models() -> int:
    from .models import registry

    print(f"{'model':<12} {'scale':>5} {'params':>8} {'MACs/px':>9}  {'val PSNR-Y':>10}  routes (MACs per output pixel)")
    for d in registry.list_models():
        v = d.info.get("validation", {})
        psnr = f"{v['psnr_y']:.2f}" if v else "-"
        routes = ", ".join(f"{r.name} {r.macs_per_pixel:,.0f}" for r in d.routes) if len(d.routes) > 1 else ""
        default = " (default)" if d.weights_file and registry.default_model(d.scale) == d.name else ""
        print(f"{d.name:<12} {'x' + str(d.scale):>5} {d.params:>8,} {d.macs_per_pixel:>9,.0f}  {psnr:>10}  {routes}{default}")
    return 0


def default_output(src: Path, scale: int, image: bool, container_ext: str) -> Path:
    return src.with_name(f"{src.stem}_x{scale}{'.png' if image else container_ext}")


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.list_models:
        return list_models()
    if args.input is None:
        raise SettingsError("an INPUT file is required (vidsr --help for usage)")
    if args.budget is not None and not 0.0 <= args.budget <= 1.0:
        raise SettingsError(f"--budget must be between 0 and 1, got {args.budget}")
    if args.tile is not None and args.tile < 8:
        raise SettingsError("--tile must be at least 8")
    if args.overlap is not None and args.overlap < 0:
        raise SettingsError("--overlap must be >= 0")

    from .io.images import is_image

    src: Path = args.input
    if not src.exists():
        from .errors import InputError

        raise InputError(f"{src}: no such file")
    image = is_image(src)
    if image:
        dst = args.output or default_output(src, args.scale, True, ".png")
    else:
        from .io.sink import can_hold, container_format_for
        from .io.source import open_source

        dst = args.output
        if dst is None:
            container, info = open_source(src)  # early, clear errors for bad input; closed at once
            container.close()
            fits_mp4 = can_hold("mp4", info, args.codec) if _known_encoder(args.codec) else True
            dst = default_output(src, args.scale, False, ".mp4" if fits_mp4 else (src.suffix or ".mkv"))
        else:
            container_format_for(dst)  # unknown extension -> clear error before any work
    _check_paths(src, dst, args.overwrite)

    from .engine import Engine
    from .models import registry

    model_name = args.model or registry.default_model(args.scale)
    if args.model is None and model_name == "lanczos":
        _warn(f"no network ships for x{args.scale}; using Lanczos interpolation")
    upscaler = registry.load(model_name, args.scale, device=_pick_device(args.device))
    interpolation_only = upscaler.descriptor.params == 0
    budget = 1.0 if args.budget is None else args.budget

    def make_engine():
        return Engine(upscaler, tile=args.tile, context=args.overlap)

    if image:
        from .io.images import upscale_image

        upscale_image(make_engine(), src, dst, budget=budget)
        if not args.quiet:
            print(f"wrote {dst}", file=sys.stderr)
        return 0

    from .io.sink import EncodeOptions
    from .pipeline import VideoJob, upscale_video

    job = VideoJob(
        input=src,
        output=dst,
        scale=args.scale,
        encode=EncodeOptions(codec=args.codec, crf=args.crf, pix_fmt=args.pix_fmt, options=_encoder_options(args.encoder_opt)),
        engine=None if interpolation_only else make_engine(),
        interpolation=model_name if interpolation_only else "lanczos",
        budget=budget,
        skip_damaged=args.skip_damaged,
        progress=not args.quiet,
    )
    summary = upscale_video(job, _warn)
    if not args.quiet:
        routes = ""
        if summary.route_pixels and summary.frames:
            routes = "; routes " + ", ".join(f"{k} {v / summary.frames:.0%}" for k, v in summary.route_pixels.items())
        lost = sum(d.count for d in summary.skipped)
        skipped = f", {lost} damaged frames skipped" if lost else ""
        print(f"wrote {dst}: {summary.frames} frames in {summary.seconds:.1f} s ({summary.fps:.1f} fps){skipped}{routes}",
              file=sys.stderr)
    return 0


def _known_encoder(name: str) -> bool:
    import av

    try:
        av.Codec(name, "w")
        return True
    except Exception:
        return False


def _check_paths(src: Path, dst: Path, overwrite: bool) -> None:
    if dst.resolve() == src.resolve() or (dst.exists() and os.path.samefile(dst, src)):
        raise OutputError(f"{dst}: output is the input file; choose another -o")
    if dst.is_dir():
        raise OutputError(f"{dst}: is a directory")
    if not dst.parent.is_dir():
        raise OutputError(f"{dst.parent}: output folder does not exist")
    if dst.exists() and not overwrite:
        raise OutputError(f"{dst}: already exists (use -y to overwrite)")
