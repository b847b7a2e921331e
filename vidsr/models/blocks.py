"""Building blocks shared by the architectures: BSRN's BSConv/ESA/CCA, slimmable convolutions, and
the unpadded ("valid") form of a plain conv stack that runs tile windows exactly."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from .interpolate import kernel_radius, upscale


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


# Layers a plain conv stack may hold between its convolutions: pointwise, so they need no context.
_POINTWISE = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.Tanh, nn.Identity)


class ValidConvStack(nn.Module):
    """A conv-stack net of the form ``upscale(x) + pixel_shuffle(body(x))`` (the plain baseline,
    ESPCN, the plain supernet's widths) run without padding on a window that carries the body's
    whole receptive radius of context; it returns the window's core only.

    Why: the padded net computes every layer over the whole window, although each layer needs one
    pixel less of context per side than the one before it. Unpadded, each layer computes only what
    the next one needs: an isolated 32-px tile of the 8-conv plain net does 0.72x the work of its
    padded window (about 0.8x the time on a 2-core CPU, measured for 32-128 px cores), and since
    the window holds the whole receptive radius the core is exactly the untiled net's output.

    ``edges`` (top, bottom, left, right) name the sides where the core lies on the frame edge: there
    the window stops at the core and every conv pads that side with zeros, as the padded net does
    at the frame edge, so those cores are exact too."""

    NO_EDGES = (False, False, False, False)

    def __init__(self, body: nn.Sequential, scale: int):
        super().__init__()
        self.body = copy.deepcopy(body)
        self.scale = scale
        self.radius = 0
        self._layers = []  # (MACs per output pixel, pixels shrunk per open side once the layer has run)
        for m in self.body:
            if isinstance(m, nn.Conv2d):
                k = m.kernel_size
                if (m.stride != (1, 1) or m.dilation != (1, 1) or k[0] != k[1] or k[0] % 2 == 0
                        or m.padding != (k[0] // 2, k[1] // 2) or m.padding_mode != "zeros"):
                    raise TypeError(f"{m} is not a same-size odd-kernel convolution")
                m.padding = (0, 0)
                self.radius += k[0] // 2
                self._layers.append((m.in_channels * m.out_channels * k[0] * k[1] / m.groups, self.radius))
            elif not isinstance(m, _POINTWISE):
                raise TypeError(f"{type(m).__name__} is not a convolution or a pointwise layer")
        if self.radius < kernel_radius("bicubic"):  # the residual base is cropped from the window too
            raise TypeError(f"receptive radius {self.radius} is below bicubic's")

    def forward(self, x, edges: tuple[bool, bool, bool, bool] = NO_EDGES):
        top, bottom, left, right = edges
        h = x
        for m in self.body:
            if isinstance(m, nn.Conv2d) and any(edges):
                p = m.kernel_size[0] // 2
                h = F.pad(h, (p * left, p * right, p * top, p * bottom))
            h = m(h)
        base = upscale(x, self.scale)  # replicates at the window's edges: exact where that is the frame's
        c = self.radius * self.scale
        rows, cols = base.shape[-2:]
        base = base[..., 0 if top else c : rows - (0 if bottom else c), 0 if left else c : cols - (0 if right else c)]
        return base + F.pixel_shuffle(h, self.scale)

    def padded_pixels(self, h: int, w: int, edges: tuple[bool, bool, bool, bool] = NO_EDGES) -> float:
        """LR pixels that the padded net would have to run on to do the work that one (h, w) window
        does here: each layer computes only its shrunken area (for the executed-MACs count)."""
        top, bottom, left, right = edges
        open_rows, open_cols = 2 - top - bottom, 2 - left - right
        total = sum(macs for macs, _ in self._layers)
        return sum(macs * (h - open_rows * shrunk) * (w - open_cols * shrunk) for macs, shrunk in self._layers) / total
