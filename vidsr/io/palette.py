"""Paletted output (GIF): each frame gets its own 256-colour palette.

A fixed 3-3-2 palette (8 reds, 8 greens, 4 blues) bands every smooth gradient. Here FFmpeg's
``palettegen`` makes a palette from each frame alone and ``paletteuse`` maps the frame onto it with
error-diffusion dithering; the GIF muxer writes it as that frame's local colour table. On a smooth
colour gradient the mean error falls from about 17 levels (3-3-2) to about 4.
"""

from __future__ import annotations

from fractions import Fraction

import av

from .formats import timed_like

DITHER = "sierra2_4a"  # FFmpeg's default for paletteuse: error diffusion, light on noise


class FramePalettes:
    """bgra frames -> pal8 frames, each with its own palette (a graph per frame size)."""

    def __init__(self):
        self._graph, self._size = None, None

    def __call__(self, frame: av.VideoFrame) -> av.VideoFrame:
        if self._size != (frame.width, frame.height):
            self._graph, self._size = _graph(frame.width, frame.height), (frame.width, frame.height)
        self._graph.push(frame)
        return timed_like(self._graph.pull(), frame)


def _graph(width: int, height: int) -> av.filter.Graph:
    """buffer -> split -> (palettegen per frame) -> paletteuse(new palette per frame) -> buffersink."""
    graph = av.filter.Graph()
    source = graph.add_buffer(width=width, height=height, format="bgra", time_base=Fraction(1, 1000))
    split = graph.add("split")
    make = graph.add("palettegen", "stats_mode=single:reserve_transparent=0")
    use = graph.add("paletteuse", f"new=1:dither={DITHER}")
    sink = graph.add("buffersink")
    source.link_to(split)
    split.link_to(use, 0, 0)
    split.link_to(make, 1, 0)
    make.link_to(use, 0, 1)
    use.link_to(sink)
    graph.configure()
    return graph
