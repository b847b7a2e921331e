"""Opening and decoding an input video with PyAV: validation, what must be carried to the output,
and a decode loop that never loses a frame silently.

``open_source`` turns every way a file can be unusable into one ``InputError`` line, and reads
what the output's setup needs from the file's start (cover pictures, HDR10 metadata). ``decode``
yields, in demux order, decoded video frames (converted to the planar working format) and hands on
every packet of every other stream (for the writer to carry). A frame the decoder flags as corrupt,
a decode error, or fewer frames out than packets in (frames dropped inside the decoder) fails the
run naming the frame by its display index, unless ``skip_damaged`` is set, in which case each
skipped frame is reported.
"""

from __future__ import annotations

import heapq
import os
import statistics
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator

import av
import av.error

from ..errors import InputError
from .formats import describe, timed_like, translucent, working_format
from .hdr import HdrMetadata
from .streams import is_cover_art, main_video

# A frame this large would not fit in memory once upscaled and converted to float.
MAX_INPUT_PIXELS = 8192 * 8192
MAX_OUTPUT_PIXELS = 16384 * 16384 // 2


@dataclass
class Colour:
    """Colour description carried from input to output (FFmpeg enum values)."""

    space: int = 2  # matrix; 2 = unspecified
    primaries: int = 2
    transfer: int = 2
    range: int = 0  # 0 unspecified, 1 limited ("tv"), 2 full ("pc")

    @property
    def full_range(self) -> bool:
        return self.range == 2


@dataclass
class VideoInfo:
    width: int
    height: int
    source_format: str
    work_format: str
    bit_depth: int
    time_base: Fraction
    average_rate: Fraction | None
    frames: int  # from the container header; 0 when unknown
    duration: float | None  # seconds, when known
    codec: str
    colour: Colour
    display_matrix: bytes | None  # rotation / flips, copied verbatim
    sample_aspect_ratio: Fraction | None
    container: str
    index: int = 0  # the upscaled stream's index in the file
    other_streams: list = field(default_factory=list)  # av streams to carry over
    cover_pictures: dict[int, bytes] = field(default_factory=dict)  # stream index -> picture file bytes
    hdr: HdrMetadata | None = None  # HDR10 static metadata of the first frame
    # the length a Matroska file states (it keeps no frame count): the video track's own DURATION
    # tag, or else the whole file's (``stated_for_video`` False: any stream may reach it), and the
    # bytes its header promises beyond its end: both reveal a cut file the frame count cannot
    stream_duration: float | None = None
    stated_for_video: bool = True
    missing_bytes: int = 0

    @property
    def rotation(self) -> int:
        if not self.display_matrix:
            return 0
        import numpy as np

        m = np.frombuffer(self.display_matrix, dtype="<i4").astype(np.float64)
        a, b = m[0] / 65536, m[1] / 65536
        return int(round(np.degrees(np.arctan2(b, a)))) % 360


def open_source(path: str | os.PathLike) -> tuple[av.container.InputContainer, VideoInfo]:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a video")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    try:
        container = av.open(str(path), "r")
    except av.error.FFmpegError as e:
        raise InputError(f"{path}: not a readable media file ({_reason(e)})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot open ({e})") from None
    try:
        info = _probe(container, path)
        info.cover_pictures, info.hdr = _preview(path, info)
    except Exception:
        container.close()
        raise
    return container, info


def _probe(container, path: Path) -> VideoInfo:
    st = main_video(container)
    if st is None:
        raise InputError(f"{path}: has no video stream")
    cc = st.codec_context
    if not cc.width or not cc.height or cc.format is None:
        raise InputError(f"{path}: video stream has no usable size or pixel format (damaged header?)")
    if cc.width * cc.height > MAX_INPUT_PIXELS:
        raise InputError(f"{path}: frame size {cc.width}x{cc.height} is over the limit of {MAX_INPUT_PIXELS // 10**6} MP")
    bits, _, _ = describe(cc.format)
    duration = None
    if st.duration is not None and st.time_base:
        duration = float(st.duration * st.time_base)
    elif container.duration:
        duration = container.duration / av.time_base
    # everything but the stream we upscale is carried over: audio, subtitles, data, attachments,
    # cover art and any further video streams (the sink copies, converts or names what it drops)
    others = [s for s in container.streams if s.index != st.index]
    matroska = container.format.name.startswith("matroska")
    # Matroska only: it states the length exactly, where other formats' durations may be estimates
    # (from the bitrate, for elementary streams) that would call a whole file cut
    stated, stated_for_video = _stream_duration(st) if matroska else (None, True)
    return VideoInfo(
        width=cc.width,
        height=cc.height,
        source_format=cc.format.name,
        work_format=working_format(cc.format),
        bit_depth=bits,
        time_base=st.time_base,
        average_rate=st.average_rate or st.guessed_rate,
        frames=st.frames or 0,
        duration=duration,
        codec=cc.name,
        # RGB (matrix 0) is converted to YUV, with the matrix a source that names none implies
        colour=Colour(int(cc.colorspace) if cc.colorspace not in (None, 0, 2) else implied_matrix(cc.height),
                      int(cc.color_primaries or 2), int(cc.color_trc or 2), int(cc.color_range or 0)),
        display_matrix=(cc.coded_side_data or {}).get("display_matrix"),
        sample_aspect_ratio=st.sample_aspect_ratio,
        container=container.format.name,
        index=st.index,
        other_streams=others,
        stream_duration=stated,
        stated_for_video=stated_for_video,
        missing_bytes=matroska_shortfall(path) if matroska else 0,
    )


EDIT_LIST_SEARCH = 2000  # packets: further than any group of pictures reaches back


def edit_list_skips(path: Path, index: int) -> int:
    """How many samples an MP4 edit list drops before the first one the demuxer reads: a file cut
    without re-encoding starts at the keyframe before the cut (the samples between are read, but
    hidden) and leaves out what comes before that keyframe. The header counts them all, so without
    this a cut file looks truncated. Found as the place of the first packet read among the samples
    read with the edit list ignored (two more openings of the file, so only when the count is short)."""
    try:
        with av.open(str(path)) as c:
            first = next((bytes(p) for p in c.demux(c.streams[index]) if p.size), None)
        if first is None:
            return 0
        with av.open(str(path), options={"ignore_editlist": "1"}) as c:
            for k, packet in zip(range(EDIT_LIST_SEARCH), (p for p in c.demux(c.streams[index]) if p.size)):
                if bytes(packet) == first:
                    return k
    except av.error.FFmpegError:
        pass  # a damaged file: decoding it names what is wrong
    return 0


# FFmpeg's matrix codes: BT.709, and BT.601 (SMPTE 170M)
BT709, BT601 = 1, 6


def implied_matrix(height: int) -> int:
    """The YUV matrix of a source that names none: what players assume for its size (BT.709 from
    720 lines, BT.601 below), and the one RGB sources are converted with (``_to_work``). The output
    names it, since at another size a player would assume the other one and shift the colours."""
    return BT709 if height >= 720 else BT601


def _stream_duration(st) -> tuple[float | None, bool]:
    """(seconds, whether they are the video track's own) as a Matroska file states them: the
    DURATION tag FFmpeg's muxer writes per track (HH:MM:SS.fraction), else the stream's duration,
    which FFmpeg's demuxer sets to the whole file's (the longest stream's, audio or subtitles
    included)."""
    tag = next((v for k, v in st.metadata.items() if k.upper() == "DURATION"), None)
    try:
        h, m, sec = tag.split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec), True
    except (AttributeError, ValueError):
        pass
    if st.duration is not None and st.time_base:
        return float(st.duration * st.time_base), False
    return None, True


def _ebml_number(data: bytes, pos: int, keep_marker: bool) -> tuple[int | None, int]:
    """An EBML variable-length number at ``pos``: (value, position after it). The value is None
    for a size of all ones (unknown, as a live stream writes)."""
    first = data[pos]
    length = 9 - first.bit_length() if first else 9
    if length > 8 or pos + length > len(data):
        raise ValueError("not an EBML number")
    value = int.from_bytes(data[pos : pos + length], "big")
    if not keep_marker:
        value &= (1 << (7 * length)) - 1
        if value == (1 << (7 * length)) - 1:
            return None, pos + length
    return value, pos + length


def matroska_shortfall(path: Path) -> int:
    """How many bytes the Matroska Segment's size says the file should hold beyond its end (0 for a
    whole file, a live file of unknown size, or one this does not parse)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
        size = path.stat().st_size
        element, pos = _ebml_number(head, 0, keep_marker=True)
        length, pos = _ebml_number(head, pos, keep_marker=False)
        if element != 0x1A45DFA3 or length is None:
            return 0
        pos += length  # past the EBML header: the Segment follows
        element, pos = _ebml_number(head, pos, keep_marker=True)
        length, pos = _ebml_number(head, pos, keep_marker=False)
        if element != 0x18538067 or length is None:
            return 0
        return max(pos + length - size, 0)
    except (OSError, ValueError, IndexError):
        return 0


# The first frame is looked for among this many packets, no further (a damaged start would
# otherwise have the preview read the whole file).
PREVIEW_PACKETS = 64


def _preview(path: Path, info: VideoInfo) -> tuple[dict[int, bytes], HdrMetadata | None]:
    """What the output's setup needs before the real pass, from a second look at the file's start:
    each cover picture (FFmpeg hands them out before any other packet) and the first frame's HDR10
    side data (the encoder takes it as parameters, fixed when it opens)."""
    covers, hdr = {}, None
    with av.open(str(path)) as c:
        video = c.streams[info.index]
        cover_streams = [c.streams[s.index] for s in info.other_streams if is_cover_art(s)]
        try:
            seen = 0
            for packet in c.demux([video, *cover_streams]):
                if packet.stream.index != info.index:
                    if packet.size:
                        covers.setdefault(packet.stream.index, bytes(packet))
                    continue
                frames = packet.decode()
                seen += 1
                if frames or seen >= PREVIEW_PACKETS:
                    hdr = HdrMetadata.from_frame(frames[0]) if frames else None
                    break
        except av.error.FFmpegError:
            pass  # damage is the real pass's to find and report
    return covers, hdr


def _reason(e: Exception) -> str:
    msg = getattr(e, "strerror", None) or str(e)
    return str(msg).split(":")[0].strip() if msg else type(e).__name__


# H.264 and HEVC allow at most 16 pictures between decode and display order: this many packets
# past a damaged one are enough to know its place in display order.
REORDER_LOOKAHEAD = 32


# Containers that store only the order packets are decoded in (AVI: a chunk's index is its time):
# the demuxer's pts is a guess made in decode order, so with B-frames the decoded pictures come back
# carrying their neighbours' times (an AVI with x264's B-frames reads 1, 4, 3, 5, 2, ...).
DECODE_ORDER_ONLY = {"avi"}


def decode_order_only(container) -> bool:
    return container.format.name in DECODE_ORDER_ONLY


class _DecodeOrderTimes:
    """Presentation times for a container that keeps decode order only: pictures come out of the
    decoder in presentation order, so the k-th picture out takes the k-th earliest of the times of
    the packets sent (their dts, the chunk index), as mpv does for AVI. A packet that gives no
    picture (damage, with --skip-damaged) shifts the later ones by a frame: nothing in the file
    says which time was lost."""

    def __init__(self):
        self.pending: list[int] = []

    def sent(self, time: int | None) -> None:
        if time is not None:
            heapq.heappush(self.pending, time)

    def stamp(self, frame: av.VideoFrame) -> None:
        if self.pending:
            frame.pts = heapq.heappop(self.pending)


@dataclass
class Damage:
    frame: int  # display index (presentation order, from 0) of the first affected frame
    count: int  # how many frames are lost
    reason: str
    estimated: bool = False  # the count is the lost time over the frames' usual spacing (a VFR file's cut)

    def describe(self) -> str:
        if self.estimated:
            return f"about {self.count} frames (from {self.frame}): {self.reason}"
        which = f"frame {self.frame}" if self.count == 1 else f"{self.count} frames ({self.frame}-{self.frame + self.count - 1})"
        return f"{which}: {self.reason}"


class _Ledger:
    """Every video packet sent to the decoder and every frame that came back, by timestamp, so that
    a lost frame is named by its display index (what a player or editor calls it), not by how many
    frames happened to come out before it in decode order."""

    def __init__(self):
        self.sent: list[int | None] = []  # pts of each packet, in decode order
        self.durations: dict[int, int] = {}  # a packet's stated duration by its pts, where it states one
        self.out: set[int | None] = set()  # pts of the frames the decoder gave back (good or flagged)
        self.produced = 0  # frames the decoder gave back
        self.not_decoded = 0  # packets never given to the decoder (flagged corrupt by the demuxer)
        self.lost: dict[int, str] = {}  # decode position -> reason, for frames known to be lost
        self.rejected: str | None = None  # the decoder's first error; which frame it cost shows later
        self.cut: str | None = None  # why reading stopped early, when it did
        self.cut_frames = 0  # how many frames a cut lost, where the file's stated length tells
        self.cut_estimated = False  # cut_frames from the median spacing of frames that are not evenly spaced
        self.others_end = 0.0  # seconds where the latest packet of the other streams ends
        # AVI: a packet's time is its chunk's index, and the header counts the empty chunks that
        # mark dropped frames (a capture's, or our own writer's for a gap) that the demuxer skips
        self.times_are_chunks = False
        self.hidden = 0  # packets before an edit list's start: decoded as references, never shown

    def lose(self, pts: int | None, reason: str) -> None:
        position = self.sent.index(pts) if pts is not None and pts in self.sent else len(self.sent) - 1
        self.lost.setdefault(position, reason)

    def unaccounted(self) -> None:
        """Mark the packets that never gave a frame (the decoder rejected or silently dropped them):
        those whose timestamp never came out, as many as the counts say are missing."""
        missing = len(self.sent) - self.produced - self.not_decoded
        if missing <= 0:
            return
        reason = (f"the decoder rejected the data ({self.rejected})" if self.rejected
                  else "the decoder produced no picture (damaged or missing references)")
        open_positions = [pos for pos in range(len(self.sent)) if pos not in self.lost]
        by_pts = [pos for pos in open_positions if self.sent[pos] is None or self.sent[pos] not in self.out]
        rest = [pos for pos in reversed(open_positions) if pos not in by_pts]  # fallback: the latest ones
        for pos in (by_pts + rest)[:missing]:
            self.lost[pos] = reason

    def damage(self, header_frames: int = 0) -> list[Damage]:
        """The losses as runs of consecutive display indices with one reason each."""
        if all(p is not None for p in self.sent):
            rank = {pos: index for index, pos in enumerate(sorted(range(len(self.sent)), key=self.sent.__getitem__))}
        else:  # no timestamps to order by: decode order is all there is
            rank = {pos: pos for pos in range(len(self.sent))}
        runs: list[Damage] = []
        for index, reason in sorted((rank[pos], reason) for pos, reason in self.lost.items()):
            last = runs[-1] if runs else None
            if last and last.reason == reason and last.frame + last.count == index:
                last.count += 1
            else:
                runs.append(Damage(index, 1, reason))
        if runs:
            runs = sorted(runs + self.skipped_by_demuxer(), key=lambda d: d.frame)
        held = len(self.sent)
        chunks = [p for p in self.sent if p is not None] if self.times_are_chunks else []
        if chunks:  # every chunk up to the last one read is in the file, empty ones too
            held = max(held, max(chunks) - min(0, min(chunks)) + 1)
        missing_tail = header_frames - held - self.hidden  # the header counts the hidden frames too
        if missing_tail > 0 or self.cut:
            reason = self.cut or f"the file is truncated (its header lists {header_frames} frames)"
            estimated = self.cut_estimated and missing_tail <= 0
            runs.append(Damage(len(self.sent), max(missing_tail, self.cut_frames, 1), reason, estimated))
        return runs

    def skipped_by_demuxer(self) -> list[Damage]:
        """Frames a damaged file lost without a trace: a demuxer that meets damaged data skips to
        the next readable packet, so those frames never reach the decoder. In a stream whose
        timestamps keep one step, a gap of k steps is k - 1 such frames. Only looked for in a file
        already found damaged (a healthy file may pause on purpose); each is placed after the frame
        before it."""
        times = sorted(p for p in self.sent if p is not None)
        steps = [b - a for a, b in zip(times, times[1:])]
        if len(steps) < 4:
            return []
        step = sorted(steps)[len(steps) // 2]
        if step <= 0 or sum(1 for d in steps if d == step) < 0.8 * len(steps):
            return []  # variable frame rate: a gap says nothing
        out = []
        for index, d in enumerate(steps):
            if d >= 2 * step and d % step == 0:
                out.append(Damage(index + 1, d // step - 1, "missing from the file (the demuxer skipped damaged data "
                                  f"and the timestamps jump {d // step} frames)"))
        return out

    def cut_short(self, info: VideoInfo) -> None:
        """Where the header keeps no frame count, a file whose frames end before the length its
        stream states, or that holds fewer bytes than its header says, is truncated."""
        if info.frames or self.cut:
            return
        times = sorted(p for p in self.sent if p is not None)
        rate = float(info.average_rate) if info.average_rate else 0.0
        if len(times) > 2:  # the frames' own spacing: a declared rate may be wrong (1/time base, 12800 fps)
            spacing = float(statistics.median(b - a for a, b in zip(times, times[1:])) * info.time_base)
            rate = 1 / spacing if spacing > 0 else rate
        if info.stream_duration and times and rate > 0:
            first, last = times[0] * info.time_base, times[-1] * info.time_base
            # the last frame lasts what its packet states where that is longer (a GIF's held last picture)
            end = float(last) + max(1 / rate, float(self.durations.get(times[-1], 0) * info.time_base))
            if not info.stated_for_video:  # the file's length: cut only if every stream stops short
                end = max(end, self.others_end)
            # the stated length may count from 0 or from the first timestamp: short by both counts
            short = info.stream_duration - max(end, end - float(first))
            if short > 1.5 / rate:
                self.cut = (f"the file is truncated (its video stops {short:.2f} s before the "
                            f"{info.stream_duration:.2f} s it states)")
                self.cut_frames = max(round(short * rate), 1)
                # exact only where the frames left show one even spacing; else (too few frames to
                # tell, or variable frame rate) the count is the lost time at the usual spacing
                steps = [b - a for a, b in zip(times, times[1:])]
                self.cut_estimated = len(steps) < 2 or max(steps) > 1.25 * min(steps)
                return
        if info.missing_bytes:
            self.cut = f"the file is truncated ({info.missing_bytes} bytes of it are missing)"


def decode(
    container,
    info: VideoInfo,
    skip_damaged: bool = False,
    on_damage: Callable[[Damage], None] | None = None,
    on_packet: Callable[[av.Packet], None] | None = None,
    on_translucent: Callable[[av.VideoFrame], None] | None = None,
) -> Iterator[av.VideoFrame]:
    """Decoded frames of the upscaled stream, in presentation order, as planar frames in
    ``info.work_format`` with their original pts. Every packet of the other streams goes to
    ``on_packet``, including those without a decode timestamp.

    Accounting: every video packet should give one frame. A packet the demuxer flags as corrupt or
    the decoder rejects, a frame flagged corrupt, a packet that never gives a frame, and frames the
    header lists but the file does not hold are all damage, named by display index: an
    ``InputError`` for the first, or with ``skip_damaged`` a ``Damage`` record for each once the
    stream is read, and the run goes on. ``on_translucent`` is called with the first frame that
    has a pixel less than opaque (the working format drops alpha).
    """
    video = container.streams[info.index]
    video.thread_type = "AUTO"  # frame + slice threads inside FFmpeg
    packets = container.demux([video] + list(info.other_streams))
    ledger = _Ledger()
    watch = _AlphaWatch(on_translucent)
    retime = _DecodeOrderTimes() if decode_order_only(container) else None
    ledger.times_are_chunks = retime is not None

    def time_of(packet) -> int | None:  # the packet's presentation time, as the ledger counts them
        return (packet.dts if packet.dts is not None else packet.pts) if retime else packet.pts

    def came_out(frame) -> None:
        if retime:
            retime.stamp(frame)
        ledger.out.add(frame.pts)
        ledger.produced += 1

    def fail_fast() -> None:
        """Without --skip-damaged, stop at the first damage, naming it by display index: drain the
        decoder to see which frames never come out, and read a little further to place them."""
        if skip_damaged:
            return
        try:
            for frame in video.codec_context.decode(None):
                came_out(frame)
        except av.error.FFmpegError:
            pass
        ledger.unaccounted()
        try:
            for _, packet in zip(range(REORDER_LOOKAHEAD), (p for p in packets if p.stream.index == video.index)):
                if packet.size and not packet.is_discard:
                    ledger.sent.append(time_of(packet))
        except av.error.FFmpegError:
            pass
        first = ledger.damage()[0]
        raise InputError(f"{container.name}: damaged video at {first.describe()} (--skip-damaged drops such frames)")

    def good_frames(packet):
        try:
            frames = video.codec_context.decode(packet)
        except av.error.FFmpegError as e:
            ledger.rejected = ledger.rejected or _reason(e)
            fail_fast()
            return
        for frame in frames:
            came_out(frame)
            if frame.is_corrupt:
                ledger.lose(frame.pts, "the decoder flagged it corrupt")
                fail_fast()
                continue
            yield _to_work(watch(frame), info)

    try:
        for packet in packets:
            if packet.size == 0 and packet.pts is None and packet.dts is None:
                continue  # the demuxer's end-of-stream marker, not data
            if packet.stream.index != video.index:
                if packet.pts is not None and packet.time_base is not None:
                    end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                    ledger.others_end = max(ledger.others_end, end)
                if on_packet:
                    on_packet(packet)
                continue
            if packet.is_discard:
                # before the start of an edit list (an MP4 cut without re-encoding): the decoder
                # needs it as a reference and gives no picture for it, by design
                ledger.hidden += 1
                yield from good_frames(packet)
                continue
            time = time_of(packet)
            ledger.sent.append(time)
            if time is not None and packet.duration:
                ledger.durations[time] = packet.duration
            if packet.is_corrupt:
                ledger.not_decoded += 1
                ledger.lose(time, "its data is incomplete or flagged corrupt by the demuxer")
                fail_fast()
                continue
            if retime:
                retime.sent(time)
            yield from good_frames(packet)
    except av.error.FFmpegError as e:
        ledger.cut = f"reading the file failed ({_reason(e)})"
    yield from good_frames(None)
    ledger.unaccounted()
    ledger.cut_short(info)
    header = info.frames
    if header > len(ledger.sent) + ledger.hidden and container.format.name.startswith("mov"):
        # fewer frames than MP4's header counts: a cut's edit list may have left some out unread
        # (rare, so looked for only now)
        header -= edit_list_skips(Path(container.name), info.index)
    found = ledger.damage(header)
    if found and not skip_damaged:
        raise InputError(f"{container.name}: damaged video at {found[0].describe()} (--skip-damaged drops such frames)")
    for d in found:
        if on_damage:
            on_damage(d)


def at_stream_size(frames: Iterable[av.VideoFrame], info: VideoInfo,
                   note: Callable[[str], None]) -> Iterator[av.VideoFrame]:
    """``frames`` at the stream's size (``info``, its first frame's): a frame of another size (a
    stream that changes resolution mid-way, as broadcast captures do) is resampled to it with
    swscale's Lanczos, as ffmpeg does, so every frame is upscaled and the output keeps one size;
    ``note`` is told once, naming the first change."""
    told = False
    for frame in frames:
        if (frame.width, frame.height) == (info.width, info.height):
            yield frame
            continue
        if not told:
            told = True
            at = f" at {float(frame.time):.3f} s" if frame.time is not None else ""
            note(f"the video changes size from {info.width}x{info.height} to {frame.width}x{frame.height}{at}: "
                 f"such frames are resampled to {info.width}x{info.height} first (Lanczos)")
        out = frame.reformat(width=info.width, height=info.height, interpolation="LANCZOS")
        out.colorspace, out.color_range = frame.colorspace, frame.color_range
        yield timed_like(out, frame)


class _AlphaWatch:
    """Passes frames through; calls ``told`` with the first one that is translucent, then stops
    looking (a stream with alpha is checked frame by frame until then)."""

    def __init__(self, told: Callable[[av.VideoFrame], None] | None):
        self.told = told

    def __call__(self, frame: av.VideoFrame) -> av.VideoFrame:
        if self.told is not None and translucent(frame):
            self.told, told = None, self.told
            told(frame)
        return frame


def _to_work(frame: av.VideoFrame, info: VideoInfo) -> av.VideoFrame:
    if frame.format.name == info.work_format:
        return frame
    rng = "JPEG" if (frame.color_range == 2 or frame.format.name.startswith("yuvj")) else "MPEG"
    src_space = frame.colorspace if frame.colorspace not in (None, 0, 2) else ("ITU709" if implied_matrix(info.height) == BT709 else "ITU601")
    out = frame.reformat(format=info.work_format, src_colorspace=src_space, dst_colorspace=src_space,
                         src_color_range=rng, dst_color_range=rng)
    return timed_like(out, frame)


def decode_range(container, info: VideoInfo, start: int, end: int | None,
                 on_translucent: Callable[[av.VideoFrame], None] | None = None) -> Iterator[av.VideoFrame]:
    """The frames of the upscaled stream whose timestamps lie in [``start``, ``end``) (``end``
    None: to the end), in presentation order, as ``decode`` gives them: a segment of a long video
    run on its own (``vidsr batch``). ``start`` and ``end`` are keyframes' timestamps.

    Reading starts at the keyframe at or before ``start``. It goes on past the keyframe at ``end``
    until a packet presented after it, so that pictures of the next group that are presented
    before ``end`` (an open group's leading pictures) are in too. Every packet in the range must
    give an undamaged frame, or the segment fails naming the frame's timestamp. ``on_translucent``:
    as ``decode``'s."""
    video = container.streams[info.index]
    watch = _AlphaWatch(on_translucent)
    video.thread_type = "AUTO"
    container.seek(start, stream=video, backward=True, any_frame=False)
    inside = (lambda pts: pts is not None and start <= pts) if end is None else \
        (lambda pts: pts is not None and start <= pts < end)
    wanted, got = set(), set()

    def frames_of(packet):
        try:
            frames = video.codec_context.decode(packet)
        except av.error.FFmpegError as e:
            raise InputError(f"{container.name}: damaged video in the segment from pts {start} ({_reason(e)})") from None
        for frame in frames:
            if not inside(frame.pts):
                continue
            if frame.is_corrupt:
                raise InputError(f"{container.name}: damaged video at pts {frame.pts} (the decoder flagged it corrupt)")
            got.add(frame.pts)
            yield _to_work(watch(frame), info)

    past_end = False
    for packet in container.demux(video):
        if packet.size == 0 and packet.pts is None and packet.dts is None:
            continue
        if end is not None and packet.pts is not None:
            if packet.is_keyframe and packet.pts >= end:
                past_end = True
            elif past_end and packet.pts > end:
                break  # presented after the next group's keyframe: every picture before it is in
        if inside(packet.pts) and not packet.is_discard:  # a hidden packet (before an edit list) shows nothing
            wanted.add(packet.pts)
        yield from frames_of(packet)
    yield from frames_of(None)
    lost = sorted(wanted - got)
    if lost:
        raise InputError(f"{container.name}: {len(lost)} frames from pts {lost[0]} gave no picture in the segment from pts {start}")
