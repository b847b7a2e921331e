"""Downscaling frames for delivery: the learned luma downscaler (``fast``), refined per frame
against the full upscaler (``hcd``); chroma by swscale's Lanczos, as the upscaler treats it.

``FrameDownscaler`` works on luma tensors; ``downscale_video`` streams a file through it with the
upscaler's own decode -> process -> encode loop (every other stream, timestamps and colour metadata
carried the same way), ``downscale_image`` does one picture.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import InputError, OutputError, SettingsError, WeightsError
from ..models import registry
from ..models.downscaler import bicubic_downscale, lr_size
from .codec_proxy import qstep_of_qp
from .hcd import HCDRefiner, HCDSettings
from .tags import DeliveryTag

MODES = ("bicubic", "fast", "hcd")
DEFAULT_MODE = "bicubic"  # as fast as a resize; hcd saves more bits at x2 but costs seconds a frame (BENCHMARKS: Delivery)
BICUBIC = "bicubic"  # the tag's downscaler field in --mode bicubic and hcd: no weights
# the QP each encoder's CRF scale roughly quantises at, for the codec stand-in of --mode hcd:
# x264/x265 CRF is on H.264's QP scale; VP9/AV1's 0-63 maps onto 0-51; other encoders are lossless
# or intra codecs at high quality, where only 8-bit rounding remains
DEFAULT_CRF = {"libx264": 23, "libx265": 28, "libsvtav1": 35, "libvpx-vp9": 31, "libaom-av1": 32}
QP_SCALE = {"libx264": 1.0, "libx265": 1.0, "libsvtav1": 51 / 63, "libvpx-vp9": 51 / 63, "libaom-av1": 51 / 63}


def qp_for(encoder: str, crf: int | None) -> float:
    """The QP the codec stand-in quantises at for this encoder and CRF (0: rounding alone)."""
    if encoder not in QP_SCALE:
        return 0.0
    return (DEFAULT_CRF[encoder] if crf is None else crf) * QP_SCALE[encoder]


def shipped_pairs() -> list[str]:
    return [f"{e['upscaler']} x{e['scale']}" for e in registry.shipped_downscalers()]


def delivery_upscalers(scale: int) -> list[str]:
    """The shipped upscalers at ``scale`` trained on decoded video: made for what vidsr downscale delivers."""
    return [m["name"] for m in registry.shipped_models() if m["scale"] == scale and not registry.for_clean_input(m)]


def default_upscaler(scale: int, mode: str = DEFAULT_MODE) -> str:
    """The upscaler a delivery file is made for at ``scale``: a delivery upscaler (trained on
    decoded video, what the client will upscale) first, then the routed default. ``fast`` needs a
    learned downscaler shipped for it."""
    if mode in ("bicubic", "hcd"):
        name = next(iter(delivery_upscalers(scale)), None) or registry.best_routed(scale) or registry.best_shipped(scale)
        if name is None:
            raise SettingsError(f"no upscaler ships for x{scale}")
        return name
    entries = [e["upscaler"] for e in registry.shipped_downscalers() if e["scale"] == scale]
    if not entries:
        raise SettingsError(f"no delivery downscaler ships for x{scale}; shipped: {', '.join(shipped_pairs()) or 'none'}")
    for name in delivery_upscalers(scale):
        if name in entries:
            return name
    routed = registry.best_routed(scale)
    return routed if routed in entries else entries[0]


class FrameDownscaler:
    """HR luma -> LR luma for one stream. ``bicubic``: the antialiased bicubic downscale every
    shipped upscaler was trained to invert; ``fast``: the learned downscaler shipped for the
    upscaler; ``hcd``: the bicubic downscale refined per frame against the full upscaler, through
    the codec stand-in at ``qp``, starting from the frame before (``HCDRefiner``; why it starts
    from bicubic and not from ``fast``: ``delivery/hcd.py``)."""

    def __init__(self, upscaler: str, scale: int, mode: str = DEFAULT_MODE, qp: float = 0.0, device: str = "cpu",
                 hcd: HCDSettings = HCDSettings()):
        if mode not in MODES:
            raise SettingsError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.scale, self.mode, self.qp, self.refiner = scale, mode, qp, None
        self.device = torch.device(device)
        if mode in ("bicubic", "hcd"):
            if registry.manifest_entry(upscaler, scale) is None:
                raise SettingsError(f"{upscaler} x{scale} is not a shipped upscaler to downscale for")
            self.entry, self.net = None, lambda hr: bicubic_downscale(hr, scale)
            self.tag = DeliveryTag(upscaler, scale, BICUBIC, mode)
            if mode == "hcd":
                up = registry.load(upscaler, scale, device=device)
                for p in up.module.parameters():
                    p.requires_grad_(False)
                self.refiner = HCDRefiner(self.net, up.differentiable, hcd, qstep_of_qp(qp) if qp else 0.0)
            return
        entry = registry.downscaler_entry(upscaler, scale)
        if entry is None:
            raise SettingsError(f"no delivery downscaler ships for {upscaler} x{scale} (--mode fast); shipped: "
                                f"{', '.join(shipped_pairs()) or 'none'}")
        upscaler_entry = registry.manifest_entry(upscaler, scale)
        if upscaler_entry is None or upscaler_entry["sha256"] != entry["upscaler_sha256"]:
            raise WeightsError(f"the downscaler for {upscaler} x{scale} was trained against other {upscaler} weights; "
                               "refusing a pair that does not match")
        self.entry = entry
        self.net = registry.load_downscaler(entry, device)
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.tag = DeliveryTag(upscaler, scale, entry["sha256"], mode)

    def size(self, height: int, width: int, even: bool = False) -> tuple[int, int]:
        return lr_size(height, width, self.scale, even)

    def reset(self) -> None:
        """A new stream: nothing of the last one's frames is kept."""
        if self.refiner is not None:
            self.refiner.prev = None

    def luma(self, x: torch.Tensor) -> torch.Tensor:
        """(1, 1, H, W) luma in [0, 1] -> (1, 1, h, w) clamped to [0, 1]."""
        if self.refiner is not None:
            return self.refiner.refine(x)
        with torch.inference_mode():
            return self.net(x).clamp_(0, 1)


# -- video ---------------------------------------------------------------------------------------

@dataclass
class DownscaleJob:
    input: Path
    output: Path
    downscaler: FrameDownscaler
    encode: object  # io.sink.EncodeOptions
    skip_damaged: bool = False
    progress: bool = True
    stats: Callable[[dict], None] | None = None
    segment: tuple[int, int | None] | None = None
    source_size: tuple[int, int] | None = None  # (width, height), once the input is open

    @property
    def tag(self) -> str:
        tag = self.downscaler.tag
        return (tag.with_size(*self.source_size) if self.source_size else tag).text()


def downscale_video(job: DownscaleJob, warn: Callable[[str], None]):
    from ..engine import Engine, plane_to_unit
    from ..io.formats import bit_depth, plane_view, resized_frame, timed_like
    from ..pipeline import SWSCALE, _Processed, transcode

    fd = job.downscaler
    fd.reset()

    def output_size(info):
        job.source_size = (info.width, info.height)  # the tag names it: the upscaler crops back to it
        h, w = fd.size(info.height, info.width, even=True)
        return w, h

    def downscaler(info, sink, note, summary):
        out_bits = bit_depth(sink.frame_format)
        rng = "JPEG" if info.colour.full_range else "MPEG"

        padded = (sink.width * fd.scale, sink.height * fd.scale)

        def process(item) -> _Processed:
            frame = item.frame
            t0 = time.perf_counter()
            if (frame.width, frame.height) != padded:  # edges replicated: an exact 1/scale, luma and chroma alike
                frame = resized_frame(frame, *padded)
            base = frame.reformat(width=sink.width, height=sink.height, format=sink.frame_format,
                                  interpolation=SWSCALE["lanczos"], src_color_range=rng, dst_color_range=rng)
            t1 = time.perf_counter()
            y = fd.luma(plane_to_unit(plane_view(frame, 0), info.bit_depth, info.colour.full_range, fd.device,
                                      torch.float32))
            plane_view(base, 0)[:] = Engine.from_unit(y[0, 0].detach().clone(), out_bits, info.colour.full_range)
            t2 = time.perf_counter()
            timed_like(base, item.frame)
            base.colorspace, base.color_range = info.colour.space, info.colour.range
            record = {"frame": summary.frames,
                      "pts": None if item.frame.pts is None else round(float(item.frame.pts * item.frame.time_base), 6),
                      "ms": {"decode": round(item.ms, 3), "swscale": round((t1 - t0) * 1000, 3),
                             "downscale": round((t2 - t1) * 1000, 3)}}
            summary.frames += 1
            return _Processed(base, record)

        return process

    return transcode(job, output_size, downscaler, warn)


# -- images --------------------------------------------------------------------------------------

def downscale_image(fd: FrameDownscaler, src: Path, dst: Path) -> None:
    """One picture as the upscaler treats one (``colour.through_luma``): luma through the
    downscaler, chroma and alpha by antialiased bicubic; a PNG with the delivery tag in a text chunk."""
    from ..colour import through_luma
    from ..io.images import read_image, write_png
    from ..models.downscaler import bicubic_downscale

    if dst.suffix.lower() != ".png":
        raise OutputError(f"{dst}: images are written as PNG; name the output .png")
    arr, info = read_image(src)
    if min(arr.shape[:2]) < fd.scale:
        raise InputError(f"{src}: {arr.shape[1]}x{arr.shape[0]} is too small to downscale by {fd.scale}")
    x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None].to(fd.device)
    out, _ = through_luma(lambda y: (fd.luma(y).detach(), None),
                          lambda planes: bicubic_downscale(planes, fd.scale).clamp(0, 1), x, rgb=x.shape[1] >= 3)
    tag = fd.tag.with_size(arr.shape[1], arr.shape[0])
    write_png(dst, out[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy(), info, text={"vidsr_delivery": tag.text()})
