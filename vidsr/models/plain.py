"""The plain baseline: a stack of 3x3 convs with ReLU and a pixel shuffle, residual over bicubic.

With 6 hidden convs of 32 channels (~57K parameters at x2) trained for 10-15 minutes on a 2-core
CPU this is the quality floor the issue sets for our networks; it ships so the quality benchmark
can measure every route against it in the same run.

``SlimPlain`` is the same stack as ARM's slimmable supernet (architecture ``arm-plain``): the width
``w`` subnet uses the first ``w`` channels of every hidden conv, and its full width has exactly the
plain net's layout and parameter names, so a trained plain net can start it (``vidsr train --init``).
Per output pixel the plain stack buys more quality than WDSR-B at the same MACs on our data (x2:
+3.99 dB at 14.2K MACs against the WDSR supernet's w24 at +3.81 dB for 20.9K), which makes it the
better body for routing on a CPU.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import WidthSupernet, slim_conv
from .interpolation import upscale
from .wdsr import he_init, zero_init


# Activations a plain stack can use. "lrelu" (slope 0.1 below zero) keeps a gradient through
# units that a ReLU would leave dead: a deep plain ReLU stack trained with L1 and Adam loses most
# of its last hidden layer in the first steps (see ``TrainConfig.full_width_steps``).
ACTIVATIONS = {"relu": 0.0, "lrelu": 0.1}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")
    slope = ACTIVATIONS[name]
    return nn.LeakyReLU(slope, inplace=True) if slope else nn.ReLU(inplace=True)


class PlainSR(nn.Module):
    def __init__(self, scale: int, channels: int = 32, convs: int = 6, in_channels: int = 1, act: str = "relu"):
        super().__init__()
        self.scale = scale
        self.act = act
        layers = [nn.Conv2d(in_channels, channels, 3, padding=1), activation(act)]
        for _ in range(convs):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), activation(act)]
        he_init(*(m for m in layers if isinstance(m, nn.Conv2d)))
        layers.append(nn.Conv2d(channels, in_channels * scale * scale, 3, padding=1))
        zero_init(layers[-1])
        self.body = nn.Sequential(*layers)

    def forward(self, x, route=None):
        return upscale(x, self.scale) + F.pixel_shuffle(self.body(x), self.scale)

    def deepen_state(self, state: dict) -> tuple[dict, list[str]]:
        """A shallower stack's tensors renamed and completed to this deeper stack's layout, computing
        the same function (as Net2DeeperNet): its tail moves to this stack's tail, and each missing
        hidden conv, placed just before the tail, starts as the identity, which a ReLU after it keeps
        exact (its input is a ReLU's output, never negative; a leaky ReLU would scale the negative
        part twice, so leaky stacks are refused). Each old width's slice is then an identity as
        well, so a supernet keeps every width's function.
        Returns the state and the names of the identity layers; ``state`` comes back as given (and
        no names) when it is not a shallower plain stack."""
        old = sorted(int(k.split(".")[1]) for k in state if k.startswith("body.") and k.endswith(".weight"))
        new = [i for i, m in enumerate(self.body) if isinstance(m, nn.Conv2d)]
        if not old or len(old) >= len(new) or any(not k.startswith("body.") for k in state):
            return state, []
        if ACTIVATIONS[self.act]:
            raise ValueError(f"a deeper {self.act} stack cannot start from a shallower one with the same function "
                             "(only relu stacks can be deepened)")
        out = {k: v for k, v in state.items() if int(k.split(".")[1]) != old[-1]}
        for part in ("weight", "bias"):
            out[f"body.{new[-1]}.{part}"] = state[f"body.{old[-1]}.{part}"]
        added = new[len(old) - 1 : -1]
        for i in added:
            conv = self.body[i]
            eye = torch.zeros_like(conv.weight)
            eye[:, :, 1, 1] = torch.eye(conv.out_channels, conv.in_channels)
            out[f"body.{i}.weight"], out[f"body.{i}.bias"] = eye, torch.zeros_like(conv.bias)
        return out, [f"body.{i}" for i in added]


class SlimPlain(WidthSupernet, PlainSR):
    """Plain-stack supernet: ``forward(x, route)`` with route ``"bicubic"`` or a width ``"w16"`` (or
    16) from ``widths``; default: the full width."""

    def __init__(self, scale: int, widths=(8, 16, 24, 32), convs: int = 6, in_channels: int = 1, act: str = "relu"):
        self.widths = tuple(sorted(widths))
        super().__init__(scale, self.widths[-1], convs, in_channels, act)

    def subnet(self, route) -> nn.Module:
        """The subnet of ``route`` as a standalone ``PlainSR`` (see ``WidthSupernet``)."""
        if route == "bicubic":
            from .interpolation import Interpolation

            return Interpolation(self.scale, "bicubic")
        convs = sum(isinstance(m, nn.Conv2d) for m in self.body) - 2
        return self._load_slices_into(
            PlainSR(self.scale, channels=self.width_of(route), convs=convs, in_channels=self.body[0].in_channels,
                    act=self.act))

    @torch.no_grad()
    def sort_channels(self, x: torch.Tensor) -> None:
        """Reorder every hidden conv's channels by their importance to the full width on ``x`` (mean
        absolute activation times the L1 norm of the next conv's weights that read it), most important
        first; the next conv reads them in the new order, so the full width computes exactly the same
        function and each narrower width becomes the units the full width leans on most. Why: a
        supernet started from a plain net takes its first w channels as they come, which in arm-plain
        x2 left w8 with dead units (+0.003 dB over bicubic, however long it was fine-tuned); sorted
        first, a fine-tune of all widths brought w8 to +1.1 dB."""
        convs = [m for m in self.body if isinstance(m, nn.Conv2d)]
        importance, h = [], x
        for layer in self.body:
            h = layer(h)
            if not isinstance(layer, nn.Conv2d):  # an activation: the output of the conv before it
                importance.append(h.abs().mean(dim=(0, 2, 3)))
        for conv, reader, used in zip(convs[:-1], convs[1:], importance):
            order = torch.argsort(used * reader.weight.abs().sum(dim=(0, 2, 3)), descending=True)
            conv.weight.copy_(conv.weight[order])  # indexing by ``order`` copies: no aliasing
            conv.bias.copy_(conv.bias[order])
            reader.weight.copy_(reader.weight[:, order])

    def forward(self, x, route=None):
        if route == "bicubic":  # ARM's branch with no network
            return upscale(x, self.scale)
        w = self.width_of(route)
        h = x
        for layer in self.body:
            if isinstance(layer, nn.Conv2d):
                h = slim_conv(layer, h, layer.out_channels if layer is self.body[-1] else w)
            else:
                h = layer(h)  # the activation (in place: slim_conv's output is fresh)
        return upscale(x, self.scale) + F.pixel_shuffle(h, self.scale)
