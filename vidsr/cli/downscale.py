"""``vidsr downscale INPUT``: a low-resolution video or image that vidsr's upscaler restores better
(delivery: downscale, store or ship, upscale on the client)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputError, SettingsError
from .options import Parser, run_with_stats

SCALES = (2, 4)


def build_parser() -> argparse.ArgumentParser:
    from ..delivery.downscale import DEFAULT_MODE, MODES

    p = Parser(
        prog="vidsr downscale",
        description="Downscale a video (re-encoded, keeping audio, subtitles, timestamps and colour metadata) "
        "or an image (PNG) for delivery: the output is tagged with the upscaler it was made for, so "
        "`vidsr OUTPUT` upscales it with that model and scale. `vidsr downscale --list` lists the "
        "(upscaler, scale) pairs a downscaler ships for.",
    )
    p.add_argument("input", type=Path, help="video or image file")
    p.add_argument("-o", "--output", type=Path, help="output file (default: INPUT_down<scale>.mp4, or .png for images)")
    p.add_argument("--scale", type=int, choices=SCALES, help="downscaling factor (default 2)")
    p.add_argument("--model", help="the upscaler the client runs (default: the delivery upscaler of the scale, "
                   "trained on decoded video; vidsr downscale --list lists what ships)")
    p.add_argument("--mode", choices=MODES, default=DEFAULT_MODE,
                   help="bicubic (default): the antialiased bicubic downscale the upscalers are trained to invert; "
                   "fast: the learned downscaler shipped for the upscaler; hcd: bicubic, then each frame refined "
                   "against the full upscaler through a codec stand-in (hundreds of times slower). "
                   "BENCHMARKS.md has what each saves")
    p.add_argument("--preset", help="a preset name or .toml file: its encoder settings and container are used")
    p.add_argument("--codec", help="any FFmpeg video encoder (default libx264, or the container's own)")
    p.add_argument("--crf", type=int, help="constant rate factor (default: encoder's); --mode hcd refines for it")
    p.add_argument("--encoder-opt", action="append", default=[], metavar="KEY=VALUE", help="encoder option, repeatable")
    p.add_argument("--pix-fmt", help="output pixel format (default: the input's, where the encoder takes it)")
    p.add_argument("--stats", type=Path, help="write one JSON line per frame (ms per stage)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    p.add_argument("--skip-damaged", action="store_true", help="drop damaged frames (each reported) instead of failing")
    p.add_argument("-y", "--overwrite", action="store_true", help="overwrite the output if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return p


def main(argv: list[str]) -> int:
    if argv[:1] == ["--list"]:
        from ..delivery.downscale import delivery_upscalers
        from ..models import registry

        delivery = [(name, scale) for scale in SCALES for name in delivery_upscalers(scale)]
        pairs = delivery + [(e["upscaler"], e["scale"]) for e in registry.shipped_downscalers()
                            if (e["upscaler"], e["scale"]) not in delivery]
        for name, scale in pairs:
            modes = "bicubic, fast, hcd" if registry.downscaler_entry(name, scale) else "bicubic, hcd"
            role = " (the delivery upscaler: trained on decoded video)" if (name, scale) in delivery else ""
            print(f"{name} x{scale}: --mode {modes}{role}")
        return 0
    run(build_parser().parse_args(argv))
    return 0


def encoder_settings(args):
    """(scale, the preset's container suffix or None, the ``EncodeOptions``): the flags over the
    preset's encoder settings (its upscaling settings do not apply here); checked as the upscaler
    checks them."""
    from .. import presets
    from ..delivery.downscale import default_upscaler
    from ..io.encoder import EncodeOptions
    from .upscale import _encoder_options

    preset = presets.load(args.preset) if args.preset else presets.Preset("none")
    scale = args.scale or 2
    codec = args.codec if args.codec is not None else preset.get("codec")
    crf = args.crf if args.crf is not None else preset.get("crf")
    pix_fmt = args.pix_fmt if args.pix_fmt is not None else preset.get("pix_fmt")
    options = {**preset.encoder_options, **_encoder_options(args.encoder_opt)}
    if args.model is None:
        default_upscaler(scale, args.mode)  # a scale no downscaler ships for fails here, before any work
    return scale, preset.get("container"), EncodeOptions(codec=codec, crf=crf, pix_fmt=pix_fmt, options=options)


def run(args, on_frame=None, segment=None):
    """Downscale ``args.input`` as the flags say; returns the run's ``Summary`` (an image: one frame).
    ``on_frame``: called with each frame's record once encoded; ``segment``: only the video frames
    with timestamps in [start, end), into a video-only file (``vidsr batch``)."""
    from ..delivery.downscale import DownscaleJob, FrameDownscaler, default_upscaler, downscale_image, downscale_video, qp_for
    from ..engine import resolve_device
    from ..io.images import is_image
    from ..io.output_paths import default_output, prepare_outputs, video_output
    from ..io.sink import container_format_for, video_encoder_for
    from ..pipeline import Summary
    from .upscale import _warn, warn_encoder_flags_on_image

    scale, container, enc = encoder_settings(args)
    src: Path = args.input
    if not src.exists():
        raise InputError(f"{src}: no such file")
    image = is_image(src)
    if image:
        warn_encoder_flags_on_image(args)
        dst = args.output or default_output(src, scale, ".png", "down")
    else:
        dst = video_output(src, args.output, scale, enc.codec, container, label="down")
    prepare_outputs(src, dst, args.stats, args.overwrite)
    from ..delivery import tags

    if args.preset and segment is None:
        from .. import presets

        values = presets.load(args.preset).values
        # the settings a user would expect to matter here (a model, a scale, a speed), not routing details
        unused = sorted(k for k in ("model", "scale", "fps_target", "budget") if k in values
                        and not (k == "budget" and values[k] >= 1))
        if unused:
            _warn(f"preset {args.preset}: {', '.join(unused)} {'is an upscaling setting' if len(unused) == 1 else 'are upscaling settings'}; "
                  "vidsr downscale takes only its encoder settings and container")
    earlier = tags.read(src)
    if earlier is not None and segment is None:  # a batch's segments would each say it
        _warn(f"{src.name} is already a delivery file (x{earlier.scale} for {earlier.upscaler}); the new tag names "
              f"this x{scale} step only, so a client restores {src.name}, not the picture it was made from")
    upscaler = args.model or default_upscaler(scale, args.mode)
    encoder = "png" if image else video_encoder_for(container_format_for(dst), enc.codec)[0].name
    fd = FrameDownscaler(upscaler, scale, args.mode, qp_for(encoder, enc.crf), resolve_device(args.device))
    if image:
        downscale_image(fd, src, dst)
        if not args.quiet:
            print(f"wrote {dst} (for {upscaler} x{scale})", file=sys.stderr)
        return Summary(frames=1)
    job = DownscaleJob(src, dst, fd, enc,
                       skip_damaged=args.skip_damaged, progress=not args.quiet, segment=segment)
    summary = run_with_stats(job, args.stats, on_frame, lambda j: downscale_video(j, _warn))
    if not args.quiet:
        lost = sum(d.count for d in summary.skipped)
        print(f"wrote {dst}: {summary.frames} frames in {summary.seconds:.1f} s ({summary.fps:.1f} fps), "
              f"--mode {args.mode} for {upscaler} x{scale}" + (f", {lost} damaged frames skipped" if lost else ""),
              file=sys.stderr)
    return summary
