"""Interlaced video, made progressive before it is upscaled.

An interlaced frame holds two fields taken a field period apart, on alternate lines. Upscaled as
one picture, every moving edge keeps its combing, scaled up, and the output (progressive: its
lines are no longer fields) is never deinterlaced by a player. So frames flagged interlaced go
through FFmpeg's ``bwdif`` (motion-adaptive, edge-directed) first: one frame out per frame in, each
at its input's time and duration, so the frame count and every timestamp stay as they were. Frames
flagged progressive pass through unchanged (``deint=interlaced``), so mixed content (a progressive
title over interlaced footage) keeps its progressive parts. The filter holds one frame back (it
looks at the next field); the end of the stream flushes it.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Iterable, Iterator

import av
import av.filter

from .formats import timed_like

FILTER = "bwdif"
OPTIONS = "mode=send_frame:parity=auto:deint=interlaced"


def deinterlaced(frames: Iterable[av.VideoFrame], note: Callable[[str], None]) -> Iterator[av.VideoFrame]:
    """``frames`` (planar, in presentation order), progressive: unchanged until the first frame
    flagged interlaced, then all through ``bwdif``; ``note`` is told once when that starts."""
    graph, sink, timing, shape = None, None, deque(), None
    for frame in frames:
        if graph is None:
            if not frame.interlaced_frame:
                yield frame
                continue
            note(f"the video is interlaced: deinterlacing it ({FILTER}, one frame per frame, each at its "
                 "own time)")
        if (frame.width, frame.height, frame.format.name) != shape:  # the first, or the stream changed size
            if graph is not None:
                graph.push(None)  # what the old graph holds comes out first, at its own size
                yield from _pulled(sink, timing)
            graph, sink = _graph(frame)
            shape = (frame.width, frame.height, frame.format.name)
        timing.append(frame)
        graph.push(frame)
        yield from _pulled(sink, timing)
    if graph is not None:
        graph.push(None)
        yield from _pulled(sink, timing)


def _graph(frame: av.VideoFrame):
    graph = av.filter.Graph()
    source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name,
                              time_base=frame.time_base)
    deinterlace = graph.add(FILTER, OPTIONS)
    sink = graph.add("buffersink")
    source.link_to(deinterlace)
    deinterlace.link_to(sink)
    graph.configure()
    return graph, sink


def _pulled(sink, timing: deque) -> Iterator[av.VideoFrame]:
    """The frames the filter has ready, each timed and tagged as the input frame it came from (the
    filter counts in half its input's time base, in fields)."""
    while True:
        try:
            out = sink.pull()
        except (av.error.BlockingIOError, av.error.EOFError):
            return
        source = timing.popleft()
        out = timed_like(out, source)
        out.colorspace, out.color_range = source.colorspace, source.color_range
        yield out
