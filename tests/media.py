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
    audio_rate: int = 48000
    subtitles: str | None = None  # "mov_text", "subrip", "ass"
    rotation: int = 0
    colour: tuple[int, int, int, int] | None = None  # (space, primaries, transfer, range)
    options: dict = field(default_factory=dict)
    languages: dict = field(default_factory=dict)  # stream type ("audio", "subtitle") -> language tag


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


def _encode_video(out, stream, frames: int, pts: list[int], tb: Fraction, colour=None, seed: int = 0):
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(pattern(i + seed, stream.height, stream.width), format="rgb24")
        if colour:
            frame.colorspace, frame.color_range = colour[0], colour[3]
        frame = frame.reformat(format=stream.pix_fmt)
        frame.pts, frame.time_base = pts[i], tb
        for p in stream.encode(frame):
            out.mux(p)
    for p in stream.encode():
        out.mux(p)


def _encode_tone(out, stream, seconds: float):
    """A 440 Hz stereo tone of ``seconds``, in the encoder's own sample format."""
    n, rate = stream.codec_context.frame_size or 960, stream.codec_context.sample_rate
    resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="stereo", rate=rate)
    t = 0
    while t < seconds * rate:
        tone = (0.2 * np.sin(2 * np.pi * 440 * (np.arange(n) + t) / rate)).astype(np.float32)
        af = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        af.sample_rate, af.pts = rate, t
        for r in resampler.resample(af):
            for p in stream.encode(r):
                out.mux(p)
        t += n
    for p in stream.encode():
        out.mux(p)


def _write_subtitles(out, stream, texts: list[bytes], every: float):
    """One event per text, each ``every`` seconds long, the first at ``every``."""
    tb = stream.time_base
    for k, text in enumerate(texts):
        start = int(every * (k + 1) / tb)
        sub = SubtitleSet.create(b"0,0,Default,,0,0,0,," + text, 0, int(every / tb), pts=start)
        pk = stream.codec_context.encode_subtitle(sub)
        pk.stream, pk.pts, pk.dts, pk.duration = stream, start, start, int(every / tb)
        out.mux(pk)


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
    a = out.add_stream(spec.audio, rate=spec.audio_rate, layout="stereo") if spec.audio else None
    s = out.add_stream(spec.subtitles) if spec.subtitles else None
    if s is not None:
        s.codec_context.subtitle_header = ASS_HEADER
    for stream in (a, s):
        if stream is not None and stream.type in spec.languages:
            stream.metadata["language"] = spec.languages[stream.type]
    out.start_encoding()
    pts = vfr_pts(spec.frames, tb) if spec.vfr else list(range(spec.frames))
    _encode_video(out, v, spec.frames, pts, tb, spec.colour)
    if a is not None:
        _encode_tone(out, a, float(pts[-1] * tb) + 0.1)
    if s is not None:
        _write_subtitles(out, s, [b"Hello", b"World"], every=0.1)
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


# -- a file carrying every kind of stream, for the "nothing lost" matrix ---------------------------

MASTER_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"  # BT.2020, 1000 nits
MAX_CLL = (1000, 400)
# The main video of each source kind: (encoder, pixel format, colour tags, encoder options, VFR)
SOURCES = {
    "8bit": ("libx264", "yuv420p", (1, 1, 1, 1), {}, False),
    "10bit": ("libx265", "yuv420p10le", (9, 9, 14, 1), {"x265-params": "log-level=error"}, False),
    "hdr10": ("libx265", "yuv420p10le", (9, 9, 16, 1),
              {"x265-params": f"log-level=error:master-display={MASTER_DISPLAY}:max-cll={MAX_CLL[0]},{MAX_CLL[1]}"}, False),
    "intra": ("ffv1", "yuv420p", (1, 1, 1, 1), {}, False),
    "vfr": ("libx264", "yuv420p", (1, 1, 1, 1), {}, True),
}
FONT = b"\x00\x01\x00\x00" + bytes(range(256)) * 2  # the bytes only need to survive, not render


def jpeg(width: int = 16, height: int = 16, level: int = 120) -> bytes:
    """A tiny JPEG picture (cover art)."""
    cc = av.CodecContext.create("mjpeg", "w")
    cc.width, cc.height, cc.pix_fmt, cc.time_base = width, height, "yuvj420p", Fraction(1, 25)
    f = av.VideoFrame.from_ndarray(np.full((height, width, 3), level, np.uint8), format="rgb24").reformat(format="yuvj420p")
    return b"".join(bytes(p) for p in cc.encode(f) + cc.encode(None))


def make_carrier(path: Path, source: str, frames: int = 6, width: int = 64, height: int = 64) -> Path:
    """A Matroska file with the main video of a ``SOURCES`` kind and, after it: a second video
    (H.264 with B-frames, so Matroska gives its first packets, keyframe included, no dts), AAC and
    Opus audio, SubRip and ASS subtitles, a font attachment and cover art. Each carried stream has
    its own language tag. (At least 64 a side: the wheel's x265 corrupts its heap on smaller frames,
    see ``vidsr.io.encoder.MIN_SIDE``.)"""
    codec, pix_fmt, colour, options, vfr = SOURCES[source]
    out = av.open(str(path), "w")
    v = out.add_stream(codec, rate=25, options=dict(options))
    v.width, v.height, v.pix_fmt = width, height, pix_fmt
    tb = Fraction(1, 1000) if vfr else Fraction(1, 25)
    v.codec_context.time_base = v.time_base = tb
    cc = v.codec_context
    cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = colour
    angle = out.add_stream("libx264", rate=25, options={"bf": "2"})
    angle.width, angle.height, angle.pix_fmt = 32, 16, "yuv420p"
    angle.metadata["language"] = "ita"
    aac = out.add_stream("aac", rate=48000, layout="stereo")
    aac.metadata["language"] = "jpn"
    opus = out.add_stream("libopus", rate=48000, layout="stereo")
    opus.metadata["language"] = "eng"
    srt, ass = out.add_stream("subrip"), out.add_stream("ass")
    srt.metadata["language"], ass.metadata["language"] = "ger", "spa"
    for s in (srt, ass):
        s.codec_context.subtitle_header = ASS_HEADER
    out.add_attachment("font.ttf", "font/ttf", FONT)
    out.add_attachment("cover.jpg", "image/jpeg", jpeg())
    pts = vfr_pts(frames, tb) if vfr else list(range(frames))
    _encode_video(out, v, frames, pts, tb, colour)
    _encode_video(out, angle, frames, list(range(frames)), Fraction(1, 25), seed=7)
    for audio in (aac, opus):
        _encode_tone(out, audio, float(pts[-1] * tb) + 0.1)
    _write_subtitles(out, srt, [b"Hallo", b"Welt"], every=0.04)
    _write_subtitles(out, ass, [b"Hola", b"Mundo"], every=0.04)
    out.close()
    return path


def make_data_carrier(path: Path, frames: int = 6, width: int = 64, height: int = 32) -> Path:
    """An MPEG-TS file with H.264, AAC and a data stream (opaque timed metadata, one packet a frame):
    the containers that can hold data streams are few, so it has its own carrier."""
    out = av.open(str(path), "w")
    v = out.add_stream("libx264", rate=25)
    v.width, v.height, v.pix_fmt = width, height, "yuv420p"
    tb = Fraction(1, 25)
    aac = out.add_stream("aac", rate=48000, layout="stereo")
    data = out.add_data_stream()
    for i in range(frames):
        pk = av.Packet(b"KLV" + bytes([i]) * 13)
        pk.stream, pk.time_base, pk.pts, pk.dts = data, tb, i, i
        out.mux(pk)
    _encode_video(out, v, frames, list(range(frames)), tb)
    _encode_tone(out, aac, frames / 25 + 0.1)
    out.close()
    return path


def make_damaged_frame(path: Path, display_index: int, frames: int = 20) -> Path:
    """An H.264 MP4 with B-frames (decode order differs from display order) in which the packet of
    one frame, named by its display index, holds garbage: the container is sound, the picture not."""
    clean = path.with_name(f"{path.stem}.clean.mp4")
    make_video(clean, Spec(frames=frames, options={"bf": "2", "b-pyramid": "none", "g": "50",
                                                    "x264-params": "scenecut=0:b-adapt=0"}))
    rng = np.random.default_rng(display_index)
    with av.open(str(clean)) as src, av.open(str(path), "w") as out:
        stream = src.streams.video[0]
        copy = out.add_stream_from_template(stream)
        for p in src.demux(stream):
            if not p.size:
                continue
            if round(float(p.pts * p.time_base) * 25) == display_index:
                data = bytes(p)
                bad = av.Packet(data[:4] + rng.integers(0, 256, len(data) - 4, dtype=np.uint8).tobytes())
                bad.pts, bad.dts, bad.time_base = p.pts, p.dts, p.time_base
                p = bad
            p.stream = copy
            out.mux(p)
    clean.unlink()
    return path


def make_trimmed(path: Path, hidden: int = 5, shown: int = 20, rate: int = 25, gop: int = 25,
                 keyframe_at_cut: bool = False) -> Path:
    """An MP4 cut without re-encoding: its first ``hidden`` frames are before the edit list's start,
    as ``ffmpeg -ss T -c copy`` leaves them. The demuxer reads those after the last keyframe before
    the cut as hidden references and leaves out those before it (all of them with
    ``keyframe_at_cut``). Shown frame i is flat at level 100 + i."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=rate, options={"g": str(gop), "bf": "2", "sc_threshold": "0"})
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        v.codec_context.time_base = Fraction(1, rate)
        for i in range(-hidden, shown):  # negative times: before the edit list's start
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 100 + i, np.uint8), "rgb24")
            f.pts, f.time_base = i, Fraction(1, rate)
            if keyframe_at_cut and i == 0:
                f.pict_type = av.video.frame.PictureType.I
            out.mux(v.encode(f))
        out.mux(v.encode())
    return path


def make_size_change(path: Path, sizes=((48, 32), (64, 48)), frames: int = 4, interlaced: bool = False) -> Path:
    """An H.264 MPEG-TS whose picture size changes mid-stream (each size a run of ``frames``, coded
    by its own encoder, headers in-band as broadcast streams carry them). Each picture's left half
    is bright and its right half a level that moves with the frame number."""
    with av.open(str(path), "w", format="mpegts") as out:
        s = out.add_stream("h264", rate=25)
        s.width, s.height, s.time_base = *sizes[0], Fraction(1, 90000)
        i = 0
        for w, h in sizes:
            cc = av.CodecContext.create("libx264", "w")
            cc.width, cc.height, cc.pix_fmt, cc.time_base, cc.framerate = w, h, "yuv420p", Fraction(1, 25), 25
            cc.options = {"bframes": "0", **({"x264-params": "interlaced=1:tff=1"} if interlaced else {})}
            packets = []
            for _ in range(frames):
                picture = np.full((h, w, 3), 40 * i % 250, np.uint8)
                picture[:, : w // 2] = 220
                f = av.VideoFrame.from_ndarray(picture, "rgb24").reformat(format="yuv420p")
                f.pts, i = i, i + 1
                packets += cc.encode(f)
            for p in packets + cc.encode(None):
                p.stream, p.pts, p.dts, p.time_base = s, p.pts * 3600, p.dts * 3600, s.time_base
                out.mux(p)
    return path


def make_icc_video(path: Path, frames: int = 3, width: int = 64, height: int = 32) -> Path:
    """PNG-coded video (MOV) whose frames carry an ICC profile: the PNG decoder gives the profile's
    side data a name in its metadata, which PyAV mishandles (``vidsr.io.hdr.side_data``)."""
    import io

    from PIL import Image, ImageCms

    still = io.BytesIO()
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(pattern(0, height, width)).save(still, format="PNG", icc_profile=icc)
    with av.open(io.BytesIO(still.getvalue())) as c:
        picture = list(c.decode(video=0))[0]
    with av.open(str(path), "w") as out:
        v = out.add_stream("png", rate=25)
        v.width, v.height, v.pix_fmt = width, height, "rgb24"
        for i in range(frames):
            f = picture.reformat(format="rgb24")  # keeps the profile: reformat copies side data
            f.pts, f.time_base = i, Fraction(1, 25)
            for p in v.encode(f):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
    return path


def png16(array: np.ndarray) -> bytes:
    """A 16-bit PNG from an (H, W, C) uint16 array, C = 2 (grey+alpha), 3 or 4, by FFmpeg's encoder
    (Pillow cannot write 16-bit colour)."""
    channels = array.shape[-1]
    fmt = {2: "ya16be", 3: "rgb48be", 4: "rgba64be"}[channels]
    rgb = array if channels != 2 else np.concatenate([array[..., :1].repeat(3, -1), array[..., 1:]], -1)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb48le" if channels == 3 else "rgba64le")
    frame = frame.reformat(format=fmt)
    if channels == 2:  # swscale's RGB -> grey is not exact: write the samples in directly
        h, w = array.shape[:2]
        np.frombuffer(frame.planes[0], np.uint8).reshape(h, -1)[:, : w * 4] = array.astype(">u2").view(np.uint8).reshape(h, w * 4)
    cc = av.CodecContext.create("png", "w")
    cc.width, cc.height, cc.pix_fmt, cc.time_base = array.shape[1], array.shape[0], fmt, Fraction(1, 1)
    return b"".join(bytes(p) for p in cc.encode(frame) + cc.encode(None))


def with_png_chunk(png: bytes, kind: bytes, payload: bytes) -> bytes:
    """``png`` with one more chunk (iCCP, eXIf) right after its header chunk."""
    import struct
    import zlib

    chunk = struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    end_of_header = 8 + 25  # signature, then IHDR: length, type, 13 bytes, CRC
    return png[:end_of_header] + chunk + png[end_of_header:]


def read_png16(path: Path) -> np.ndarray:
    """The samples of a 16-bit PNG, exactly, as FFmpeg decodes them: (H, W, C) uint16."""
    with av.open(str(path)) as c:
        frame = list(c.decode(video=0))[0]
    channels = {"rgb48be": 3, "rgba64be": 4, "ya16be": 2, "gray16be": 1}[frame.format.name]
    rows = np.ascontiguousarray(np.frombuffer(frame.planes[0], np.uint8).reshape(frame.height, -1)[:, : frame.width * channels * 2])
    return rows.view(">u2").reshape(frame.height, frame.width, channels).astype(np.uint16)
