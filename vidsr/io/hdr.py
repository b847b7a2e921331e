"""HDR10 static metadata (mastering display colour volume, content light level) from the source's
frames into the encoder's own parameters.

The decoder attaches both to every frame as side data, and our frames keep it (swscale's reformat
copies frame properties), but x264, x265 and SVT-AV1 write the SEI/OBU only from their parameters:
FFmpeg hands them the values through ``AVCodecContext.decoded_side_data``, which PyAV can read but
not set. So the values are spelled out in each library's own parameter syntax.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction

import av.filter

MASTERING_DISPLAY = "MASTERING_DISPLAY_METADATA"
CONTENT_LIGHT = "CONTENT_LIGHT_LEVEL"


def side_data(frame) -> dict[str, bytes]:
    """A decoded frame's side data, as bytes by type name.

    Read from a copy without the ICC profile: PyAV 19 wraps each entry's metadata in a Dictionary
    that frees it, and the frame frees it again, so touching ``side_data`` of a frame that carries
    an ICC profile (whose entry has a name in its metadata) crashes the process once both are gone.
    FFmpeg's ``sidedata`` filter drops the entry from the copy before PyAV sees it."""
    graph = av.filter.Graph()
    source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name,
                              time_base=frame.time_base or Fraction(1, 1))
    drop = graph.add("sidedata", "mode=delete:type=ICC_PROFILE")
    sink = graph.add("buffersink")
    source.link_to(drop)
    drop.link_to(sink)
    graph.configure()
    graph.push(frame)
    copy = graph.pull()
    return {sd.type.name: bytes(sd) for sd in copy.side_data.values()}


@dataclass(frozen=True)
class HdrMetadata:
    """HDR10 static metadata, as numbers: chromaticities (x, y) and luminances in cd/m²."""

    primaries: tuple[tuple[Fraction, Fraction], ...] | None = None  # red, green, blue
    white_point: tuple[Fraction, Fraction] | None = None
    luminance: tuple[Fraction, Fraction] | None = None  # (min, max)
    max_cll: int | None = None  # brightest pixel, cd/m²
    max_fall: int | None = None  # brightest frame average, cd/m²

    @classmethod
    def from_frame(cls, frame) -> HdrMetadata | None:
        """The metadata a decoded frame carries, or None when it has none. The side data is FFmpeg's
        AVMasteringDisplayMetadata / AVContentLightMetadata struct, read as laid out in memory (PyAV
        hands the bytes, not the fields)."""
        sides = side_data(frame)
        fields = {}
        if MASTERING_DISPLAY in sides:
            # 10 AVRationals (r, g, b primaries, white point: x, y each; then min, max luminance),
            # then has_primaries and has_luminance
            n = struct.unpack_from("=22i", sides[MASTERING_DISPLAY])
            q = [Fraction(n[i], n[i + 1]) if n[i + 1] else Fraction(0) for i in range(0, 20, 2)]
            if n[20]:
                fields["primaries"] = ((q[0], q[1]), (q[2], q[3]), (q[4], q[5]))
                fields["white_point"] = (q[6], q[7])
            if n[21]:
                fields["luminance"] = (q[8], q[9])
        if CONTENT_LIGHT in sides:
            fields["max_cll"], fields["max_fall"] = struct.unpack_from("=2I", sides[CONTENT_LIGHT])
        return cls(**fields) if fields else None

    def master_display(self, chromaticity, luminance) -> str | None:
        """G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min), the form x264, x265 and SVT-AV1 all take, with each
        number written by ``chromaticity`` or ``luminance`` (the libraries' units differ)."""
        if self.primaries is None or self.luminance is None:
            return None
        (rx, ry), (gx, gy), (bx, by) = self.primaries
        points = zip("GBR", ((gx, gy), (bx, by), (rx, ry)))
        text = "".join(f"{name}({chromaticity(x)},{chromaticity(y)})" for name, (x, y) in points)
        wx, wy = self.white_point
        lo, hi = self.luminance
        return text + f"WP({chromaticity(wx)},{chromaticity(wy)})L({luminance(hi)},{luminance(lo)})"

    def encoder_params(self, codec: str) -> dict[str, str] | None:
        """Entries for the encoder's ``*-params`` option, or None when the encoder has no way to
        take them."""
        if codec not in ENCODER_PARAMS:
            return None
        display_key, light_key, units = ENCODER_PARAMS[codec]
        values = {display_key: self.master_display(*units)}
        if self.max_cll is not None:
            values[light_key] = f"{self.max_cll},{self.max_fall}"
        return {k: v for k, v in values.items() if v is not None}


# The SEI's own units (x264, x265): chromaticity in 0.00002, luminance in 0.0001 cd/m²; SVT-AV1
# takes plain numbers.
SEI_UNITS = (lambda v: str(round(v * 50000)), lambda v: str(round(v * 10000)))
PLAIN_UNITS = (lambda v: f"{float(v):.5f}", lambda v: f"{float(v):.4f}")
# encoder: (mastering display key, light level key, units) in its *-params option
ENCODER_PARAMS = {
    "libx264": ("mastering-display", "cll", SEI_UNITS),
    "libx265": ("master-display", "max-cll", SEI_UNITS),
    "libsvtav1": ("mastering-display", "content-light", PLAIN_UNITS),
}
