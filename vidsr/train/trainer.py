"""``vidsr train``: train an architecture on image folders, resumably, and export checked weights.

Strategies follow the published methods:
- plain nets: L1 on the full network.
- ARM (``arm-wdsr``): every iteration trains one width, drawn with probability proportional to its
  cost squared (heavier subnets train more; the bicubic branch has no weights), after a first tenth
  of a fresh run that trains the full width alone (``full_width_steps``). At export the
  Edge-to-PSNR table is built on validation patches and stored in the weights file.
- PCSR (``pcsr-bsrn``): stage 0 trains backbone + heavy upsampler with L1; stage 1 freezes them and
  trains the light upsampler + classifier on the probability-weighted output with
  ``1000 * L1 + 3 * |mean p_heavy - 1/2| / (1/2)``, which pushes towards an even split.

With ``ema`` (a decay such as 0.999) the trainer also keeps an exponential moving average of the
weights (torch's ``AveragedModel``); validation, the choice of the best state and the export then use
the average, which smooths the step-to-step jitter a small validation set magnifies.

A run folder holds ``checkpoint.pt`` (model, optimiser, step, stage, RNG states; written every
``checkpoint_every`` steps, on SIGINT/SIGTERM and at the time limit), ``log.jsonl`` and, when done,
``model.safetensors`` with ``manifest.json``. Re-running the same command resumes.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import signal
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from ..errors import SettingsError
from ..models import registry, weights
from ..models.descriptor import Upscaler
from ..routing.edge import EdgePSNRTable, patch_psnr, tile_edge_scores
from .coded import coded_pairs, hcd_pairs
from .data import PatchSampler, default_folder, load_pairs
from .evaluate import evaluate, routed_validation, upscale_image

ARM_TABLE_PATCH = 32  # LR patch side of the Edge-to-PSNR table (ARM's official size)
SORT_PATCHES = 64  # training patches the importance of a supernet's channels is measured on (sort_channels)


# Gradient clipping (global norm), set just above the norms of healthy steps: warm restarts of the
# ARM supernets blew up without it. Adam rescales steady gradients anyway, so the clip only bites
# on spikes.
CLIP_GRAD_NORM = 0.05
# A validation this far below the best one of the stage counts as divergence: the run goes back to
# its best state and halves the peak learning rate of what is left, rather than checkpointing the
# blow-up over hours of training.
DIVERGED_DB = 1.0
# --loss: the distance between a network's output and the HR patch (TrainConfig.loss)
RECONSTRUCTION_LOSSES = {
    "l1": lambda out, hr: (out - hr).abs().mean(),
    "l2": lambda out, hr: (out - hr).square().mean(),
}
# settings that do not change what a run learns, so a resume may change them unremarked
RESUME_FREE = {"out", "time_limit", "threads", "device", "extend", "checkpoint_every", "val_every", "iterations",
               "stop_at"}


@dataclass
class TrainConfig:
    arch: str
    scale: int
    out: Path
    iterations: int = 10000
    batch: int = 16
    patch: int = 48  # LR patch side
    lr: float = 1e-3
    seed: int = 0
    train_dir: Path | None = None
    val_dir: Path | None = None
    predownscale: int = 2  # the shared JPEGs are downscaled by this first for clean targets
    predownscale_kernel: str = "bicubic"  # "lanczos" (as the validation images were made) measured worse
    texture_bias: float = 0.0  # skew patch sampling towards texture (see PatchSampler)
    val_every: int = 1000
    checkpoint_every: int = 200
    time_limit: float | None = None  # seconds for this invocation; resume later
    stop_at: int | None = None  # stop at this step though the schedule runs to ``iterations`` (resume or finish later)
    threads: int | None = None
    device: str = "cpu"
    model_config: dict = field(default_factory=dict)
    stage1_fraction: float = 0.35  # PCSR: share of iterations for the classifier stage
    extend: bool = False  # continue a run to more iterations: a new cosine segment from ``lr``
    clip: float | None = CLIP_GRAD_NORM  # max global gradient norm (None: no clipping)
    # ARM: a width is drawn with probability proportional to its cost to this power. ARM's 2 gives
    # the narrowest widths almost no steps; 1 is for a fine-tune that brings them up after the
    # supernet has been trained as published.
    width_power: float = 2.0
    # ARM: what picks the best state: "widths" (the mean gain over every width, since all of them
    # ship) or "full" (the full width's PSNR, for a supernet shipped mainly as a full network, whose
    # full width may peak long after its narrow widths)
    select: str = "widths"
    # ARM: the first steps train the full width alone (progressive shrinking, as once-for-all nets
    # do). None: a tenth of the iterations for a fresh run, none when ``init`` brings trained weights.
    # Why: with L1 and Adam a deep plain ReLU stack (arm-plain) learns to output zero first and its
    # last hidden layer dies; mixing widths from step 0 keeps it at bicubic for a long time, while
    # the full width alone escapes in a few hundred steps and mixing in the narrow widths after that
    # does not fall back.
    full_width_steps: int | None = None
    # start a fresh run from these weights (a .safetensors listed in a manifest beside it): every
    # tensor whose name and shape match is copied, the rest keep their initialisation. With PCSR and
    # ``stage1_fraction=1`` this retrains only the light upsampler and classifier (e.g. a different
    # light head) over a trained backbone and heavy upsampler.
    init: Path | None = None
    # ARM plain stacks: a run started from ``init`` first reorders each hidden layer's channels by
    # their importance to the full width (``SlimPlain.sort_channels``, on a batch of training
    # patches), which keeps the full width's function and makes the narrow widths of the units it
    # uses most: without it, arm-plain x2's w8 stayed dead (+0.003 dB over bicubic)
    sort_channels: bool = False
    # decay of an exponential moving average of the weights, validated and exported instead of the
    # raw ones (0: none). Why: a small validation set swings between validations late in a cosine
    # segment, so the raw state chosen is partly the luck of the step it was validated at.
    ema: float = 0.0
    # the reconstruction loss: "l1" (as every published recipe here trains) or "l2" (mean squared
    # error, what PSNR measures: a last fine-tune with it is a common way to buy PSNR after L1)
    loss: str = "l1"
    # CRFs the training LR is encoded at by a real ``codec`` and decoded again (``coded.py``): an
    # upscaler for decoded delivery video, not for clean frames. Validation goes through the same
    # codec at the same CRFs (one inter frame per image and CRF). None: clean pairs.
    codec_crfs: list[int] | None = None
    codec: str = "libx264"
    # the training LR is HCD's refinement of the bicubic downscale against this shipped upscaler, at
    # QP ``hcd_qp`` (what ``vidsr downscale --mode hcd`` delivers), before ``codec_crfs`` codes it:
    # an upscaler fine-tuned on it learns what the refinement encodes, and HCD then refines against
    # the fine-tuned one (the pair trained in alternation, as HCD trains its two halves together).
    # Validation LR is refined the same way. None: the bicubic downscale.
    hcd_against: str | None = None
    hcd_qp: float = 26.0

    def to_json(self) -> dict:
        d = asdict(self)
        for k in ("out", "train_dir", "val_dir", "init"):
            d[k] = None if d[k] is None else str(d[k])
        return d


class Trainer:
    def __init__(self, cfg: TrainConfig, progress: bool = True):
        if not 0 <= cfg.width_power <= 4:
            raise ValueError(f"--width-power must be between 0 and 4, not {cfg.width_power}")
        if cfg.select not in ("widths", "full"):
            raise ValueError(f"--select must be widths or full, not {cfg.select!r}")
        if not 0 <= cfg.ema < 1:
            raise ValueError(f"--ema must be a decay in [0, 1), such as 0.999, not {cfg.ema}")
        if cfg.loss not in RECONSTRUCTION_LOSSES:
            raise ValueError(f"--loss must be one of {', '.join(RECONSTRUCTION_LOSSES)}, not {cfg.loss!r}")
        self.cfg = cfg
        self.progress = progress
        self.arch = registry.architecture(cfg.arch)
        if not self.arch.trainable:
            raise ValueError(f"{cfg.arch} has no weights to train")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.device = torch.device(cfg.device)
        self.model = registry.build_module(cfg.arch, cfg.scale, cfg.model_config).to(self.device)
        self.channels_last = self.device.type == "cpu"  # oneDNN is faster on NHWC
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.train_dir = Path(cfg.train_dir or default_folder("train"))
        self.val_dir = Path(cfg.val_dir or default_folder("val"))
        train_pairs = load_pairs(self.train_dir, cfg.scale, cfg.predownscale, cfg.predownscale_kernel)
        self.val_pairs = load_pairs(self.val_dir, cfg.scale, 1)
        self.images, self.val_images = len(train_pairs), len(self.val_pairs)
        if cfg.hcd_against:
            cache = cfg.out / "hcd_lr.pt"  # minutes of refinement, kept for a resume
            train_pairs, self.val_pairs = hcd_pairs({"train": train_pairs, "val": self.val_pairs}, cfg.hcd_against,
                                                    cfg.scale, cfg.hcd_qp, cache, progress)
        if cfg.codec_crfs:
            train_pairs = coded_pairs(train_pairs, cfg.scale, cfg.codec_crfs, cfg.codec, seed=cfg.seed)
            self.val_pairs = coded_pairs(self.val_pairs, cfg.scale, cfg.codec_crfs, cfg.codec, seed=cfg.seed, keep="last")
        self.sampler = PatchSampler(train_pairs, cfg.scale, cfg.patch, cfg.seed, cfg.texture_bias)
        self.step = 0
        self.schedule: list[tuple[int, int, float]] = []  # extra cosine segments (start, end, peak lr)
        self.elapsed = 0.0  # seconds spent in earlier invocations
        self._started = None
        self.stage = 0
        self.best: dict | None = None  # the best validation of this stage: val, stage, step (state in best.pt)
        self.weights_step: int | None = None  # set when the export takes best.pt's weights, not the final ones
        self.grad_max = 0.0  # largest gradient norm since the last validation (logged)
        self.changes: list[dict] = []  # settings changed on resumes: step and [old, new] per setting
        self._bar = None  # the progress bar while ``run`` runs
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)
        if self.arch.router == "arm":
            desc = registry.describe(cfg.arch, cfg.arch, cfg.scale, cfg.model_config)
            widths = [r for r in desc.routes if r.name != "bicubic"]
            weight = torch.tensor([r.macs_per_pixel for r in widths], dtype=torch.float64) ** cfg.width_power
            self.width_names = [r.name for r in widths]
            self.width_probs = weight / weight.sum()
            self.full_width_steps = (cfg.full_width_steps if cfg.full_width_steps is not None
                                     else 0 if cfg.init is not None else cfg.iterations // 10)
        self.init_info: dict | None = None
        if cfg.sort_channels and not hasattr(self.model, "sort_channels"):
            raise ValueError(f"--sort-channels applies to plain-stack supernets (arm-plain), not {cfg.arch}")
        if cfg.init is not None and not (cfg.out / "checkpoint.pt").exists():
            self.init_info = self._init_from(Path(cfg.init))
            if cfg.sort_channels:  # its own sampler and seed: the training batches stay as without it
                lr, _ = PatchSampler(train_pairs, cfg.scale, cfg.patch, cfg.seed + 2).batch(SORT_PATCHES)
                self.model.sort_channels(lr.to(self.device))
                self.init_info["sorted_channels"] = SORT_PATCHES
        self._make_optimizer()
        self.ema = self._new_average()
        cfg.out.mkdir(parents=True, exist_ok=True)
        self.ckpt_path = cfg.out / "checkpoint.pt"
        self.best_path = cfg.out / "best.pt"
        if self.ckpt_path.exists():
            self._load_checkpoint()

    def _init_from(self, path: Path) -> dict:
        """Copy the matching tensors of a verified weights file into the fresh model. Its scale may
        differ: the body of an x2 net is a good start for x4 (as EDSR trains x4 from x2); the
        upsampling tail, whose shape depends on the scale, then starts fresh.

        At the same scale a tensor of the new model that is larger in some dimensions (a supernet
        with a wider top width) takes the old one as its leading slice, which is where a slimmable
        net keeps its narrower widths, so every old width keeps its function; weights that read the
        new input channels start at zero, so the new full width starts equal to the old one
        (function-preserving widening, as Net2Net) and learns to use its new channels from there.
        A deeper plain stack takes a shallower one with identity convs added before the tail
        (``PlainSR.deepen_state``), again starting with the old function."""
        entry = registry.manifest_entry(str(path), None if path.suffix == ".safetensors" else self.cfg.scale)
        state, _ = weights.load_checked(entry)
        identities = []
        if hasattr(self.model, "deepen_state"):  # a shallower plain stack starts a deeper one
            state, identities = self.model.deepen_state(state)
        own = self.model.state_dict()
        taken = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        grown = {}
        if entry["scale"] == self.cfg.scale:
            for k, v in state.items():
                if k in own and k not in taken and v.dim() == own[k].dim() and all(
                        a <= b for a, b in zip(v.shape, own[k].shape)):
                    t = own[k].clone()
                    if t.dim() >= 2 and v.shape[1] < t.shape[1]:
                        t[:, v.shape[1]:] = 0  # nothing reads the new channels yet
                    t[tuple(slice(0, n) for n in v.shape)] = v
                    grown[k] = t
        # Another architecture may start this one where its layout matches (a plain net is the
        # full width of arm-plain); one that shares nothing is a mistake, not a fresh start.
        if not taken and not grown:
            raise ValueError(f"--init {path} ({entry['architecture']}) shares no tensor with {self.cfg.arch}")
        self.model.load_state_dict({**taken, **grown}, strict=False)
        fresh = sorted(k for k in own if k not in taken and k not in grown)
        return {"file": entry["file"], "sha256": entry["sha256"], "architecture": entry["architecture"],
                "scale": entry["scale"], "fresh_tensors": fresh, **({"grown_tensors": sorted(grown)} if grown else {}),
                **({"identity_layers": identities} if identities else {})}

    def _new_average(self) -> AveragedModel | None:
        """A moving average that starts at the model's current weights (its first update copies them)."""
        if not self.cfg.ema:
            return None
        return AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(self.cfg.ema), use_buffers=True)

    @property
    def net(self) -> torch.nn.Module:
        """The weights that are validated and exported: the moving average when there is one."""
        return self.ema.module if self.ema is not None else self.model

    # -- schedule --------------------------------------------------------------------------------

    def _stage_bounds(self) -> tuple[int, int]:
        """(first, end) iteration of the current stage."""
        n = self.cfg.iterations
        if self.arch.router != "pcsr":
            return 0, n
        split = int(round(n * (1 - self.cfg.stage1_fraction)))
        return (0, split) if self.stage == 0 else (split, n)

    def _trainable(self):
        m = self.model
        if self.arch.router == "pcsr":
            if self.stage == 0:
                return list(m.backbone.parameters()) + list(m.upsamplers[-1].parameters())
            return [p for u in m.upsamplers[:-1] for p in u.parameters()] + list(m.classifier.parameters())
        return list(m.parameters())

    def _make_optimizer(self) -> None:
        for p in self.model.parameters():
            p.requires_grad_(False)
        params = self._params = self._trainable()
        for p in params:
            p.requires_grad_(True)
        self.opt = torch.optim.Adam(params, lr=self.cfg.lr)

    def _segment(self, step: int) -> tuple[int, int, float]:
        """(first, end, peak lr) of the cosine segment ``step`` is in: the stage, or the last
        schedule segment started by then (``extend`` and divergence rollbacks add segments)."""
        first, end = self._stage_bounds()
        peak = self.cfg.lr
        for start, stop, segment_peak in self.schedule:
            if start <= step:
                first, end, peak = start, stop, segment_peak
        return first, end, peak

    def lr_at(self, step: int) -> float:
        """Cosine decay to 1% of the peak over the segment ``step`` is in."""
        first, end, peak = self._segment(step)
        t = (step - first) / max(1, end - first)
        return peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0))))

    # -- one step ---------------------------------------------------------------------------------

    def loss(self, lr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        m = self.model
        distance = RECONSTRUCTION_LOSSES[self.cfg.loss]
        if self.arch.router == "arm":
            if self.step < self.full_width_steps:
                width = self.width_names[-1]
            else:
                width = self.width_names[int(torch.multinomial(self.width_probs, 1, generator=self.gen))]
            return distance(m(lr, width), hr)
        if self.arch.router == "pcsr":
            if self.stage == 0:
                return distance(m(lr, "heavy"), hr)
            out, probs = m.soft(lr)
            balance = (probs[:, -1].mean() - 0.5).abs() / 0.5
            return 1000 * distance(out, hr) + 3 * balance  # (the weights are the paper's, for L1)
        return distance(m(lr), hr)

    # -- loop ---------------------------------------------------------------------------------------

    def run(self) -> dict | None:
        """Train until done or the time limit; returns the export summary when finished."""
        cfg = self.cfg
        stop = {"now": False}

        def on_signal(signum, frame):
            stop["now"] = True

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        started = self._started = time.monotonic()
        self.model.train()
        bar = self._bar = tqdm(total=cfg.iterations, initial=self.step, desc=f"train {cfg.arch} x{cfg.scale}",
                               disable=not self.progress, dynamic_ncols=True)
        try:
            while self.step < min(cfg.iterations, cfg.stop_at or cfg.iterations):
                if self.arch.router == "pcsr" and self.stage == 0 and self.step >= self._stage_bounds()[1]:
                    self.stage = 1
                    if self.ema is not None:  # the light head learns over the backbone that ships
                        self.model.load_state_dict(self.ema.module.state_dict())
                        self.ema = self._new_average()
                    self._make_optimizer()
                for g in self.opt.param_groups:
                    g["lr"] = self.lr_at(self.step)
                lr, hr = (t.to(self.device) for t in self.sampler.batch(cfg.batch))
                if self.channels_last:
                    lr = lr.contiguous(memory_format=torch.channels_last)
                loss = self.loss(lr, hr)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(self._params, cfg.clip or float("inf"))
                self.grad_max = max(self.grad_max, float(norm))
                self.opt.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.model)
                self.step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4f}", stage=self.stage)
                if self.step % cfg.val_every == 0 or self.step == cfg.iterations:
                    row = {"step": self.step, "stage": self.stage, "loss": loss.item(),
                           "grad_norm_max": round(self.grad_max, 4), **self.validate()}
                    self.grad_max = 0.0
                    self._log(row)
                    self.keep_best_or_roll_back(self.selection_score(row), time.monotonic() - started)
                    self.model.train()
                spent = time.monotonic() - started
                out_of_time = cfg.time_limit is not None and spent >= cfg.time_limit
                stopped = cfg.stop_at is not None and self.step >= cfg.stop_at and self.step < cfg.iterations
                if self.step % cfg.checkpoint_every == 0 or stop["now"] or out_of_time or stopped:
                    self._save_checkpoint(spent)
                if stop["now"] or out_of_time or stopped:
                    bar.close()
                    return None
            self._save_checkpoint(time.monotonic() - started)
        finally:
            bar.close()
            self._bar = None
            for s, h in old.items():
                signal.signal(s, h)
        return self.finish()

    def finish(self) -> dict:
        """End the run where it stands, without training further: export the stage's best
        validated weights (the checkpoint's own if it was never validated)."""
        if not self.ckpt_path.exists():
            raise FileNotFoundError(f"{self.cfg.out} has no checkpoint: there is no run to finish")
        self._take_best_weights()
        return self.export()

    def _take_best_weights(self) -> None:
        """Before the export: the stage's best validated weights when an earlier validation beat
        the final one (a warm restart can end a little below its best without diverging). The
        checkpoint keeps the final state, so ``--extend`` still continues from there."""
        best = self.best
        if best is None or best["stage"] != self.stage or best["step"] == self.step:
            return
        state = torch.load(self.best_path, map_location=self.device, weights_only=False)
        self.model.load_state_dict(state["model"])
        self._restore_average(state)
        self.weights_step = best["step"]

    def validate(self) -> dict:
        net = self.net
        net.eval()
        route = "heavy" if self.arch.router == "pcsr" and self.stage == 0 else None
        if self.arch.router == "pcsr" and self.stage == 1:
            route = "soft"
        res = evaluate(lambda x: net(x, route), self.val_pairs, self.cfg.scale)
        row = {"val_psnr_y": round(res["psnr_y"], 4), "val_gain_db": round(res["gain_db"], 4)}
        if self.arch.router == "arm" and len(self.width_names) > 1:  # what the sampling buys narrow widths
            row["val_gain_db_by_width"] = {
                name: round(evaluate(lambda x, n=name: net(x, n), self.val_pairs, self.cfg.scale)["gain_db"], 4)
                for name in self.width_names[:-1]}
        return row

    def _selection_metric(self) -> str:
        """What picks a run's best state: a supernet's routes all ship, so its mean gain over every
        width, not the full width's alone (arm-plain x2's full width peaked at step 2500 while w24,
        the route that matches the plain net at 57% of its cost, gained 0.09 dB more by step 6000)."""
        by_widths = self.arch.router == "arm" and len(self.width_names) > 1 and self.cfg.select == "widths"
        return "mean_gain_db_over_widths" if by_widths else "psnr_y"

    def selection_score(self, row: dict) -> float:
        if self._selection_metric() == "psnr_y":
            return row["val_psnr_y"]
        gains = [row["val_gain_db"], *row["val_gain_db_by_width"].values()]
        return round(sum(gains) / len(gains), 4)

    def keep_best_or_roll_back(self, val: float, spent: float) -> None:
        """Keep the best state of the stage in best.pt; on a validation ``DIVERGED_DB`` below it,
        go back to that state and halve the peak learning rate for the rest of the run."""
        best = self.best
        if best is None or best["stage"] != self.stage or val > best["val"]:
            self.best = {"val": val, "stage": self.stage, "step": self.step, "metric": self._selection_metric()}
            self._save(self.best_path, spent)
            return
        if val >= best["val"] - DIVERGED_DB:
            return
        diverged_at = self.step
        peak = self._segment(self.step)[2] / 2
        elapsed, changes = self.elapsed, self.changes
        self._restore(torch.load(self.best_path, map_location=self.device, weights_only=False))
        self.elapsed, self.changes = elapsed, changes  # training time and settings history are not rolled back
        self.schedule.append((self.step, self.cfg.iterations, peak))
        if self._bar is not None:
            self._bar.n = self.step
        self._log({"step": diverged_at, "diverged": val, "best": best["val"], "back_to_step": self.step, "peak_lr": peak})
        self._save(self.ckpt_path, spent)

    def _log(self, row: dict) -> None:
        row["elapsed_s"] = round(self.total_seconds(), 1)
        with open(self.cfg.out / "log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.progress:
            tqdm.write(json.dumps(row))

    def total_seconds(self) -> float:
        """Training time over all invocations so far."""
        return self.elapsed + (time.monotonic() - self._started if self._started else 0.0)

    # -- checkpoints ------------------------------------------------------------------------------

    def _save_checkpoint(self, spent: float) -> None:
        self._save(self.ckpt_path, spent)

    def _save(self, path: Path, spent: float) -> None:
        """The whole training state (resumable), written atomically."""
        state = {
            "config": self.cfg.to_json(),
            "model": self.model.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "optimizer": self.opt.state_dict(),
            "step": self.step,
            "stage": self.stage,
            "elapsed": self.elapsed + spent,
            "sampler": self.sampler.state(),
            "torch_rng": torch.get_rng_state(),
            "gen": self.gen.get_state(),
            "schedule": self.schedule,
            "best": self.best,
            "init": self.init_info,  # where a --init run started from, for its export after a resume
            # as resolved when the run started: an --extend changes cfg.iterations, not this
            "full_width_steps": getattr(self, "full_width_steps", None),
            "changes": self.changes,
        }
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def _load_checkpoint(self) -> None:
        try:
            state = torch.load(self.ckpt_path, map_location=self.device, weights_only=False)
        except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"{self.ckpt_path}: cannot resume from this checkpoint ({reason}); "
                             "remove it (or choose another --out) to start the run again") from None
        saved = state["config"]
        for key in ("arch", "scale", "iterations", "model_config"):
            if saved[key] == self.cfg.to_json()[key]:
                continue
            if key == "iterations" and self.cfg.extend and self.cfg.iterations > state["step"] and self.arch.router != "pcsr":
                continue
            raise ValueError(f"{self.ckpt_path} was made with {key}={saved[key]!r}, not {self.cfg.to_json()[key]!r}"
                             + (" (--extend continues a run to more iterations)" if key == "iterations" else ""))
        self._restore(state)
        if saved["iterations"] != self.cfg.iterations:
            self.schedule.append((self.step, self.cfg.iterations, self.cfg.lr))
        # settings a resume may change (a fine-tune's width power, --ema added): recorded, so the
        # log and the export say what the weights were trained with, not only the last invocation's
        now = self.cfg.to_json()
        defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}  # older checkpoints
        changed = {k: [saved.get(k, defaults.get(k)), now[k]] for k in now
                   if k not in RESUME_FREE and saved.get(k, defaults.get(k)) != now[k]}
        if changed:
            self.changes.append({"step": self.step, **changed})
            self._log({"step": self.step, "resumed_with": changed})

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.step, self.stage, self.elapsed = state["step"], state["stage"], state["elapsed"]
        self.schedule = [tuple(s) for s in state.get("schedule", [])]
        self.best = state.get("best")
        if self.best is not None and self.best.get("metric", "psnr_y") != self._selection_metric():
            self.best = None  # kept by another measure (a run from before supernets chose by all widths)
        self.init_info = state.get("init")
        self.changes = list(state.get("changes", []))
        if self.cfg.full_width_steps is None and hasattr(self, "full_width_steps"):
            # the default is a tenth of the run's *first* length; checkpoints from before this was
            # saved know that length as the start of their first --extend segment
            first = self.schedule[0][0] if self.schedule else state["config"]["iterations"]
            saved = state.get("full_width_steps")
            self.full_width_steps = saved if saved is not None else 0 if self.init_info else first // 10
        self._make_optimizer()
        self._restore_average(state)
        self.opt.load_state_dict(state["optimizer"])
        self.sampler.set_state(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        self.gen.set_state(state["gen"])

    def _restore_average(self, state: dict) -> None:
        """The saved moving average with the model; a run that had none starts one from its weights
        (``--ema`` added on a resume), and one of another decay is started afresh."""
        saved = state.get("ema")
        self.ema = self._new_average()
        if self.ema is not None and saved is not None and state["config"].get("ema") == self.cfg.ema:
            self.ema.load_state_dict(saved)

    # -- export -----------------------------------------------------------------------------------

    def export(self) -> dict:
        """Write model.safetensors + manifest.json (validation numbers, provenance) into the run."""
        cfg = self.cfg
        net = self.net
        net.eval()
        desc = registry.describe(cfg.arch, cfg.arch, cfg.scale, cfg.model_config)
        extras = {}
        if self.arch.router == "arm":
            extras = build_edge_table(net, desc, self.val_pairs, cfg.scale).to_tensors()
        full = evaluate(lambda x: net(x), self.val_pairs, cfg.scale, with_ssim=True)
        per_route = {}
        for r in desc.routes:
            key = None if r.name == "full" else r.name
            res = full if key is None else evaluate(lambda x, k=key: net(x, k), self.val_pairs, cfg.scale)
            per_route[r.name] = {"psnr_y": round(res["psnr_y"], 4), "macs_per_pixel": round(r.macs_per_pixel, 1)}
        file = f"{cfg.arch}-x{cfg.scale}.safetensors"
        sha = weights.save(cfg.out / file, net.state_dict(), extras)
        # what the exported weights were trained with: a best state from before a resume changed a
        # setting (a lower lr for an extension) was trained with the old value
        trained = self.weights_step or self.step
        changes = [c for c in self.changes if c["step"] <= trained]

        def trained_with(key):
            value = getattr(cfg, key)
            for c in reversed(self.changes):
                if c["step"] > trained and key in c:
                    value = c[key][0]
            return value

        ema = trained_with("ema")
        entry = {
            "name": cfg.arch,
            "scale": cfg.scale,
            "architecture": cfg.arch,
            "config": {**self.arch.defaults, **cfg.model_config},
            **({"input": "coded"} if cfg.codec_crfs else {}),
            "file": file,
            "sha256": sha,
            "bytes": (cfg.out / file).stat().st_size,
            "training": {
                "train_data": f"{self.train_dir.name}/ ({self.images} images, predownscale x{cfg.predownscale})",
                **({"codec": {"encoder": cfg.codec, "crfs": list(cfg.codec_crfs)}} if cfg.codec_crfs else {}),
                **({"lr_from": {"hcd_against": cfg.hcd_against, "qp": cfg.hcd_qp}} if cfg.hcd_against else {}),
                "iterations": self.weights_step or self.step,  # of the exported weights
                **({"run_iterations": self.step} if self.weights_step else {}),
                "batch": cfg.batch,
                "patch": cfg.patch,
                "lr": trained_with("lr"),  # the peak of the exported step's schedule segment (earlier ones: log.jsonl)
                **({"width_power": trained_with("width_power"), "full_width_steps": self.full_width_steps}
                   if self.arch.router == "arm" else {}),
                **({"stage1_fraction": cfg.stage1_fraction} if self.arch.router == "pcsr" else {}),
                **({"ema": ema} if ema else {}),
                **({"init": self.init_info} if self.init_info else {}),
                **({"changed_on_resume": changes} if changes else {}),
                "seed": cfg.seed,
                "seconds": round(self.total_seconds()),
                "device": cfg.device,
            },
            "validation": {
                "data": f"{self.val_dir.name}/ ({self.val_images} images"
                        + (f", {cfg.codec} CRFs {', '.join(map(str, cfg.codec_crfs))})" if cfg.codec_crfs else ")"),
                "psnr_y": round(full["psnr_y"], 4),
                "ssim": round(full["ssim"], 4),
                "bicubic_psnr_y": round(full["bicubic_psnr_y"], 4),
                "bicubic_ssim": round(full["bicubic_ssim"], 4),
                "routes": per_route,
            },
        }
        if self.arch.router is not None:
            routed = Upscaler(desc, net, extras)
            entry["validation"]["routed"] = routed_validation(routed, self.val_pairs)
        weights.write_manifest(cfg.out, [entry])
        self._log({"export": file, "val_psnr_y": entry["validation"]["psnr_y"], "gain_db": round(full["gain_db"], 4)})
        return entry


@torch.inference_mode()
def edge_psnr_table(pairs, scale: int, outputs: dict, patch: int = ARM_TABLE_PATCH) -> EdgePSNRTable:
    """Edge score and each output's PSNR of every ``patch`` LR cell of the validation images (an
    image smaller than one cell adds none). ``outputs``: route name -> a function of a (h, w) LR
    plane in [0, 1] giving its (h * scale, w * scale) upscale."""
    scores, psnrs = [], []
    for p in pairs:
        h, w = (p.lr.shape[0] // patch) * patch, (p.lr.shape[1] // patch) * patch
        if not h or not w:
            continue
        lr, hr = p.lr[:h, :w], p.hr[: h * scale, : w * scale]
        scores.append(tile_edge_scores(lr[None, None], patch).flatten())
        psnrs.append(torch.stack([patch_psnr(run(lr)[None, None], hr[None, None], patch * scale) for run in outputs.values()]))
    if not scores:
        raise ValueError(f"no validation image has a {patch}x{patch} LR tile at x{scale} (each must be at least "
                         f"{patch * scale} px on its short side) for the Edge-to-PSNR table")
    return EdgePSNRTable.fit(torch.cat(scores), torch.cat(psnrs, dim=1), tuple(outputs))


def build_edge_table(model, desc, pairs, scale: int, patch: int = ARM_TABLE_PATCH) -> EdgePSNRTable:
    """A routed model's Edge-to-PSNR table: each of its routes on every tile of the validation images."""
    outputs = {r.name: (lambda lr, r=r.name: upscale_image(lambda x: model(x, r), lr)) for r in desc.routes}
    return edge_psnr_table(pairs, scale, outputs, patch)


def publish(run_dir: Path, dest: Path = registry.SHIPPED_DIR, name: str | None = None) -> dict:
    """Copy a finished run's weights into ``dest`` (the shipped set) and merge its manifest entry.
    ``name``: ship it under another model name (file ``NAME-x<scale>.safetensors``) instead of its
    architecture's, e.g. a wider configuration beside the shipped default one."""
    import shutil

    entries = weights.read_manifest(run_dir)
    if not entries:
        raise FileNotFoundError(f"{run_dir} has no manifest.json: the run has not finished")
    entry = dict(entries[0])
    source = Path(run_dir) / entry["file"]
    if name is not None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name) or name in registry.ARCHITECTURES and name != entry["architecture"]:
            raise SettingsError(f"--name {name!r}: use lowercase letters, digits and dashes, not another architecture's name")
        entry["name"], entry["file"] = name, f"{name}-x{entry['scale']}.safetensors"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest / entry["file"])
    if weights.sha256_of(dest / entry["file"]) != entry["sha256"]:
        raise RuntimeError("copy does not match its checksum")
    others = [e for e in weights.read_manifest(dest) if (e["name"], e["scale"]) != (entry["name"], entry["scale"])]
    weights.write_manifest(dest, others + [entry])
    return entry
