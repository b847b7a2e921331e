"""Add each shipped routed model's validation PSNR under its own router at the reference cost
(``validation.routed`` in vidsr/weights/manifest.json: the same MACs per pixel for every model of a
scale, ``evaluate.ROUTED_MACS_PER_INPUT_PIXEL``) where it is missing or was measured at another
cost or with other tiles than the engine's default, or for every routed model with --all. New exports measure it themselves (``Trainer.export``); this fills in entries
exported before that measure existed. The CLI picks the model for ``--fps-target`` and
``--budget`` < 1 by it (``registry.best_routed``).

Usage: .venv/bin/python scripts/measure_routed_validation.py [--all] [--val-dir DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from vidsr.engine import DEFAULT_TILE
from vidsr.models import registry, weights
from vidsr.train.data import default_folder, load_pairs
from vidsr.train.evaluate import routed_reference, routed_validation


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
        if not registry.architecture(e["architecture"]).router:
            continue
        scale = e["scale"]
        up = registry.load(e["name"], scale)
        macs, _ = routed_reference(up.descriptor)
        had = e["validation"].get("routed", {})
        # entries from before tiles were recorded were measured at the then default: ARM 32, PCSR 64
        tile = had.get("tile", 32 if up.descriptor.router == "arm" else 64)
        if had.get("macs_per_pixel") == round(macs) and tile == DEFAULT_TILE[up.descriptor.router] and not args.all:
            continue
        pairs.setdefault(scale, load_pairs(val_dir, scale))
        e["validation"]["routed"] = r = routed_validation(up, pairs[scale])
        print(f"{e['name']} x{scale}: {r['psnr_y']:.4f} dB at {r['macs_per_pixel']:,} MACs/px, budget {r['budget']}, "
              f"{r['tile']}-px tiles (was {had.get('psnr_y', float('nan')):.4f} at {tile}; full {e['validation']['psnr_y']:.4f})")
    weights.write_manifest(registry.SHIPPED_DIR, entries)


if __name__ == "__main__":
    main()
