"""Training pairs whose low-resolution side went through a real video encoder.

An upscaler for delivery (``vidsr downscale`` -> encode -> ``vidsr``) never sees a clean
downscale: it sees what the decoder gives back, with the encoder's blocking, ringing and lost
texture. Trained on clean pairs it restores detail the codec never kept and sharpens its
artefacts. Here each training pair's LR becomes short clips encoded by the real encoder (PyAV's
libx264 by default) at several CRFs and decoded again; each decoded frame is paired with the
matching crop of the HR. A clip is a window that moves by up to one LR pixel per frame, so most
frames are inter frames coded against a moved reference, as most frames of a video are.
"""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import torch

from ..io.encoder import MIN_SIDE
from .data import Pair

ENCODER_OPTIONS = {"libx264": {"preset": "medium"}, "libx265": {"preset": "fast", "x265-params": "log-level=error"}}


def encode_planes(planes: list[np.ndarray], encoder: str, crf: int) -> list[np.ndarray]:
    """8-bit luma planes (all one even size) through ``encoder`` at ``crf`` as one clip (neutral
    chroma); the decoded luma planes, in order.

    The packets go straight from the encoder to a decoder, with no container between: x265 gives
    clips shorter than its B-frame delay decode times read from memory it never wrote, which a
    muxer refuses. Frames smaller than the encoder's ``MIN_SIDE`` are coded edge-padded and cropped
    back (see ``vidsr.io.encoder.MIN_SIDE``)."""
    h, w = planes[0].shape
    side = MIN_SIDE.get(encoder, 0)
    pad = ((0, max(side - h, 0)), (0, max(side - w, 0)))
    enc = av.CodecContext.create(encoder, "w")
    enc.width, enc.height, enc.pix_fmt = w + pad[1][1], h + pad[0][1], "yuv420p"
    enc.time_base, enc.framerate = Fraction(1, 30), Fraction(30)
    enc.options = {**ENCODER_OPTIONS.get(encoder, {}), "crf": str(crf)}
    dec = av.CodecContext.create(enc.codec.canonical_name, "r")
    yuv = np.full((enc.height * 3 // 2, enc.width), 128, np.uint8)

    def decoded_from(packets) -> list[np.ndarray]:
        return [f.to_ndarray(format="yuv420p")[:h, :w] for p in packets for f in dec.decode(p)]

    decoded = []
    for i, plane in enumerate(planes):
        yuv[: enc.height] = np.pad(plane, pad, mode="edge")
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = i
        decoded += decoded_from(enc.encode(frame))
    decoded += decoded_from([*enc.encode(None), None])  # the encoder flushed, then the decoder
    if len(decoded) != len(planes):
        raise RuntimeError(f"{encoder} crf {crf}: {len(decoded)} frames decoded of {len(planes)}")
    return decoded


def coded_pairs(pairs: list[Pair], scale: int, crfs, encoder: str = "libx264", frames: int = 6,
                seed: int = 0, keep: str = "all") -> list[Pair]:
    """Each pair as ``frames``-frame clips, one per CRF in ``crfs``, through ``encoder``; each
    decoded frame paired with its HR crop (``keep="last"``: only each clip's last frame, an inter
    frame, for a small validation set). The motion per clip is drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    out = []
    for pair in pairs:
        lr8 = np.round(pair.lr.numpy() * 255).clip(0, 255).astype(np.uint8)
        big_h, big_w = lr8.shape
        h, w = (big_h - frames) // 2 * 2, (big_w - frames) // 2 * 2  # even: yuv420p
        if h < 16 or w < 16:
            continue
        for crf in crfs:
            dy, dx = (int(v) for v in rng.integers(-1, 2, size=2))
            # the window has at least ``frames`` pixels of slack each way: start where the whole move fits
            y0, x0 = ({1: 0, -1: frames - 1, 0: frames // 2}[d] for d in (dy, dx))
            starts = [(y0 + k * dy, x0 + k * dx) for k in range(frames)]
            decoded = encode_planes([lr8[y : y + h, x : x + w] for y, x in starts], encoder, crf)
            kept = list(zip(starts, decoded))[-1:] if keep == "last" else list(zip(starts, decoded))
            for k, ((y, x), plane) in enumerate(kept):
                hr = pair.hr[y * scale : (y + h) * scale, x * scale : (x + w) * scale].contiguous()
                out.append(Pair(f"{pair.name}@{encoder}-crf{crf}-{k}", hr, torch.from_numpy(plane.astype(np.float32) / 255)))
    return out


def hcd_pairs(sets: dict[str, list[Pair]], upscaler: str, scale: int, qp: float, cache=None,
              progress: bool = True) -> list[list[Pair]]:
    """Each set's pairs with their LR replaced by ``vidsr downscale --mode hcd``'s (the bicubic
    downscale refined against the shipped ``upscaler`` through the codec stand-in at ``qp``), each
    image refined alone. ``cache``: a file the refined LR is kept in and read back from, for the
    same pairs, upscaler weights and QP."""
    from tqdm import tqdm

    from ..delivery.downscale import FrameDownscaler
    from ..models import registry

    entry = registry.manifest_entry(upscaler, scale)
    key = json.dumps({"upscaler": upscaler, "sha256": entry and entry["sha256"], "scale": scale, "qp": qp,
                      "pairs": {k: [(p.name, list(p.hr.shape)) for p in v] for k, v in sets.items()}}, sort_keys=True)
    if cache is not None and cache.exists():
        saved = torch.load(cache, weights_only=True)
        if saved["key"] == key:
            return [[Pair(p.name, p.hr, lr) for p, lr in zip(sets[k], saved["lr"][k])] for k in sets]
    down = FrameDownscaler(upscaler, scale, "hcd", qp=qp)
    refined = {}
    todo = [(k, p) for k, v in sets.items() for p in v]
    for k, pair in tqdm(todo, desc=f"HCD LR against {upscaler} x{scale}", disable=not progress, leave=False):
        down.reset()  # images, not frames of one stream
        refined.setdefault(k, []).append(down.luma(pair.hr[None, None])[0, 0].detach().contiguous())
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"key": key, "lr": refined}, cache)
    return [[Pair(p.name, p.hr, lr) for p, lr in zip(sets[k], refined.get(k, []))] for k in sets]
