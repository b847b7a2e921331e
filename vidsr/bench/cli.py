"""``vidsr bench``: benchmarks anyone can rerun. Each prints a markdown table (the form used in
BENCHMARKS.md) and can save its raw numbers as JSON. Every claim is a ratio against a baseline
measured in the same run."""

from __future__ import annotations

import argparse
import json
import sys
import platform
from pathlib import Path

from ..cli.options import Parser, at_least, positive_float
from ..errors import SettingsError



def machine() -> str:
    import os

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), Python {platform.python_version()}"


def main(argv: list[str]) -> int:
    p = Parser(prog="vidsr bench", description=__doc__)
    sub = p.add_subparsers(dest="which", required=True)
    pp = sub.add_parser("overhead", help="vidsr --model lanczos vs a plain PyAV loop at 1080p; peak RSS vs length")
    pp.add_argument("--repeats", type=at_least(1), default=3)
    pp.add_argument("--seconds", type=positive_float, default=4.0)
    pp.add_argument("--network", help="also measure peak RSS with this model")
    pb = sub.add_parser("batch", help="vidsr batch against one process, 1 vs 2 workers, segments, resume after a kill")
    pb.add_argument("--clips", type=at_least(1), default=8)
    pb.add_argument("--seconds", type=positive_float, default=4.0, help="length of each clip")
    pb.add_argument("--long-seconds", type=positive_float, default=24.0, help="length of the clip split into segments")
    pb.add_argument("--segment-seconds", type=positive_float, default=6.0)
    pv = sub.add_parser("video", help="--fps-target against every fixed configuration at the same fps, on real clips")
    pv.add_argument("--val-dir", type=Path, help="validation images (default ../shared/data/val or $VIDSR_DATA/val)")
    pv.add_argument("--clips", nargs="+", default=None, help="clips to run (default: all)")
    pv.add_argument("--seconds", type=positive_float, default=2.0)
    pv.add_argument("--models", nargs="+", help="routed models whose routes are the fixed configurations (default: all)")
    pv.add_argument("--parts", nargs="+", choices=("targets", "predictors", "still"),
                    default=["targets", "predictors", "still"],
                    help="targets: --fps-target against the fixed configurations; predictors: how much of the "
                    "oracle's gain each route predictor reaches; still: keeping the still pixels of tiles that run "
                    "again, at drawn budgets, against computing them (default: all three)")
    pd = sub.add_parser("delivery", help="downscale -> encode -> upscale against full resolution and Lanczos, BD-rates")
    pd.add_argument("--val-dir", type=Path, help="validation images (default ../shared/data/val or $VIDSR_DATA/val)")
    pd.add_argument("--clips", nargs="+", default=None, help="clips to run (default: all)")
    pd.add_argument("--frames", type=at_least(1), default=16)
    pd.add_argument("--scales", type=int, nargs="+", choices=(2, 4), default=[2, 4])
    pd.add_argument("--codecs", nargs="+", default=["libx264", "libx265"])
    pd.add_argument("--model", help="the upscaler the downscalers are made for (a downscaler must ship for it; "
                    "default: vidsr downscale's default per scale)")
    pd.add_argument("--baseline-model", default="arm-plain", help="the upscaler of pipeline B, what users run today "
                    "(default: arm-plain)")
    pd.add_argument("--plot", type=Path, help="write the RD curves here (PNG; needs matplotlib, the bench extra)")
    pd.add_argument("--hcd-qp", type=float, help="refine D-hcd once, at this QP, and encode that LR at every CRF "
                    "(default: refined at each CRF's own QP, as vidsr downscale --mode hcd --crf does; 5x cheaper)")
    for name, helptext in (("quality", "PSNR-Y/SSIM of every shipped model and route on validation images vs bicubic"),
                           ("routing", "quality against measured cost for the ARM and PCSR routers"),
                           ("fps", "fps tracking and PSNR at fps targets on a 360p -> 720p clip")):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("--val-dir", type=Path, help="validation images (default ../shared/data/val or $VIDSR_DATA/val)")
        q.add_argument("--scales", type=int, nargs="+", choices=(2, 3, 4), default=[2, 4])
        if name == "routing":
            q.add_argument("--models", nargs="+", metavar="NAME|PATH",
                           help="only these routed models (shipped names or .safetensors paths; default: every shipped one)")
            q.add_argument("--tile", type=int, metavar="PX",
                           help="the routers' tile side in LR pixels (default: the engine's, 64); "
                           "larger tiles pay their context less often but route more coarsely")
            q.add_argument("--repeats", type=at_least(1), default=2,
                           help="timed passes per row, the best kept (default 2); time ratios on a busy "
                           "or drifting machine settle with more")
        if name == "fps":
            q.add_argument("--targets", type=positive_float, nargs="+", help="fps targets (default: spread between the measured ends)")
            q.add_argument("--seconds", type=positive_float, default=6.0)
            q.add_argument("--model", help="the routed model (default: the best shipped for x2)")
            q.add_argument("--repeats", type=at_least(1), default=1,
                           help="runs per target; the table shows means and the PSNR-Y spread (default 1)")
    for q in sub.choices.values():
        q.add_argument("--json", type=Path, help="also write the raw results here")
    args = p.parse_args(argv)
    _check_up_front(args)  # before the data: these say what is wrong with the command itself
    if hasattr(args, "val_dir"):  # the benchmarks built from the validation images: refuse a missing folder up front
        from ..errors import SettingsError
        from ..train.data import default_folder, list_images

        args.val_dir = args.val_dir or default_folder("val")
        try:
            list_images(args.val_dir)
        except FileNotFoundError as e:
            raise SettingsError(f"{e} (give the validation images with --val-dir or $VIDSR_DATA)") from None
    print(f"machine: {machine()}\n")
    if args.which == "overhead":
        from .overhead import report, run

        res = run(args.repeats, args.seconds, network=args.network)
    elif args.which == "batch":
        from .batch import report, run

        if args.clips < 2:
            p.error("--clips must be at least 2")
        res = run(args.clips, args.seconds, args.long_seconds, args.segment_seconds)
    elif args.which == "delivery":
        from .delivery import CLIPS, CODECS, report, run

        clips = args.clips or list(CLIPS)
        unknown = set(clips) - set(CLIPS)
        if unknown:
            p.error(f"unknown clip(s) {', '.join(sorted(unknown))}; choose from {', '.join(CLIPS)}")
        bad = set(args.codecs) - set(CODECS)
        if bad:
            p.error(f"unknown codec(s) {', '.join(sorted(bad))}; choose from {', '.join(CODECS)}")
        if args.plot is not None:  # checked before the run, not after half an hour of it
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                raise SettingsError("--plot needs matplotlib (pip install -e '.[bench]')") from None
        res = run(args.val_dir, clips, args.frames, args.scales, args.codecs, args.model, args.baseline_model,
                  progress=lambda m: print(m, file=sys.stderr), plot=args.plot, hcd_qp=args.hcd_qp)
    elif args.which == "video":
        from .video import CLIPS, report, run

        clips = args.clips or list(CLIPS)
        unknown = set(clips) - set(CLIPS)
        if unknown:
            p.error(f"unknown clip(s) {', '.join(sorted(unknown))}; choose from {', '.join(CLIPS)}")
        res = run(args.val_dir, clips, args.seconds, args.models, tuple(args.parts))
    elif args.which == "quality":
        from .quality import report, run

        res = run(args.val_dir, args.scales)
    elif args.which == "routing":
        from .routing import report, run

        from ..presets import MIN_TILE

        if args.tile is not None and args.tile < MIN_TILE:
            p.error(f"--tile must be at least {MIN_TILE}")
        res = run(args.val_dir, args.scales, repeats=args.repeats, models=args.models, tile=args.tile)
    else:
        from .fps import report, run

        res = run(args.val_dir, args.targets, args.seconds, args.model, args.repeats)
    print(report(res))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), **res}, indent=1, default=str))
    return 0


def _check_up_front(args) -> None:
    """What a benchmark would otherwise find out after minutes, or as a traceback: where it writes
    its results, the model it is given, the photograph the sample clips are made from."""
    if args.json is not None and args.json.is_dir():
        raise SettingsError(f"--json {args.json} is a folder; name a file")
    model = getattr(args, "model", None)
    if model:
        from ..models.weights import check_model_name

        check_model_name(model)
    sample = args.which in ("overhead", "batch") or (args.which == "video" and "sample" in (args.clips or ["sample"]))
    if sample:
        root = Path(__file__).resolve().parents[2] / "samples"
        sys.path.insert(0, str(root))
        from make_sample import DEFAULT_PHOTO  # noqa: E402 - the sample's own generator

        if not DEFAULT_PHOTO.is_file():
            raise SettingsError(f"{DEFAULT_PHOTO}: not found; the {args.which} benchmark renders its clips from this "
                                "training photograph (../shared/data beside the checkout, or $VIDSR_DATA)")
