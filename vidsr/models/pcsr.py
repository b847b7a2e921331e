"""PCSR: a BSRN or WDSR feature backbone, a pixel-level classifier and upsamplers of different cost.

Every HR pixel is produced by one MLP ("upsampler") from the LR feature nearest to it plus its
sub-pixel position and cell size (LIIF-style), as a residual over bicubic. A small MLP classifier
scores, per HR pixel, which upsampler it needs; the router (``vidsr.routing.pcsr``) turns those
scores into a choice, and ``render`` runs each upsampler only on the pixels gathered for it.

One change from the published heads, with identical maths: the first layer of each MLP is split
into its feature part, computed once per LR pixel as a 1x1 conv (all ``s*s`` HR pixels that take
that LR pixel as nearest share it), and its position part, a bias per sub-pixel phase. That makes
the first layer ``s*s`` times cheaper.

Upsamplers are ordered cheapest first: route names ``light`` ... ``heavy``. A config's hidden-size
list may be empty: that upsampler is a sub-pixel convolution (``SubPixelHead``), not an MLP.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .bsrn import BSRNFeatures
from .wdsr import WDSRFeatures
from .interpolation import upscale
from .wdsr import he_init, zero_init


# HR pixels per pass through an MLP's hidden layers: over a whole batch at once the hidden
# activations reach hundreds of MB at x4; in chunks of a few MB they stay in memory the allocator
# reuses, which is faster (most of all for a library caller without ``vidsr.runtime``'s tuning).
# Same maths, so the same output.
CHUNK_PIXELS = 8192
# ``render_rows`` projects only the LR rows an MLP head serves, not its whole window, when they are
# fewer than this share of the window (gathered rows cost more per row than a convolution).
GATHER_PROJECTION_BELOW = 0.4


def _chunk(total: int, pixels_per_item: int = 1) -> int:
    """Items per pass: a few thousand HR pixels' worth in inference, everything at once in training
    (autograd keeps every chunk's activations anyway)."""
    if torch.is_grad_enabled():
        return max(1, total)
    return max(1, CHUNK_PIXELS // pixels_per_item)


def phase_positions(scale: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(s*s, 4) position inputs per sub-pixel phase (row-major): offset from the nearest LR pixel
    centre in LR pixels (scaled to [-1, 1)) and the cell size in LR pixels."""
    offsets = [(p + 0.5) / scale - 0.5 for p in range(scale)]
    rows = [[2 * dy, 2 * dx, 1 / scale, 1 / scale] for dy in offsets for dx in offsets]
    return torch.tensor(rows, device=device, dtype=dtype)


class PixelMLP(nn.Module):
    """An MLP over [LR features, position]; the feature half of layer 1 runs at LR. With
    ``unfold`` it reads the 3x3 LR neighbourhood of features (LIIF's feature unfolding) as a 3x3
    conv, giving the head the spatial context a pixel-shuffle conv has."""

    def __init__(self, feat_channels: int, hidden: tuple[int, ...], out: int, unfold: bool = False):
        super().__init__()
        self.project = nn.Conv2d(feat_channels, hidden[0], 3 if unfold else 1, padding=1 if unfold else 0)
        self.position = nn.Linear(4, hidden[0], bias=False)
        sizes = list(hidden) + [out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        he_init(self.project, self.position, *self.layers[:-1])
        zero_init(self.layers[-1])  # upsamplers start at bicubic, the classifier at an even split

    def phase_bias(self, scale: int, like: torch.Tensor) -> torch.Tensor:
        return self.position(phase_positions(scale, like.device, like.dtype))  # (s*s, hidden0)

    def _tail(self, h: torch.Tensor, head: tuple | None = None) -> torch.Tensor:
        """The MLP from its first layer's pre-activation ``h``, a fresh tensor (a sum or a gather,
        whose backward does not need it), so every ReLU can run in place. ``head``: (weight, bias)
        to use instead of the last layer's."""
        *hidden, last = self.layers  # not self.layers[:-1]: slicing builds a new ModuleList per call
        for layer in hidden:
            h = layer(F.relu(h, inplace=True))
        h = F.relu(h, inplace=True)
        return last(h) if head is None else F.linear(h, *head)

    def lr_rows(self, feats: torch.Tensor) -> torch.Tensor:
        """The first layer's LR part over (N, C, h, w) features as (N*h*w, H0) rows, channel-last:
        what ``dense`` and ``gathered`` add each HR pixel's phase bias to."""
        return self.project(feats).permute(0, 2, 3, 1).reshape(-1, self.project.out_channels)

    def phases(self, lr_rows: torch.Tensor, bias: torch.Tensor, head: tuple | None = None) -> torch.Tensor:
        """(rows, H0) LR projections and (P, H0) phase terms -> (rows, P, out): every phase of every
        row, one matrix product per layer over all of them."""
        return self._tail(lr_rows.unsqueeze(1) + bias, head)

    def dense(self, feats: torch.Tensor, scale: int, head: tuple | None = None) -> torch.Tensor:
        """Every HR pixel through this MLP: (N, C, h, w) -> (N, out, h*s, w*s). ``head``: (weight,
        bias) in place of the last layer's (``out`` is then its row count)."""
        n, _, h, w = feats.shape
        proj = self.lr_rows(feats)
        bias = self.phase_bias(scale, proj)  # (s*s, H0) row-major phases
        y = proj.new_empty(n * h * w, scale * scale, self.layers[-1].out_features if head is None else head[0].shape[0])
        rows = _chunk(n * h * w, scale * scale)
        for a in range(0, n * h * w, rows):
            y[a : a + rows] = self.phases(proj[a : a + rows], bias, head)
        out = y.shape[-1]
        y = y.reshape(n, h, w, scale, scale, out).permute(0, 5, 1, 3, 2, 4)
        return y.reshape(n, out, h * scale, w * scale)

    # -- the interface ``PCSR.render`` and ``render_rows`` use (shared with ``SubPixelHead``) --

    def prepare(self, feats: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
        """What a window computes once at LR for every pixel it routes here: the LR projection as
        (N*h*w, H0) rows and the (s*s, H0) phase terms."""
        proj = self.lr_rows(feats)
        return proj, self.phase_bias(scale, proj)

    def lr_macs(self, scale: int) -> float:
        """MACs per HR pixel of the LR projection (``prepare`` runs it on every pixel of a window,
        ``at_rows`` on every pixel or only on its rows: ``gathers_projection``)."""
        return self.project.weight.numel() / scale**2

    def gathers_projection(self, rows: int, total: int) -> bool:
        """Whether ``at_rows`` projects only the ``rows`` of a ``total``-row window."""
        return rows < GATHER_PROJECTION_BELOW * total

    def project_rows(self, feats: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``lr_rows(feats)[rows]`` computed for those rows only: each row's (3x3, with unfold)
        feature neighbourhood is gathered from the zero-padded, channel-last features and multiplied
        by the projection's weights, as the convolution would."""
        n, c, h, w = feats.shape
        k = self.project.kernel_size[0]
        r = k // 2
        padded = F.pad(feats, (r, r, r, r)).permute(0, 2, 3, 1).reshape(-1, c)
        b, yx = rows // (h * w), rows % (h * w)
        base = b * (h + 2 * r) * (w + 2 * r) + (yx // w) * (w + 2 * r) + yx % w
        offsets = torch.tensor([dy * (w + 2 * r) + dx for dy in range(k) for dx in range(k)], device=rows.device)
        weight = self.project.weight.permute(0, 2, 3, 1).reshape(self.project.out_channels, -1)  # (H0, k*k*C)
        neighbourhoods = padded.index_select(0, (base[:, None] + offsets).reshape(-1)).reshape(rows.numel(), -1)
        return torch.addmm(self.project.bias, neighbourhoods, weight.t())

    def at_rows(self, feats: torch.Tensor, rows: torch.Tensor, scale: int) -> torch.Tensor:
        """Every HR pixel of the LR pixels ``rows`` (indices into the window's N*h*w): (len(rows),
        s*s, out). Each LR row is gathered once for its s*s HR pixels, so this runs at ``dense``'s
        speed per pixel."""
        n, _, h, w = feats.shape
        if self.gathers_projection(rows.numel(), n * h * w):
            proj = self.project_rows(feats, rows)
            rows = torch.arange(rows.numel(), device=rows.device)
        else:
            proj = self.lr_rows(feats)
        bias = self.phase_bias(scale, proj)
        y = proj.new_empty(rows.numel(), bias.shape[0], self.layers[-1].out_features)
        chunk = _chunk(rows.numel(), bias.shape[0])
        for a in range(0, rows.numel(), chunk):
            y[a : a + chunk] = self.phases(proj.index_select(0, rows[a : a + chunk]), bias)
        return y

    def gathered(self, state, rows: torch.Tensor, phase: int) -> torch.Tensor:
        """The HR pixels of one sub-pixel phase over the LR pixels ``rows``: (len(rows), out)."""
        proj, bias = state
        y = proj.new_empty(rows.numel(), self.layers[-1].out_features)
        chunk = _chunk(rows.numel())
        for a in range(0, rows.numel(), chunk):
            y[a : a + chunk] = self._tail(proj.index_select(0, rows[a : a + chunk]).add_(bias[phase]))
        return y


class SubPixelHead(nn.Module):
    """An upsampler with no hidden layer: a linear map of the (with ``unfold``, 3x3) LR features of
    its own for each sub-pixel phase, that is one convolution to s*s outputs and a pixel shuffle
    (ESPCN's tail). An MLP head runs a chain of small matrix products per HR pixel, which on a CPU
    is bound by memory, not MACs: a light MLP can take a large share of the full network's time
    for a small share of its MACs, where one convolution is cheap. It is the light upsampler of configs whose first hidden-size list is empty."""

    def __init__(self, feat_channels: int, scale: int, out: int = 1, unfold: bool = True):
        super().__init__()
        self.out = out  # the scale is fixed by the conv's outputs; methods take it as PixelMLP's do
        self.conv = nn.Conv2d(feat_channels, scale * scale * out, 3 if unfold else 1, padding=1 if unfold else 0)
        zero_init(self.conv)  # starts at bicubic, as the MLP heads do

    def dense(self, feats: torch.Tensor, scale: int) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(feats), scale)

    def prepare(self, feats: torch.Tensor, scale: int) -> torch.Tensor:
        """Every pixel's s*s outputs as (N*h*w, s*s, out) rows, phases row-major as ``PixelMLP``'s."""
        n, _, h, w = feats.shape
        y = self.conv(feats).reshape(n, self.out, scale * scale, h, w)
        return y.permute(0, 3, 4, 2, 1).reshape(n * h * w, scale * scale, self.out)

    def lr_macs(self, scale: int) -> float:
        return self.conv.weight.numel() / scale**2

    def gathers_projection(self, rows: int, total: int) -> bool:
        return False  # its one convolution is cheaper over the window than gathered

    def at_rows(self, feats: torch.Tensor, rows: torch.Tensor, scale: int) -> torch.Tensor:
        return self.prepare(feats, scale).index_select(0, rows)

    def gathered(self, state: torch.Tensor, rows: torch.Tensor, phase: int) -> torch.Tensor:
        return state[:, phase].index_select(0, rows)


def refine(out: torch.Tensor, choice: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Light pixels (0) next to a heavy pixel (1) take the 3x3 mean of ``out``; -1 = not routed.
    PCSR's pixel-wise refinement, no extra network pass. Dilation by shifted ORs on bools and the
    mean by separable shifted sums: the values of a float max-pool plus average-pool, several times
    faster on the CPU."""
    heavy = choice == 1
    near = heavy.clone()
    near[1:] |= heavy[:-1]
    near[:-1] |= heavy[1:]
    wide = near.clone()
    wide[:, 1:] |= near[:, :-1]
    wide[:, :-1] |= near[:, 1:]
    mask = (choice == 0) & wide
    if not mask.any():
        return out, 0
    p = F.pad(out, (1, 1, 1, 1), mode="replicate")[0, 0]
    rows = p[:-2] + p[1:-1] + p[2:]
    box = rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]
    return torch.where(mask, box / 9, out[0, 0])[None, None], int(mask.sum())



class PCSR(nn.Module):
    def __init__(
        self,
        scale: int,
        channels: int = 32,
        blocks: int = 4,
        upsamplers: tuple[tuple[int, ...], ...] = ((16, 16), (64, 64, 64)),
        classifier: tuple[int, ...] = (16,),
        in_channels: int = 1,
        backbone: str = "bsrn",
        unfold: tuple[bool, ...] = (False, True),
    ):
        super().__init__()
        if in_channels != 1:
            raise ValueError("PCSR heads here predict one plane (luma)")
        self.scale = scale
        if backbone == "bsrn":
            self.backbone = BSRNFeatures(in_channels, channels, blocks)
        elif backbone == "wdsr":
            self.backbone = WDSRFeatures(channels, blocks, in_channels)
        else:
            raise ValueError(f"unknown PCSR backbone {backbone!r}")
        self.upsamplers = nn.ModuleList(PixelMLP(channels, tuple(h), 1, bool(u)) if h else SubPixelHead(channels, scale, 1, bool(u))
                                        for h, u in zip(upsamplers, unfold))
        self.classifier = PixelMLP(channels, tuple(classifier), len(upsamplers))
        self.route_names = ("light", "heavy") if len(upsamplers) == 2 else tuple(f"u{i}" for i in range(len(upsamplers)))

    def route_index(self, route) -> int:
        if route is None:
            return len(self.upsamplers) - 1
        if isinstance(route, int):
            return route
        return self.route_names.index(route)

    def classify(self, feats: torch.Tensor, kind: str) -> torch.Tensor:
        """What a router chooses from (``vidsr.routing.protocol.SCORES``): ``lr_score`` per LR pixel
        (``heavy_score``), ``heavy_probability`` or every upsampler's ``probabilities`` per HR pixel."""
        if kind == "lr_score":
            return self.heavy_score(feats)
        if kind == "probabilities":
            return self.probabilities(feats)
        return self.heavy_probability(feats)

    def render_choice(self, x: torch.Tensor, feats: torch.Tensor, choice: torch.Tensor, whole_lr: bool) -> torch.Tensor:
        """The HR output for a choice map per LR pixel (``render_rows``) or per HR pixel (``render``)."""
        return self.render_rows(x, feats, choice) if whole_lr else self.render(x, feats, choice)

    refine = staticmethod(refine)

    def forward(self, x, route=None):
        """Dense inference: every pixel through one upsampler (default: the heaviest), or
        ``route="soft"``: the classifier-probability-weighted sum used in stage-1 training."""
        if route == "soft":
            return self.soft(x)[0]
        if route == "bicubic":
            return upscale(x, self.scale)
        return upscale(x, self.scale) + self.upsamplers[self.route_index(route)].dense(self.backbone(x), self.scale)

    def soft(self, x):
        """(output, probabilities): every upsampler on every pixel, weighted by the classifier."""
        feats = self.backbone(x)
        probs = self.probabilities(feats)
        outs = torch.stack([u.dense(feats, self.scale) for u in self.upsamplers], dim=1)  # (N, M, 1, H, W)
        return upscale(x, self.scale) + (probs.unsqueeze(2) * outs).sum(dim=1), probs

    def probabilities(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, M, H, W) softmax over upsamplers for every HR pixel."""
        return torch.softmax(self.classifier.dense(feats, self.scale), dim=1)

    def heavy_probability(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, H, W) probability of the heaviest upsampler for every HR pixel, as ``probabilities``
        gives it. With two upsamplers the softmax is the sigmoid of the logit difference, so the
        classifier's last layer folds into one output: half its work and no softmax (what the
        budget, ADM and the k rule need; the router calls this on every routed frame)."""
        if len(self.upsamplers) != 2:
            return self.probabilities(feats)[:, -1]
        return torch.sigmoid(self.classifier.dense(feats, self.scale, self._heavy_logit_head())[:, 0])

    def _heavy_logit_head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """With two upsamplers, the classifier's last layer folded into one output: the heavy
        logit minus the light one, as (weight, bias) for ``PixelMLP``'s ``head``."""
        last = self.classifier.layers[-1]
        return (last.weight[1] - last.weight[0])[None], (last.bias[1] - last.bias[0])[None]

    def heavy_score(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, h, w) per LR pixel: how much its HR pixels want the heaviest upsampler, for routing
        whole LR pixels (``render_rows``). With two upsamplers, the largest heavy-minus-light logit
        over the pixel's four corner phases: the classifier's per-phase layers on 4 positions instead
        of s*s, and it ranks LR pixels as the maximum over all s*s phases does."""
        s = self.scale
        if len(self.upsamplers) != 2:
            n, _, h, w = feats.shape
            return self.probabilities(feats)[:, -1].reshape(n, h, s, w, s).amax(dim=(2, 4))
        c, head = self.classifier, self._heavy_logit_head()
        corners = c.phase_bias(s, feats)[[0, s - 1, s * (s - 1), s * s - 1]]
        n, _, h, w = feats.shape
        proj = c.lr_rows(feats)
        score = proj.new_empty(proj.shape[0])
        chunk = _chunk(proj.shape[0], len(corners))
        for a in range(0, proj.shape[0], chunk):
            score[a : a + chunk] = c.phases(proj[a : a + chunk], corners, head)[..., 0].amax(dim=1)
        return score.reshape(n, h, w)

    def render_rows(self, x: torch.Tensor, feats: torch.Tensor, choice: torch.Tensor) -> torch.Tensor:
        """HR output where every HR pixel of LR pixel (n, y, x) comes from upsampler ``choice[n, y,
        x]`` (-1: bicubic). Each upsampler gathers its LR rows once and runs all s*s phases of them
        (``PixelMLP.at_rows``): at dense speed per pixel, where ``render`` gathers every HR pixel on
        its own."""
        s = self.scale
        n, _, h, w = feats.shape
        flat = choice.reshape(-1)
        residual = feats.new_zeros(n * h * w, s * s)
        for j, up in enumerate(self.upsamplers):
            rows = torch.nonzero(flat == j).squeeze(1)
            if rows.numel():
                residual.index_copy_(0, rows, up.at_rows(feats, rows, s)[..., 0])
        residual = residual.reshape(n, h, w, s, s).permute(0, 1, 3, 2, 4).reshape(n, 1, h * s, w * s)
        return upscale(x, s) + residual

    def render(self, x: torch.Tensor, feats: torch.Tensor, choice: torch.Tensor) -> torch.Tensor:
        """HR output where pixel (n, Y, X) comes from upsampler ``choice[n, Y, X]`` (-1: bicubic);
        each upsampler runs only on the pixels gathered for it.

        The work is laid out phase-major, (s*s, N*h*w): for a given sub-pixel phase the selected HR
        pixels are just LR rows, so a gather is one ``index_select`` of the LR projection plus a
        constant phase bias, with no per-pixel index maths or bias gather (faster than gathering HR
        pixels in raster order). One permute puts the residual back in HR layout."""
        s = self.scale
        n, _, h, w = feats.shape
        by_phase = choice.reshape(n, h, s, w, s).permute(2, 4, 0, 1, 3).reshape(s * s, n * h * w)
        residual = feats.new_zeros(s * s, n * h * w)
        for j, up in enumerate(self.upsamplers):
            picked = by_phase == j
            if not picked.any():
                continue
            state = up.prepare(feats, s)
            for phase in range(s * s):
                rows = torch.nonzero(picked[phase]).squeeze(1)
                residual[phase].index_copy_(0, rows, up.gathered(state, rows, phase).squeeze(1))
        residual = residual.reshape(s, s, n, h, w).permute(2, 3, 0, 4, 1).reshape(n, 1, h * s, w * s)
        return upscale(x, s) + residual
