"""Count multiply-accumulates per output pixel of a model, by running it once.

torch's ``FlopCounterMode`` sees every convolution and matrix product at the aten level, so
functional calls (slimmable convs slice weights and call ``F.conv2d``), depthwise convs and the
interpolation base are all charged at the resolution they really run at. Costs are reported per
HR output pixel so that scales and routes compare directly (1 MAC = 2 FLOPs).
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


@torch.no_grad()
def macs_per_pixel(run, scale: int, lr_size: int = 64) -> float:
    """MACs per HR pixel of ``run(x)`` on one ``lr_size`` square luma plane."""
    x = torch.rand(1, 1, lr_size, lr_size)
    counter = FlopCounterMode(display=False)
    with counter:
        run(x)
    return counter.get_total_flops() / 2 / (lr_size * scale) ** 2
