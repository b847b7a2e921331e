"""Add each shipped routed model's validation PSNR under its own router at half budget
(``validation.routed`` in vidsr/weights/manifest.json) where it is missing, or for every routed
model with --all. New exports measure it themselves (``Trainer.export``); this fills in entries
exported before that measure existed. The CLI picks the model for ``--fps-target`` and
``--budget`` < 1 by it (``registry.best_routed``).

Usage: .venv/bin/python scripts/measure_routed_validation.py [--all] [--val-dir DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from vidsr.models import registry, weights
from vidsr.train.data import default_folder, load_pairs
from vidsr.train.evaluate import ROUTED_BUDGET, evaluate_routed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="re-measure entries that already have it")
    ap.add_argument("--val-dir", type=Path, default=None)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    val_dir = args.val_dir or default_folder("val")
    entries = registry.shipped_models()
    pairs = {}
    for e in entries:
        if not registry.architecture(e["architecture"]).router or ("routed" in e["validation"] and not args.all):
            continue
        scale = e["scale"]
        pairs.setdefault(scale, load_pairs(val_dir, scale))
        value = evaluate_routed(registry.load(e["name"], scale), pairs[scale])
        e["validation"]["routed"] = {"budget": ROUTED_BUDGET, "psnr_y": round(value, 4)}
        print(f"{e['name']} x{scale}: {value:.4f} dB at budget {ROUTED_BUDGET} (full {e['validation']['psnr_y']:.4f})")
    weights.write_manifest(registry.SHIPPED_DIR, entries)


if __name__ == "__main__":
    main()
