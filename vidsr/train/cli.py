"""``vidsr train``: the command-line front end of the trainer."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..cli.options import Parser, at_least, finite_float, positive_float
from ..errors import SettingsError
from ..models import registry
from .trainer import CLIP_GRAD_NORM



def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="vidsr train",
        description="Train a network on image folders. Re-running the same command resumes from "
        "OUT/checkpoint.pt; a finished run leaves OUT/<arch>-x<scale>.safetensors and manifest.json. "
        "vidsr train --recipe NAME trains a shipped model as it was trained (recipes/).",
    )
    p.add_argument("--recipe", metavar="NAME|FILE",
                   help="train from a recipe (recipes/NAME.toml or a file): its init run first, then its segments, "
                   "in RUNS/NAME; rerun to resume")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="with --recipe: the folder of run folders (default runs/)")
    p.add_argument("--data", type=Path, help="the folder holding train/ and val/ (default ../shared/data or $VIDSR_DATA; "
                   "--train-dir and --val-dir name them one by one)")
    trainable = [a.name for a in registry.ARCHITECTURES.values() if a.trainable]
    p.add_argument("--arch", choices=trainable, help="architecture to train")
    p.add_argument("--scale", type=int, choices=registry.SCALES, default=2)
    p.add_argument("--out", type=Path, help="run folder (default: runs/<arch>-x<scale>)")
    p.add_argument("--iterations", type=at_least(1), default=10000)
    p.add_argument("--time-limit", type=finite_float, help="stop after this many seconds (checkpointed; rerun resumes)")
    p.add_argument("--batch", type=at_least(1), default=16)
    p.add_argument("--patch", type=at_least(8), default=48, help="LR patch side")
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--seed", type=at_least(0), default=0)
    p.add_argument("--train-dir", type=Path, help="training images (default: ../shared/data/train or $VIDSR_DATA/train)")
    p.add_argument("--val-dir", type=Path, help="validation images (default: ../shared/data/val or $VIDSR_DATA/val)")
    p.add_argument("--predownscale", type=at_least(1), default=2, help="downscale training images by this first (JPEG cleanup)")
    p.add_argument("--val-every", type=at_least(1), default=1000)
    p.add_argument("--checkpoint-every", type=at_least(1), default=200)
    p.add_argument("--threads", type=at_least(1), help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--config", type=json.loads, default={}, help='architecture options as JSON, e.g. \'{"blocks": 4}\'')
    p.add_argument("--extend", action="store_true",
                   help="continue a run (finished or not) to --iterations, restarting the cosine schedule at --lr")
    p.add_argument("--clip", type=finite_float, default=CLIP_GRAD_NORM,
                   help=f"max global gradient norm, 0 for none (default {CLIP_GRAD_NORM})")
    p.add_argument("--width-power", type=finite_float,
                   help="ARM only: sample each width with probability ~ cost^P (default 2, as published; "
                   "1 trains the narrow widths more)")
    p.add_argument("--select", choices=("widths", "full"),
                   help="ARM only: keep the state best by the mean gain over every width (default) or by "
                   "the full width alone (for a supernet shipped mainly as a full network)")
    p.add_argument("--full-width-steps", type=at_least(0), metavar="N",
                   help="ARM only: train the full width alone for the first N steps, then draw widths "
                   "(default: a tenth of --iterations from scratch, 0 with --init)")
    p.add_argument("--sort-channels", action="store_true",
                   help="with --init, ARM plain stacks only: first reorder each hidden layer's channels by their "
                   "importance to the full width (its function unchanged), so the narrow widths start from the "
                   "units it uses most")
    p.add_argument("--init", type=Path, metavar="WEIGHTS",
                   help="start a new run from a .safetensors file (listed in a manifest beside it; any scale, so "
                   "an x2 net can start an x4 run): tensors of matching name and shape are copied, the rest "
                   "start fresh; at the same scale a supernet widens a narrower one, its old widths kept)")
    p.add_argument("--stage1-fraction", type=finite_float,
                   help="PCSR only: share of --iterations for the light upsampler + classifier stage "
                   "(default 0.35; 1 with --init retrains only those over a trained backbone and heavy head)")
    p.add_argument("--ema", type=finite_float, default=0.0, metavar="DECAY",
                   help="keep a moving average of the weights with this decay (e.g. 0.999) and validate, "
                   "choose and export it instead of the raw weights (default: off; may be added on a resume)")
    p.add_argument("--loss", choices=("l1", "l2"), default="l1",
                   help="reconstruction loss: l1 (default, as published) or l2, the mean squared error PSNR "
                   "measures (for a last fine-tune; may be changed on a resume)")
    p.add_argument("--codec-crfs", type=int, nargs="+", metavar="CRF",
                   help="train on LR encoded by a real --codec at these CRFs and decoded (an upscaler for decoded "
                   "delivery video; validation through the same codec)")
    p.add_argument("--codec", choices=("libx264", "libx265"), help="with --codec-crfs: the encoder (default libx264)")
    p.add_argument("--hcd-against", metavar="UPSCALER",
                   help="train on HCD's LR: the bicubic downscale refined against this shipped upscaler, as vidsr "
                   "downscale --mode hcd delivers it (a delivery upscaler for HCD video; validation LR the same)")
    p.add_argument("--hcd-qp", type=finite_float, help="with --hcd-against: the QP HCD refines at (default 26)")
    p.add_argument("--finish", action="store_true",
                   help="with the run's own arguments: export its best validated weights now and stop (a run cut short)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--publish", type=Path, nargs="?", const=True, metavar="RUN",
                   help="copy a finished run's weights into vidsr's shipped set and exit; with --recipe (no RUN): "
                   "after training, ship it under the recipe's model name")
    p.add_argument("--name", help="with --publish: the model name to ship it as (default: its architecture's)")
    p.add_argument("--sharpen", action="store_true",
                   help="fit the sharpened Lanczos base for --scale instead (a 7-tap LR prefilter, least squares in "
                   "closed form, seconds) into --out (default runs/sharp); with --publish, into vidsr's shipped set")
    return p


def _check_device(device: str) -> None:
    """A device torch can train on here, or one line saying why not."""
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise SettingsError(f"unknown --device {device!r}; cpu, cuda, cuda:1, ...") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SettingsError(f"--device {device}: torch sees no CUDA device here")
    if dev.type not in ("cpu", "cuda"):
        raise SettingsError(f"--device {device}: vidsr trains on cpu or cuda")


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from .trainer import TrainConfig, Trainer, publish

    if args.recipe:
        return _run_recipe(args)
    if args.sharpen:
        return _fit_sharpen(args)
    if args.publish is True:
        raise SettingsError("--publish needs a RUN folder (or --recipe)")
    if args.publish:
        try:
            entry = publish(args.publish, name=args.name)
        except FileNotFoundError as e:
            raise SettingsError(str(e)) from None
        print(f"published {entry['name']} as {entry['file']} (val PSNR-Y {entry['validation']['psnr_y']} dB)")
        return 0
    if args.name is not None:
        raise SettingsError("--name goes with --publish RUN")
    if not args.arch:
        raise SettingsError("--arch is required (or --publish RUN)")
    for flag, value in (("--width-power", args.width_power), ("--select", args.select),
                        ("--full-width-steps", args.full_width_steps)):
        if value is not None and registry.architecture(args.arch).router != "arm":
            raise SettingsError(f"{flag} applies to ARM supernets, not {args.arch}")
    if args.time_limit is not None and args.time_limit < 0:
        raise SettingsError(f"--time-limit must be 0 (stop at once, checkpointed) or more, not {args.time_limit:g}")
    if args.clip < 0:
        raise SettingsError(f"--clip must be 0 (none) or more, not {args.clip:g}")
    if not isinstance(args.config, dict):
        raise SettingsError("--config must be a JSON object, e.g. '{\"blocks\": 4}'")
    _check_device(args.device)
    if args.data is not None:  # the folder holding train/ and val/, where the folders are not named one by one
        args.train_dir = args.train_dir or args.data / "train"
        args.val_dir = args.val_dir or args.data / "val"
    if args.codec is not None and not args.codec_crfs:
        raise SettingsError("--codec goes with --codec-crfs (the CRFs to train at)")
    if args.hcd_qp is not None and not args.hcd_against:
        raise SettingsError("--hcd-qp goes with --hcd-against (the upscaler HCD refines against)")
    if args.hcd_against:
        if args.hcd_qp is not None and not 0 <= args.hcd_qp <= 51:
            raise SettingsError(f"--hcd-qp must be between 0 and 51, not {args.hcd_qp:g}")
        try:
            entry = registry.manifest_entry(args.hcd_against, args.scale)
        except SettingsError as e:
            raise SettingsError(f"--hcd-against: {e}") from None
        if entry is None:
            raise SettingsError(f"--hcd-against {args.hcd_against}: an interpolation, not a network HCD can refine against")
    if args.sort_channels and args.init is None:
        raise SettingsError("--sort-channels goes with --init (it reorders trained weights)")
    if args.full_width_steps is not None:
        if args.full_width_steps < 0:
            raise SettingsError(f"--full-width-steps must be 0 or more, not {args.full_width_steps}")
    if args.stage1_fraction is not None:
        if registry.architecture(args.arch).router != "pcsr":
            raise SettingsError(f"--stage1-fraction applies to PCSR, not {args.arch}")
        if not 0 <= args.stage1_fraction <= 1:
            raise SettingsError(f"--stage1-fraction must be between 0 and 1, not {args.stage1_fraction}")
    cfg = TrainConfig(
        arch=args.arch, scale=args.scale, out=args.out or Path("runs") / f"{args.arch}-x{args.scale}",
        iterations=args.iterations, batch=args.batch, patch=args.patch, lr=args.lr, seed=args.seed,
        train_dir=args.train_dir, val_dir=args.val_dir, predownscale=args.predownscale,
        val_every=args.val_every, checkpoint_every=args.checkpoint_every, time_limit=args.time_limit,
        threads=args.threads, device=args.device, model_config=args.config, extend=args.extend,
        clip=args.clip or None, **({} if args.width_power is None else {"width_power": args.width_power}),
        **({} if args.select is None else {"select": args.select}),
        **({} if args.stage1_fraction is None else {"stage1_fraction": args.stage1_fraction}), init=args.init,
        full_width_steps=args.full_width_steps, ema=args.ema, loss=args.loss, sort_channels=args.sort_channels,
        codec_crfs=args.codec_crfs, **({} if args.codec is None else {"codec": args.codec}),
        hcd_against=args.hcd_against, **({} if args.hcd_qp is None else {"hcd_qp": args.hcd_qp}),
    )
    if args.finish and not (cfg.out / "checkpoint.pt").exists():  # before the Trainer makes the folder
        raise SettingsError(f"{cfg.out} has no checkpoint: there is no run to finish")
    try:
        trainer = Trainer(cfg, progress=not args.quiet)
    except (FileNotFoundError, ValueError) as e:
        raise SettingsError(str(e)) from None
    except TypeError as e:  # --config options the architecture does not take
        raise SettingsError(f"--config {json.dumps(args.config)} does not fit {args.arch}: {e}") from None
    try:
        entry = trainer.finish() if args.finish else trainer.run()
    except FileNotFoundError as e:
        raise SettingsError(str(e)) from None
    if entry is None:
        print(f"stopped at step {trainer.step}/{cfg.iterations}; rerun the same command to resume")
        return 0
    v = entry["validation"]
    print(f"done: {cfg.out / entry['file']}  PSNR-Y {v['psnr_y']:.2f} dB (bicubic {v['bicubic_psnr_y']:.2f})")
    return 0


def _fit_sharpen(args) -> int:
    from .data import default_folder
    from .sharpen import fit

    if args.arch or args.init or args.name or args.publish not in (None, True):
        raise SettingsError("--sharpen fits the base for --scale: drop --arch, --init, --name and --publish's RUN")
    if args.data is not None:
        args.train_dir = args.train_dir or args.data / "train"
        args.val_dir = args.val_dir or args.data / "val"
    out = registry.SHIPPED_DIR if args.publish else (args.out or Path("runs") / "sharp")
    try:
        entry = fit(args.train_dir or default_folder("train"), args.val_dir or default_folder("val"), args.scale, out,
                    args.predownscale)
    except FileNotFoundError as e:
        raise SettingsError(str(e)) from None
    v = entry["validation"]
    print(f"done: {out / entry['file']}  PSNR-Y {v['psnr_y']:.2f} dB (Lanczos {v['lanczos_psnr_y']:.2f}, "
          f"bicubic {v['bicubic_psnr_y']:.2f})")
    return 0


def _run_recipe(args) -> int:
    from . import recipes

    training_flags = [a for a in ("arch", "out", "init", "name") if getattr(args, a) is not None]
    if training_flags:
        raise SettingsError(f"--recipe sets the training; drop --{', --'.join(training_flags)}")
    entry = recipes.train(args.recipe, args.runs, args.threads, args.time_limit, not args.quiet, args.data)
    if entry is None:
        print("stopped; rerun the same command to resume")
        return 0
    v = entry["validation"]
    if "upscaler" in entry:  # a delivery downscaler: its figures per QP
        print(f"done: {entry['file']}  " + ", ".join(
            f"{qp}: PSNR-Y {r['psnr_y']:.2f} dB (bicubic {r['bicubic_psnr_y']:.2f})" for qp, r in v.items() if qp != "data"))
    else:
        print(f"done: {entry['file']}  PSNR-Y {v['psnr_y']:.2f} dB (bicubic {v['bicubic_psnr_y']:.2f})")
    if args.publish is True:
        shipped = recipes.publish(args.recipe, args.runs)
        print(f"published {shipped.get('name') or 'downscaler for ' + shipped['upscaler']} x{shipped['scale']} "
              f"as {shipped['file']}")
    return 0
