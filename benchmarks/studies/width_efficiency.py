"""Time per MAC of each route of a routed model on this machine: does a MAC saved save time?

ARM's budget counts MACs; the wall time it saves depends on whether a narrow subnet runs as fast
per MAC as the full one. This times each route of a shipped supernet on batches of tile windows
(the shapes routing runs) and prints ns per LR pixel, ps per MAC and the time and MACs ratios to
the full width.

    python benchmarks/width_efficiency.py --model arm-plain --scale 2
"""

from __future__ import annotations

import argparse
import time

import torch

from vidsr.models import registry
from vidsr.runtime import tune_allocator


def seconds_per_call(fn, x, least: float = 0.4) -> float:
    fn(x)
    fn(x)
    calls, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < least:
        fn(x)
        calls += 1
    return (time.perf_counter() - t0) / calls


@torch.inference_mode()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="arm-plain")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--windows", type=int, nargs=2, default=[16, 78], metavar=("N", "SIDE"),
                    help="batch of N windows of SIDE x SIDE LR pixels (default: 16 of 78)")
    args = ap.parse_args()
    tune_allocator()
    up = registry.load(args.model, args.scale)
    d = up.descriptor
    n, side = args.windows
    x = torch.rand(n, 1, side, side)
    print(f"{d.name} x{d.scale}: {n} windows of {side} px, torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    for route in d.routes[1:]:
        s = seconds_per_call(lambda t, r=route.name: up(t, r), x)
        ns_px = s * 1e9 / (n * side * side)
        rows.append((route.name, route.macs_per_pixel, ns_px))
    full_macs, full_ns = rows[-1][1], rows[-1][2]
    print("| route | MACs / output px | ns / LR px | ps / MAC | time ratio | MACs ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, macs, ns_px in rows:
        ps_mac = ns_px * 1000 / (macs * d.scale**2)
        print(f"| {name} | {macs:,.0f} | {ns_px:.0f} | {ps_mac:.1f} | {ns_px / full_ns:.2f} | {macs / full_macs:.2f} |")


if __name__ == "__main__":
    main()
