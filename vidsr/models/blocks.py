"""Building blocks shared by the architectures: BSRN's BSConv/ESA/CCA and slimmable convolutions."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class BSConv(nn.Module):
    """Blueprint separable conv: 1x1 pointwise, then depthwise kxk (BSRN's order, the reverse of
    depthwise-separable: mixing channels first lets each depthwise kernel act as a blueprint)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3):
        super().__init__()
        self.pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.dw = nn.Conv2d(cout, cout, kernel, padding=kernel // 2, groups=cout)

    def forward(self, x):
        return self.dw(self.pw(x))


class ESA(nn.Module):
    """Enhanced spatial attention: a cheap, strided, pooled branch that gates every pixel."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.cross = nn.Conv2d(reduced, reduced, 1)
        self.down = nn.Conv2d(reduced, reduced, 3, stride=2)
        self.body = nn.Conv2d(reduced, reduced, 3, padding=1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    # The pooled branch needs this many input pixels per side to produce one value.
    min_size = 17

    def forward(self, x):
        r = self.reduce(x)
        y = F.max_pool2d(self.down(r), kernel_size=7, stride=3)
        y = self.body(y)
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.expand(y + self.cross(r)))


class CCA(nn.Module):
    """Contrast-aware channel attention: channel gates from per-channel mean + standard deviation."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.gate = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1), nn.Sigmoid()
        )

    def forward(self, x):
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
        return x * self.gate(mean + std)


def slim_conv(conv: nn.Conv2d, x, cout: int):
    """``conv`` restricted to its first ``cout`` filters over the channels ``x`` has: one width of
    a weight tensor shared by every width (ARM's USConv)."""
    bias = None if conv.bias is None else conv.bias[:cout]
    return F.conv2d(x, conv.weight[:cout, : x.shape[1]], bias, conv.stride, conv.padding, conv.dilation)


class WidthSupernet:
    """What ARM's supernets share: routes named by width (``"w16"`` or 16, None = the widest), and
    each width materialised as a standalone net holding a contiguous copy of its slice of the shared
    weights (slicing on every call is slow on a CPU). Subclasses set ``widths`` (sorted)."""

    widths: tuple[int, ...]

    def width_of(self, route) -> int:
        if route is None:
            return self.widths[-1]
        width = int(str(route).lstrip("w"))
        if width not in self.widths:
            raise ValueError(f"width {width} is not one of {self.widths}")
        return width

    def _load_slices_into(self, net: nn.Module) -> nn.Module:
        """``net`` (a narrower plain copy of this supernet) with the leading slice of every tensor."""
        shapes = net.state_dict()
        net.load_state_dict({k: v[tuple(slice(0, n) for n in shapes[k].shape)].contiguous()
                             for k, v in self.state_dict().items()})
        return net.eval()
