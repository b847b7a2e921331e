"""Streaming a video through the engine: decode -> upscale -> encode, overlapped, bounded memory.

Three stages run at once: a reader thread (demux + FFmpeg-threaded decode), the main thread
(upscaling) and a writer thread (encode + mux). They hand over through queues of a few items, so
memory does not grow with the video's length. Packets of audio, subtitle and other streams travel
through the same queues in demux order, so the writer interleaves them as they came.

Per frame: swscale upscales the whole frame (chroma, and luma as the interpolation fallback) in
the output pixel format; the engine then replaces the luma plane with the network's output. With an
interpolation model the swscale result is the output (FFmpeg's own Lanczos/bicubic, the fast path).
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import av
from tqdm import tqdm

from .errors import InputError, OutputError
from .io.deinterlace import deinterlaced
from .io.formats import bit_depth, plane_view, resized_frame, timed_like
from .io.sink import EncodeOptions, MediaSink
from .io.source import MAX_OUTPUT_PIXELS, Damage, VideoInfo, at_stream_size, decode, decode_range, open_source
from .rate_control import FixedBudget, FrameRateTarget
from .runtime import sigterm_as_interrupt
from .temporal import StreamState

if TYPE_CHECKING:
    from .executor import FrameStats

QUEUE_DEPTH = 4
_DONE = object()
SWSCALE = {"lanczos": "LANCZOS", "bicubic": "BICUBIC"}


@dataclass
class VideoJob:
    input: Path
    output: Path
    scale: int
    encode: EncodeOptions
    engine: object | None  # a vidsr.engine.Engine; None: interpolation only (swscale)
    interpolation: str = "lanczos"  # swscale kernel for chroma (and luma without an engine)
    budget: float = 1.0
    fps_target: float | None = None  # a FrameRateTarget then sets each frame's budget
    skip_damaged: bool = False
    reuse: bool = True  # keep the output of tiles whose input has not changed (vidsr.temporal)
    predictor: str = "edge"  # where ARM's dear routes pay: "edge" (the table) or "last-frame" (routing.evidence)
    progress: bool = True
    stats: Callable[[dict], None] | None = None  # receives one record per frame, in order, once encoded
    # builders of dearer models' engines that a frame-rate target leaving time over may switch to,
    # once, on the second frame (``vidsr.policy``); empty when the user chose the model
    dearer: list[Callable[[], object]] = field(default_factory=list)
    # a segment of the video (``vidsr batch``): the frames with timestamps in [start, end), video only
    segment: tuple[int, int | None] | None = None
    # a delivery file's tag, when upscaled at its scale: the output is cropped to the source's size
    delivery: object | None = None  # vidsr.delivery.tags.DeliveryTag


@dataclass
class Summary:
    frames: int = 0
    skipped: list[Damage] = field(default_factory=list)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    route_pixels: dict[tuple[str, str], float] = field(default_factory=dict)  # (model, route): summed shares
    budget_sum: float = 0.0
    fps_target: float | None = None
    # seconds from the start when the second frame (the first after start-up) / the latest was upscaled
    second_done: float | None = None
    last_done: float | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def steady_fps(self) -> float | None:
        """Frames per second after start-up: opening the file, loading the model and, with a target,
        measuring what each route costs happen before the first frame, and the choice of a dearer
        model (which prices it) before the second. The rate from the second frame on is the one an
        fps target keeps."""
        return fps_after_start_up(self.frames, self.second_done, self.last_done)

    def route_shares(self) -> dict[str, float]:
        """Mean share of pixels per route; routes are named by model too when a frame-rate target
        switched models during the run."""
        if not self.frames:
            return {}
        several = len({model for model, _ in self.route_pixels}) > 1
        return {(f"{model} {route}" if several else route): v / self.frames
                for (model, route), v in self.route_pixels.items()}


def fps_after_start_up(frames: int, second_done: float | None, last_done: float | None) -> float | None:
    """The rate of ``frames`` frames from the second on (``Summary.steady_fps``), given when the
    second and the last were done; None without two frames after the first."""
    if second_done is None or last_done is None or last_done <= second_done:
        return None
    return (frames - 2) / (last_done - second_done)


@dataclass
class _Decoded:
    frame: av.VideoFrame
    ms: float  # demux + decode time since the previous frame


@dataclass
class _Processed:
    frame: av.VideoFrame
    record: dict  # the frame's stats, completed by the writer with its encode time


class _Stage(threading.Thread):
    """A pipeline thread: an exception in it is kept for the main thread and stops the others."""

    def __init__(self, name, target, stop: threading.Event):
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self._stop_event = stop
        self.error: BaseException | None = None

    def run(self):
        try:
            self._target_fn()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            self.error = e
            self._stop_event.set()


class _Stopped(Exception):
    """Raised in a stage when another stage stopped the pipeline."""


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise _Stopped
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _get(q: queue.Queue, stop: threading.Event):
    while True:
        if stop.is_set():
            raise _Stopped
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue


def expected_frames(info: VideoInfo) -> int | None:
    """The stream's length in frames: the container's count, else its duration at its frame rate
    (Matroska says no count), else None."""
    if info.frames:
        return info.frames
    return int(round(info.duration * info.average_rate)) if info.duration and info.average_rate else None


def upscale_video(job: VideoJob, warn: Callable[[str], None]) -> Summary:
    def output_size(info: VideoInfo) -> tuple[int, int]:
        full = info.width * job.scale, info.height * job.scale
        return (job.delivery.crop(*full, warn) if job.delivery is not None else None) or full

    def upscaler(info: VideoInfo, sink: MediaSink, note: Callable[[str], None], summary: Summary):
        rate = None
        if job.engine is not None:
            if job.fps_target is not None and job.engine.router is not None:
                rate = FrameRateTarget(job.engine, job.fps_target, info.bit_depth, info.colour.full_range, note,
                                       job.dearer, (expected_frames(info) or 0) if job.segment is None else 0)
                summary.fps_target = job.fps_target
            else:
                rate = FixedBudget(job.engine, job.budget)
        out_bits = bit_depth(sink.frame_format)
        # what the last frames leave for the next (vidsr.temporal)
        stream, last = StreamState(reuse=job.reuse, evidence=job.predictor == "last-frame"), [None]
        keeps = job.reuse or stream.evidence is not None

        def process(item: _Decoded) -> _Processed:
            budget = rate.before(plane_view(item.frame, 0)) if rate is not None else None
            engine = rate.engine if rate is not None else None
            if engine is not last[0]:  # another model: nothing of the last one's output is kept
                stream.clear()
                last[0] = engine
            out, stats = _upscale_frame(item, info, job.interpolation, engine, budget, sink.frame_format, out_bits,
                                        info.width * job.scale, info.height * job.scale, summary,
                                        stream if keeps else None, crop=(sink.width, sink.height))
            if rate is not None:
                rate.after(stats)
            return out

        return process

    return transcode(job, output_size, upscaler, warn)


def transcode(job, output_size: Callable[[VideoInfo], tuple[int, int]], processor, warn: Callable[[str], None]) -> Summary:
    """Run a video job: decode -> ``process`` each frame -> encode, every other stream carried.

    ``job``: its input, output, encode options, skip_damaged, progress, stats and segment are read
    (a ``VideoJob`` or a delivery job, whose ``tag`` goes into the container). ``processor(info, sink, note, summary)`` is called once the
    output is open and returns the per-frame function, ``_Decoded -> _Processed``."""
    summary = Summary()
    container, info = open_source(job.input)
    out_w, out_h = output_size(info)
    if out_w * out_h > MAX_OUTPUT_PIXELS:
        container.close()
        raise InputError(f"{job.input}: output would be {out_w}x{out_h}, over the limit of "
                         f"{MAX_OUTPUT_PIXELS // 10**6} MP; use a smaller --scale")
    total = expected_frames(info)

    def note(msg: str) -> None:
        summary.warnings.append(msg)
        warn(msg)

    def on_translucent(frame: av.VideoFrame) -> None:  # a format with alpha, but opaque frames, loses nothing
        at = f" (the first translucent frame is at {float(frame.time):.3f} s)" if frame.time is not None else ""
        note(f"the video's alpha channel ({info.source_format}) is not carried: the output is opaque{at}")
    if job.segment is not None:  # the segment's file holds its video alone; the join carries the rest
        total = None
        info = dataclasses.replace(info, other_streams=[], cover_pictures={})
    try:
        sink = MediaSink(job.output, info, container, job.encode, out_w, out_h, note, tag=getattr(job, "tag", None))
    except BaseException:
        container.close()
        raise
    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(QUEUE_DEPTH)
    encoded: queue.Queue = queue.Queue(QUEUE_DEPTH)

    def on_damage(d: Damage) -> None:
        summary.skipped.append(d)
        note(f"skipped damaged {d.describe()}")

    def read():
        t, waited = time.perf_counter(), [0.0]

        def other_packet(packet) -> None:  # its wait for room in the queue is not decoding time
            started = time.perf_counter()
            _put(decoded, packet, stop)
            waited[0] += time.perf_counter() - started

        frames = (decode(container, info, job.skip_damaged, on_damage, other_packet, on_translucent)
                  if job.segment is None else decode_range(container, info, *job.segment, on_translucent))
        # deinterlaced at the size each frame was coded at (resampling mixes the fields), then one size
        for frame in at_stream_size(deinterlaced(frames, note), info, note):
            decode_ms = (time.perf_counter() - t - waited[0]) * 1000
            _put(decoded, _Decoded(frame, decode_ms), stop)
            t, waited[0] = time.perf_counter(), 0.0
        _put(decoded, _DONE, stop)

    def write():
        while True:
            item = _get(encoded, stop)
            if item is _DONE:
                return
            if isinstance(item, _Processed):
                t = time.perf_counter()
                sink.write_frame(item.frame)
                item.record["ms"]["encode"] = round((time.perf_counter() - t) * 1000, 3)
                if job.stats is not None:
                    job.stats(item.record)
            else:
                sink.write_packet(item)

    reader, writer = _Stage("vidsr-read", read, stop), _Stage("vidsr-write", write, stop)
    # disable=None: a bar on a terminal only, not in logs
    bar = tqdm(total=total, unit="frame", desc=job.input.name, disable=None if job.progress else True,
               dynamic_ncols=True, leave=False)
    started = time.perf_counter()
    with sigterm_as_interrupt():
        try:
            process = processor(info, sink, note, summary)
            reader.start()
            writer.start()
            try:
                while True:
                    item = _get(decoded, stop)
                    if item is _DONE:
                        break
                    if isinstance(item, _Decoded):
                        out = process(item)
                        done = time.perf_counter() - started
                        out.record["t"] = round(done, 4)
                        summary.last_done = done
                        if summary.frames == 2:  # this was the second frame (process counts it)
                            summary.second_done = done
                        _put(encoded, out, stop)
                        bar.update(1)
                    else:
                        _put(encoded, item, stop)
                _put(encoded, _DONE, stop)
                writer.join()
            except _Stopped:
                pass
            stop.set()
            reader.join()
            writer.join()
            for stage in (reader, writer):  # the first real failure, not the stops it caused
                if stage.error is not None and not isinstance(stage.error, _Stopped):
                    raise stage.error
            sink.close()
        except av.error.FFmpegError as e:
            sink.abort()
            raise OutputError(f"{job.output}: encoding failed ({e})") from None
        except BaseException:
            sink.abort()
            raise
        finally:
            stop.set()
            bar.close()
            container.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _upscale_frame(item: _Decoded, info: VideoInfo, interpolation: str, engine, budget, pix_fmt: str, out_bits: int,
                   out_w: int, out_h: int, summary: Summary, stream=None,
                   crop: tuple[int, int] | None = None) -> tuple[_Processed, FrameStats | None]:
    """swscale makes the whole output frame (chroma, and luma as the fallback); the engine, if any,
    then replaces its luma plane; ``crop``: the (width, height) kept of it, from the top left."""
    frame = item.frame
    rng = "JPEG" if info.colour.full_range else "MPEG"
    t0 = time.perf_counter()
    base = frame.reformat(width=out_w, height=out_h, format=pix_fmt, interpolation=SWSCALE[interpolation],
                          src_color_range=rng, dst_color_range=rng)
    ms = {"decode": round(item.ms, 3), "swscale": round((time.perf_counter() - t0) * 1000, 3)}
    record = {"frame": summary.frames, "pts": None if frame.pts is None else round(float(frame.pts * frame.time_base), 6)}
    stats = None
    if engine is not None:
        luma, stats = engine.upscale_plane(plane_view(frame, 0), info.bit_depth, info.colour.full_range,
                                           budget, out_bits, base=plane_view(base, 0), stream=stream)
        plane_view(base, 0)[:] = luma
        model = engine.descriptor.name
        for name, share in stats.route_shares.items():
            summary.route_pixels[model, name] = summary.route_pixels.get((model, name), 0.0) + share
        summary.budget_sum += stats.budget
        ms.update({k: round(v, 3) for k, v in stats.ms.items()})
        record.update(model=model, budget=round(stats.budget, 5),
                      route_shares={k: round(v, 5) for k, v in stats.route_shares.items()},
                      macs_per_pixel=round(stats.macs_per_pixel, 1), **budget.record())
        if stats.predicted_psnr is not None:
            record["predicted_psnr"] = round(stats.predicted_psnr, 3)
        if stats.counts:
            record["counts"] = stats.counts
    record["ms"] = ms
    if crop is not None and crop != (out_w, out_h):
        base = resized_frame(base, *crop)
    timed_like(base, frame)
    c = info.colour
    base.colorspace, base.color_range = c.space, c.range
    summary.frames += 1
    return _Processed(base, record), stats
