"""Long videos in segments: split at the input's keyframes so each segment decodes on its own, run
each as its own task, and join the encoded segments by remuxing (no second encode).

A segment is a range of presentation timestamps of the video stream, [start, end), both at
keyframes of the input (the last one open-ended). Its frames are exactly the decoded frames whose
timestamps fall in the range, so the segments together hold every frame once, whatever the GOP
structure. Each is encoded alone, so it starts with a keyframe of its own (a closed group of
pictures); joining copies their packets in order, then the input's other streams beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ..io.source import decode_order_only


@dataclass(frozen=True)
class Segment:
    index: int
    start: int  # pts of the first frame's keyframe, in the video stream's time base
    end: int | None  # pts of the next segment's keyframe (None: to the end)


def keyframes(path: Path) -> tuple[list[int], Fraction, float]:
    """(pts of every keyframe packet of the first video stream in presentation order, its time base,
    duration in seconds), from the packets alone (nothing decoded). Packets an MP4 edit list hides
    (a file cut without re-encoding) are never shown: where the first shown frames follow a hidden
    keyframe, the first of them stands for it, so the first segment starts where the video does."""
    with av.open(str(path)) as c:
        video = next(s for s in c.streams.video if not (s.disposition & av.stream.Disposition.attached_pic))
        pts, last, first_shown = [], None, None
        for packet in c.demux(video):
            if packet.pts is None or packet.is_discard:
                continue
            last = packet.pts if last is None else max(last, packet.pts)
            first_shown = packet.pts if first_shown is None else min(first_shown, packet.pts)
            if packet.is_keyframe:
                pts.append(packet.pts)
        if first_shown is not None and (not pts or first_shown < min(pts)):
            pts.append(first_shown)
        tb = video.time_base
        first = min(pts) if pts else 0
        duration = float((last - first) * tb) if last is not None else 0.0
        return sorted(set(pts)), tb, duration


def plan(path: Path, seconds: float) -> list[Segment]:
    """Segments of about ``seconds`` each, cut at keyframes (a segment is never shorter unless the
    input has no keyframe later); one segment when the video is shorter than two, or when its
    container keeps no presentation times (AVI: a segment's frames could not be told by time)."""
    with av.open(str(path)) as c:
        if decode_order_only(c):
            return [Segment(0, 0, None)]
    kf, tb, duration = keyframes(path)
    if duration < 2 * seconds or len(kf) < 2:
        return [Segment(0, kf[0] if kf else 0, None)]
    step = seconds / float(tb)
    starts = [kf[0]]
    for p in kf[1:]:
        if p - starts[-1] >= step:
            starts.append(p)
    if len(starts) > 1 and duration - float((starts[-1] - kf[0]) * tb) < seconds / 2:
        starts.pop()  # a short tail joins the segment before it
    return [Segment(i, s, starts[i + 1] if i + 1 < len(starts) else None) for i, s in enumerate(starts)]


def run_segment(job: str, args, segment: Segment, engines: dict, on_frame=None):
    """Run one segment of ``args.input`` into ``args.output`` (a video-only file), as the job's
    front end runs a whole file."""
    from .jobs import run_job

    return run_job(job, args, engines, on_frame, segment=(segment.start, segment.end))


def _video_packets(path: Path, start: int, time_base: Fraction):
    """The packets of one encoded segment, in decode order, their timestamps moved back to the
    source's: the segment's earliest presented frame is the one at ``start`` (a muxer may have
    shifted them to keep decode timestamps non-negative)."""
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        first = min(p.pts for p in c.demux(st) if p.pts is not None)
        shift = int(round(start * time_base / st.time_base)) - first
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        for p in c.demux(st):
            if p.size == 0 and p.pts is None and p.dts is None:
                continue
            if p.pts is not None:
                p.pts += shift
            if p.dts is not None:
                p.dts += shift
            yield p


def _seconds(packet) -> float:
    t = packet.dts if packet.dts is not None else packet.pts
    return float(t * packet.time_base) if t is not None else 0.0


def join(src: Path, segments: list[Segment], files: list[Path], final: Path, warn) -> int:
    """Remux the encoded segments (in order) and every other stream of ``src`` into ``final``,
    written under a partial name and renamed when complete; returns the video frames written."""
    import heapq

    from ..delivery import tags
    from ..io.sink import EncodeOptions, MediaSink
    from ..io.source import open_source

    container, info = open_source(src)
    try:
        with av.open(str(files[0])) as first:
            tag = tags.from_metadata(dict(first.metadata))  # a downscaled file's tag, as each segment has it
            sink = MediaSink(final, info, container, EncodeOptions(), 0, 0, warn,
                             video_template=first.streams.video[0], tag=tag.text() if tag else None)
        try:
            video = (p for seg, f in zip(segments, files) for p in _video_packets(f, seg.start, info.time_base))
            others = (p for p in container.demux(list(info.other_streams))
                      if not (p.size == 0 and p.pts is None and p.dts is None)) if info.other_streams else iter(())
            tagged = heapq.merge(((_seconds(p), 0, i, p) for i, p in enumerate(video)),
                                 ((_seconds(p), 1, i, p) for i, p in enumerate(others)))
            for _, kind, _, packet in tagged:
                if kind == 0:
                    sink.write_encoded(packet)
                else:
                    sink.write_packet(packet)
            sink.close()
        except BaseException:
            sink.abort()
            raise
        return sink.frames_in
    finally:
        container.close()
