"""Generated test media, made with PyAV inside the tests: moving patterns with audio, subtitles,
rotation, colour tags, VFR timestamps, odd sizes and 10-bit, so each "must survive" property can
be checked on a file whose truth we know."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.subtitles.subtitle import SubtitleSet

ASS_HEADER = (
    b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
    b"Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
    b"Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, "
    b"MarginR, MarginV, Encoding\nStyle: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
    b"[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)


@dataclass
class Spec:
    width: int = 64
    height: int = 48
    frames: int = 12
    rate: int = 25
    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    vfr: bool = False  # irregular frame durations
    audio: str | None = None  # "aac", "libopus", ...
    subtitles: str | None = None  # "mov_text", "subrip", "ass"
    rotation: int = 0
    colour: tuple[int, int, int, int] | None = None  # (space, primaries, transfer, range)
    options: dict = field(default_factory=dict)


def pattern(i: int, h: int, w: int) -> np.ndarray:
    """A moving smooth pattern with some edges, RGB uint8."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 100 * np.sin((xx + 3 * i) / 7.0)
    g = 128 + 100 * np.cos((yy - 2 * i) / 5.0)
    b = np.where(((xx // 8 + yy // 8 + i) % 2) == 0, 200, 40)
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


def vfr_pts(n: int, time_base: Fraction) -> list[int]:
    """Irregular timestamps: alternating 40 ms and 80 ms, with a 200 ms gap in the middle."""
    t, out = 0.0, []
    for i in range(n):
        out.append(int(round(t / time_base)))
        t += 0.2 if i == n // 2 else (0.04 if i % 2 == 0 else 0.08)
    return out


def make_video(path: Path, spec: Spec = Spec()) -> Path:
    out = av.open(str(path), "w")
    v = out.add_stream(spec.codec, rate=spec.rate, options=dict(spec.options))
    v.width, v.height, v.pix_fmt = spec.width, spec.height, spec.pix_fmt
    tb = Fraction(1, 1000) if spec.vfr else Fraction(1, spec.rate)
    v.codec_context.time_base = tb
    v.time_base = tb
    if spec.rotation:
        v.set_display_rotation(spec.rotation)
    if spec.colour:
        cc = v.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = spec.colour
    a = out.add_stream(spec.audio, rate=48000, layout="stereo") if spec.audio else None
    s = out.add_stream(spec.subtitles) if spec.subtitles else None
    if s is not None:
        s.codec_context.subtitle_header = ASS_HEADER
    out.start_encoding()
    pts = vfr_pts(spec.frames, tb) if spec.vfr else list(range(spec.frames))
    for i in range(spec.frames):
        frame = av.VideoFrame.from_ndarray(pattern(i, spec.height, spec.width), format="rgb24")
        if spec.colour:
            frame.colorspace, frame.color_range = spec.colour[0], spec.colour[3]
        frame = frame.reformat(format=spec.pix_fmt)
        frame.pts, frame.time_base = pts[i], tb
        for p in v.encode(frame):
            out.mux(p)
    for p in v.encode():
        out.mux(p)
    if a is not None:
        n = a.codec_context.frame_size or 1024
        seconds = float(pts[-1] * tb) + 0.1
        t = 0
        while t < seconds * 48000:
            tt = (np.arange(n) + t) / 48000
            tone = (0.2 * np.sin(2 * np.pi * 440 * tt)).astype(np.float32)
            af = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
            af.sample_rate, af.pts = 48000, t
            for p in a.encode(af):
                out.mux(p)
            t += n
        for p in a.encode():
            out.mux(p)
    if s is not None:
        stb = s.time_base
        for k, text in enumerate([b"Hello", b"World"]):
            start = int(0.1 * (k + 1) / stb)
            sub = SubtitleSet.create(b"0,0,Default,,0,0,0,," + text, 0, int(0.1 / stb), pts=start)
            pk = s.codec_context.encode_subtitle(sub)
            pk.stream, pk.pts, pk.dts, pk.duration = s, start, start, int(0.1 / stb)
            out.mux(pk)
    out.close()
    return path


def video_frames(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as c:
        return list(c.decode(video=0))


def packets(path: Path, kind: str) -> list[tuple[int | None, bytes]]:
    """(pts in microseconds, payload) of every packet of the first stream of ``kind``."""
    with av.open(str(path)) as c:
        st = getattr(c.streams, kind)[0]
        out = []
        for p in c.demux(st):
            if p.size:
                out.append((None if p.pts is None else round(float(p.pts * p.time_base) * 1e6), bytes(p)))
        return out
