"""``vidsr bench quality``: PSNR-Y / SSIM of every shipped model and route on images we did not
train on, next to bicubic computed in the same run.

LR images are made as in training (antialiased bicubic downscale, rounded to 8 bits); outputs are
rounded to 8 bits; PSNR-Y and SSIM crop ``scale`` pixels at each border. The full network of each
model runs through the engine (tiles, as users run it); other routes run directly per route.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..engine import Engine
from ..metrics import psnr, ssim
from ..models import registry
from ..models.interpolation import upscale
from ..train.data import shown, default_folder, load_pairs, quantize8
from ..train.evaluate import evaluate

FLOORS = {2: 5.0, 4: 2.8}  # dB over bicubic the best shipped full network is held to
BASELINE = "plain"  # the plain 6-conv luma net the issue measures everything against


def _engine_scores(engine: Engine, pairs, scale: int) -> dict:
    ps, ss = [], []
    for p in pairs:
        out, _ = engine.upscale(p.lr[None, None])
        out = quantize8(out[0, 0])
        ps.append(psnr(out, p.hr, scale))
        ss.append(ssim(out, p.hr, scale))
    return {"psnr_y": sum(ps) / len(ps), "ssim": sum(ss) / len(ss)}


def run(val_dir: Path | None, scales: list[int]) -> dict:
    val_dir = Path(val_dir or default_folder("val"))
    results = {"val_dir": shown(val_dir), "scales": {}}
    for scale in scales:
        pairs = load_pairs(val_dir, scale)
        bic = [quantize8(upscale(p.lr[None, None], scale)[0, 0]) for p in pairs]
        rows = [{
            "model": "bicubic", "route": "-", "macs_per_pixel": registry.describe("bicubic", "bicubic", scale).macs_per_pixel,
            "psnr_y": sum(psnr(b, p.hr, scale) for b, p in zip(bic, pairs)) / len(pairs),
            "ssim": sum(ssim(b, p.hr, scale) for b, p in zip(bic, pairs)) / len(pairs),
        }]
        for entry in sorted(registry.shipped_models(), key=lambda e: e["name"]):
            if entry["scale"] != scale:
                continue
            up = registry.load(entry["name"], scale)
            d = up.descriptor
            full = _engine_scores(Engine(up), pairs, scale)
            label = d.full_route.name if d.full_route.name == "full" else f"{d.full_route.name} (full)"
            rows.append({"model": d.name, "route": label, "full": True, "macs_per_pixel": d.macs_per_pixel,
                         "params": d.params, **full})
            for r in d.routes[:-1]:
                if r.name == "bicubic":
                    continue
                res = evaluate(lambda x, k=r.name: up.module(x, k), pairs, scale, with_ssim=True)
                rows.append({"model": d.name, "route": r.name, "macs_per_pixel": r.macs_per_pixel,
                             "psnr_y": res["psnr_y"], "ssim": res["ssim"]})
        base = rows[0]["psnr_y"]
        for row in rows:
            row["gain_db"] = row["psnr_y"] - base
        results["scales"][scale] = {"images": len(pairs), "rows": rows, "checks": _checks(rows, scale)}
    return results


def _checks(rows: list[dict], scale: int) -> dict:
    """The issue's floors: the best full network's gain, and a route as good as the plain baseline
    at no more of its MACs."""
    fulls = [r for r in rows if r.get("full") and r["model"] != BASELINE]
    plain = next((r for r in rows if r["model"] == BASELINE), None)
    out = {}
    if fulls:
        best = max(fulls, key=lambda r: r["psnr_y"])
        out["best_full"] = {"model": best["model"], "gain_db": best["gain_db"], "floor_db": FLOORS.get(scale),
                            "meets_floor": scale in FLOORS and best["gain_db"] >= FLOORS[scale]}
    if plain:
        matches = [r for r in rows if r["model"] not in (BASELINE, "bicubic") and r["psnr_y"] >= plain["psnr_y"]
                   and r["macs_per_pixel"] <= plain["macs_per_pixel"]]
        cheapest = min(matches, key=lambda r: r["macs_per_pixel"]) if matches else None
        out["matches_plain"] = None if cheapest is None else {
            "model": cheapest["model"], "route": cheapest["route"], "psnr_y": cheapest["psnr_y"],
            "macs_ratio": cheapest["macs_per_pixel"] / plain["macs_per_pixel"]}
        out["plain"] = {"psnr_y": plain["psnr_y"], "macs_per_pixel": plain["macs_per_pixel"]}
    return out


def report(res: dict) -> str:
    out = [f"Validation images: `{res['val_dir']}`\n"]
    for scale, block in res["scales"].items():
        out.append(f"**x{scale}** ({block['images']} images)\n")
        out.append("| model | route | MACs / output px | PSNR-Y (dB) | gain over bicubic (dB) | SSIM |")
        out.append("| --- | --- | ---: | ---: | ---: | ---: |")
        for r in block["rows"]:
            out.append(f"| {r['model']} | {r['route']} | {r['macs_per_pixel']:,.0f} | {r['psnr_y']:.3f} | "
                       f"{r['gain_db']:+.3f} | {r['ssim']:.4f} |")
        c = block["checks"]
        if "best_full" in c:
            b = c["best_full"]
            floor = ("" if b["floor_db"] is None else
                     f" (floor {b['floor_db']:+.1f} dB: {'met' if b['meets_floor'] else 'NOT met'})")
            out.append(f"\nBest full network: {b['model']} {b['gain_db']:+.2f} dB over bicubic{floor}.")
        if c.get("matches_plain"):
            m = c["matches_plain"]
            out.append(f"Cheapest route at least as good as the plain baseline ({c['plain']['psnr_y']:.3f} dB, "
                       f"{c['plain']['macs_per_pixel']:,.0f} MACs/px): {m['model']} {m['route']} at "
                       f"{m['psnr_y']:.3f} dB with {m['macs_ratio']:.2f}x its MACs.")
        elif "plain" in c:
            out.append("No route reaches the plain baseline's quality at or below its MACs.")
        out.append("")
    return "\n".join(out)
