"""Pixel formats: which planar format frames are processed in, what the encoder gets, plane views.

Frames are processed as planar YUV (or grey) at their own bit depth and chroma subsampling: luma
goes through the network, chroma through swscale. Packed, semi-planar, paletted and RGB inputs are
converted once to the nearest planar YUV format.
"""

from __future__ import annotations

import av
import numpy as np

# Chroma subsampling (log2 width, log2 height) -> planar family name.
_FAMILY = {(1, 1): "yuv420p", (1, 0): "yuv422p", (0, 0): "yuv444p"}
_BITS_SUFFIX = {8: "", 10: "10le", 12: "12le", 16: "16le"}


def _round_bits(bits: int) -> int:
    for b in (8, 10, 12, 16):
        if bits <= b:
            return b
    return 16


def describe(fmt: av.VideoFormat) -> tuple[int, tuple[int, int] | None, bool]:
    """(bits per component, chroma subsampling shifts or None for grey, is RGB/paletted)."""
    comps = [c for c in fmt.components if not c.is_alpha]
    bits = max(c.bits for c in comps)
    if fmt.is_rgb or fmt.has_palette:
        return bits, (0, 0), True
    if len(comps) == 1:
        return bits, None, False
    w, h = 64, 64
    shifts = ((w // fmt.chroma_width(w)).bit_length() - 1, (h // fmt.chroma_height(h)).bit_length() - 1)
    return bits, shifts, False


def has_alpha(fmt_name: str) -> bool:
    """Whether a pixel format carries an alpha plane (video keeps colour only: no encoder we write
    through takes one)."""
    return any(c.is_alpha for c in av.VideoFormat(fmt_name).components)


def translucent(frame: av.VideoFrame) -> bool:
    """Whether any pixel of ``frame`` is less than opaque (False for a format with no alpha): a
    GIF decodes as bgra whether or not a frame uses transparency."""
    fmt = frame.format
    alpha = next((c for c in fmt.components if c.is_alpha), None)
    if alpha is None:
        return False
    if fmt.is_planar:
        values = plane_view(frame, alpha.plane)
    else:  # packed, one sample per component: alpha first (argb, abgr) or last (rgba, ya8, rgba64, ...)
        n, p = len(fmt.components), frame.planes[0]
        dtype = np.uint16 if alpha.bits > 8 else np.uint8
        pixels = np.frombuffer(p, dtype).reshape(p.height, -1)[:, : p.width * n].reshape(p.height, p.width, n)
        values = pixels[..., 0 if fmt.name.startswith("a") else -1]
    return int(values.min()) < (1 << alpha.bits) - 1


def working_format(fmt: av.VideoFormat) -> str:
    """The planar format a source format is processed in (itself when it already is one)."""
    bits, shifts, _ = describe(fmt)
    bits = _round_bits(bits)
    if shifts is None:
        return "gray" if bits == 8 else f"gray{_BITS_SUFFIX[bits]}"
    family = _FAMILY.get(shifts, "yuv444p")  # 4:1:1, 4:1:0, 4:4:0 are upsampled to 4:4:4
    return family + _BITS_SUFFIX[bits]


def luma_first(fmt_name: str) -> bool:
    """Whether a frame of this format has its luma alone in plane 0, at the bit depth's own scale
    (planar YUV and grey, NV12): the engine writes its upscaled luma there. RGB, packed YUV and
    high-bit semi-planar formats (P010, its samples in the high bits) are made from such a frame."""
    fmt = av.VideoFormat(fmt_name)
    return fmt_name in ("nv12", "nv21") or (fmt_name.startswith(("yuv", "gray"))
                                            and (fmt.is_planar or len(fmt.components) == 1))


def frame_format(encoder_fmt: str) -> str:
    """The format the pipeline builds output frames in, for an encoder taking ``encoder_fmt``: that
    format where the luma can be written into it, else 4:4:4 YUV at its depth (the sink converts)."""
    return encoder_fmt if luma_first(encoder_fmt) else with_bits("yuv444p", _round_bits(bit_depth(encoder_fmt)))


def bit_depth(fmt_name: str) -> int:
    return describe(av.VideoFormat(fmt_name))[0]


def with_bits(fmt_name: str, bits: int) -> str:
    fam = fmt_name.split("p")[0] + "p" if not fmt_name.startswith("gray") else "gray"
    if fam == "gray":
        return "gray" if bits == 8 else f"gray{_BITS_SUFFIX[bits]}"
    return fam + _BITS_SUFFIX[bits]


def subsampled(fmt_name: str) -> bool:
    return fmt_name.startswith(("yuv420p", "yuv422p"))


def output_format(work: str, codec: av.Codec, out_w: int, out_h: int, requested: str | None = None) -> tuple[str, list[str]]:
    """The pixel format to encode in, and notes for the user about any change from ``work``.

    Keeps the working format (bit depth, subsampling) when the encoder takes it; odd output sizes
    move 4:2:x to 4:4:4 so no row or column is lost; otherwise falls back to what the encoder has.
    """
    supported = [f.name for f in (codec.video_formats or [])]
    if requested:
        if supported and requested not in supported:
            raise ValueError(f"encoder {codec.name} cannot encode {requested}; it takes {', '.join(supported)}")
        return requested, []
    notes = []
    want = work
    if subsampled(work) and (out_w % 2 or (work.startswith("yuv420p") and out_h % 2)):
        want = "yuv444p" + work[7:]
        notes.append(f"output size {out_w}x{out_h} is odd: encoding 4:4:4 ({want}) to keep every pixel")
    if not supported or want in supported:
        return want, notes
    bits = bit_depth(want)
    nearest = _nearest_format(supported, bits, grey=describe(av.VideoFormat(want))[1] is None)
    # the same family at a lower depth only where no format holds every bit (gray10 into PNG:
    # gray16be, not 8-bit gray)
    lower = [b for b in sorted({bits, 12, 10, 8}, reverse=True) if b <= bits]
    family = [] if bit_depth(nearest) >= bits else [with_bits(want, b) for b in lower]
    cand = next((c for c in family if c in supported), nearest)
    notes.append(f"{codec.name} cannot encode {want}; using {cand}")
    return cand, notes


def _nearest_format(supported: list[str], bits: int, grey: bool) -> str:
    """Of an encoder's formats, the one that loses least of a ``bits``-deep picture: colour (or grey,
    for grey), without alpha or a palette where there is one, the least depth that holds ``bits``,
    else the deepest (a 10-bit source into PNG: rgb48be, not the first listed, rgb24)."""
    # per format: bits per component; those with alpha, a palette, 1 bit or the other colour model
    depth, unfit = {}, set()
    for name in supported:
        fmt = av.VideoFormat(name)
        bits_of, shifts, _ = describe(fmt)
        depth[name] = bits_of
        if has_alpha(name) or fmt.has_palette or bits_of == 1 or (shifts is None) != grey:
            unfit.add(name)
    plain = [n for n in supported if n not in unfit] or supported
    holding = [n for n in plain if depth[n] >= bits]
    return min(holding, key=depth.get) if holding else max(plain, key=depth.get)


def plane_view(frame: av.VideoFrame, index: int) -> np.ndarray:
    """A (height, width) numpy view of one plane of a planar frame (no copy; writable)."""
    p = frame.planes[index]
    dtype = np.uint16 if bit_depth(frame.format.name) > 8 else np.uint8
    itemsize = np.dtype(dtype).itemsize
    return np.frombuffer(p, dtype).reshape(p.height, p.line_size // itemsize)[:, : p.width]


def timed_like(out: av.VideoFrame, frame: av.VideoFrame) -> av.VideoFrame:
    """``out`` timed as ``frame`` (a new frame made from it carries no timing): its timestamp and
    its duration, which the muxer needs for the last frame (a GIF's last frame shows for its own)."""
    out.pts, out.time_base, out.duration = frame.pts, frame.time_base, frame.duration
    return out


def resized_frame(frame: av.VideoFrame, width: int, height: int) -> av.VideoFrame:
    """``frame`` (planar) cut or padded to ``width`` x ``height`` at its top-left corner, each plane
    at its own subsampling: cut, the rows and columns past the size are dropped; padded, the last
    row and column repeat (the edge replication the downscaler pads with). No resampling, so luma
    and chroma stay aligned. Colour tags are kept; timestamps are the caller's."""
    out = av.VideoFrame(width, height, frame.format.name)
    for i in range(len(out.planes)):
        src, dst = plane_view(frame, i), plane_view(out, i)
        h, w = min(src.shape[0], dst.shape[0]), min(src.shape[1], dst.shape[1])
        dst[:h, :w] = src[:h, :w]
        dst[h:, :w] = src[h - 1: h, :w]
        dst[:, w:] = dst[:, w - 1: w]
    out.colorspace, out.color_range = frame.colorspace, frame.color_range
    return out
