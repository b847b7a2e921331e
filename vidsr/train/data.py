"""Training and validation data: luma HR/LR pairs from folders of images.

HR targets: the shared training photos are JPEG at about 1 bit per pixel, so they are first
downscaled by 2 with antialiasing (``predownscale``), which removes the block artefacts the network
would otherwise learn to reproduce. LR inputs: antialiased bicubic downscale of the whole HR image
by ``scale``, rounded to 8 bits like a real decoded frame. Pairs are made once per image; batches
are random aligned crops with flips and 90-degree rotations.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..metrics import rgb_to_luma
from ..models.interpolation import downscale

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
SHARED_DATA = Path(os.environ.get("VIDSR_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))


def default_folder(kind: str) -> Path:
    """``../shared/data/{train,val}`` beside the checkout, or ``$VIDSR_DATA/{kind}``."""
    return SHARED_DATA / kind


def shown(folder: Path) -> str:
    """How a report names an image folder: the default one as ``../shared/data/KIND`` (wherever
    the checkout is), any other as given."""
    for kind in ("train", "val"):
        if Path(folder).resolve() == default_folder(kind).resolve() and "VIDSR_DATA" not in os.environ:
            return f"../shared/data/{kind}"
    return str(folder)


def list_images(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images in {folder}")
    return files


def load_luma(path: Path, predownscale: int = 1, kernel: str = "bicubic") -> torch.Tensor:
    """An image file as a (H, W) float32 luma plane in [0, 1], optionally downscaled first with
    antialiased bicubic (default) or PIL's Lanczos at 8 bits (how the shared validation images were
    made; it trained a plain net 0.3 dB worse in an 800-step A/B, so it is not the default)."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if predownscale > 1 and kernel == "lanczos":
            im = im.resize((im.width // predownscale, im.height // predownscale), Image.Resampling.LANCZOS)
        rgb = np.array(im)
    if predownscale > 1 and kernel == "bicubic":
        h, w = (rgb.shape[0] // predownscale) * predownscale, (rgb.shape[1] // predownscale) * predownscale
        t = torch.from_numpy(rgb[:h, :w]).permute(2, 0, 1)[None].float() / 255.0
        rgb = downscale(t, predownscale)[0].permute(1, 2, 0).clamp(0, 1).numpy()
    return torch.from_numpy(rgb_to_luma(rgb))


def quantize8(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x.clamp(0, 1) * 255) / 255


@dataclass
class Pair:
    name: str
    hr: torch.Tensor  # (H, W)
    lr: torch.Tensor  # (H/s, W/s), 8-bit levels


def make_pair(name: str, hr: torch.Tensor, scale: int) -> Pair:
    h, w = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
    hr = hr[:h, :w].contiguous()
    lr = quantize8(downscale(hr[None, None], scale)[0, 0])
    return Pair(name, hr, lr)


def load_pairs(folder: Path, scale: int, predownscale: int = 1, kernel: str = "bicubic") -> list[Pair]:
    return [make_pair(p.stem, load_luma(p, predownscale, kernel), scale) for p in list_images(folder)]


class PatchSampler:
    """Random aligned (LR, HR) patch batches from a list of pairs, areas weighted by size.

    ``texture_bias`` in [0, 1] skews sampling towards textured patches: a patch is kept with
    probability ``1 - bias + bias * min(1, std / 0.05)`` (std of its LR luma). Photos are mostly
    smooth (sky, bokeh) where interpolation is already right; the routers send those regions to
    interpolation anyway, so the networks' capacity is better spent on detail."""

    def __init__(self, pairs: list[Pair], scale: int, patch: int, seed: int = 0, texture_bias: float = 0.0):
        self.pairs = [p for p in pairs if min(p.lr.shape) >= patch]
        if not self.pairs:
            raise ValueError(f"no training image is at least {patch} px at LR")
        self.scale, self.patch = scale, patch
        self.texture_bias = texture_bias
        areas = np.array([p.lr.numel() for p in self.pairs], dtype=np.float64)
        self.weights = areas / areas.sum()
        self.rng = np.random.default_rng(seed)

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        s, p = self.scale, self.patch
        lrs, hrs = [], []
        while len(lrs) < size:
            pair = self.pairs[int(self.rng.choice(len(self.pairs), p=self.weights))]
            y = int(self.rng.integers(0, pair.lr.shape[0] - p + 1))
            x = int(self.rng.integers(0, pair.lr.shape[1] - p + 1))
            lr = pair.lr[y : y + p, x : x + p]
            if self.texture_bias > 0:
                keep = 1 - self.texture_bias + self.texture_bias * min(1.0, float(lr.std()) / 0.05)
                if self.rng.random() >= keep:
                    continue
            hr = pair.hr[y * s : (y + p) * s, x * s : (x + p) * s]
            k, flip = int(self.rng.integers(0, 4)), bool(self.rng.integers(0, 2))
            if flip:
                lr, hr = lr.flip(-1), hr.flip(-1)
            lrs.append(torch.rot90(lr, k, (0, 1)))
            hrs.append(torch.rot90(hr, k, (0, 1)))
        return torch.stack(lrs)[:, None].contiguous(), torch.stack(hrs)[:, None].contiguous()
