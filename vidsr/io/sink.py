"""Writing the output with PyAV: the upscaled video, every other stream carried over, and the
metadata that must survive, into a temporary file that only becomes the output when complete.

Other streams are copied packet for packet when the output container can hold their codec;
otherwise audio is transcoded to the container's audio codec and text subtitles to its subtitle
codec, each with a warning; what can be neither (bitmap subtitles in MP4, say) is left out with a
warning. The encoder must give back one packet per frame it was given, or the run fails.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import av
import av.error

from ..errors import OutputError, SettingsError
from .formats import output_format
from .source import VideoInfo

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner unless told to log errors only

TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"}
SUBTITLE_FOR = {"mp4": "mov_text", "mov": "mov_text", "matroska": "ass", "webm": "webvtt"}
CRF_CODECS = {"libx264", "libx265", "libsvtav1", "libvpx-vp9", "libvpx", "libaom-av1", "librav1e"}
QUIET_OPTIONS = {"libx265": {"x265-params": "log-level=error"}}


@dataclass
class EncodeOptions:
    codec: str = "libx264"
    crf: int | None = None  # None: the encoder's default quality (18 for the x26x family here)
    pix_fmt: str | None = None
    options: dict = field(default_factory=dict)  # --encoder-opt KEY=VALUE


def container_format_for(path: Path) -> str:
    """The FFmpeg muxer a file name implies."""
    try:
        out = av.open(io.BytesIO(), "w", format=_FORMAT_BY_SUFFIX.get(path.suffix.lower(), path.suffix.lower().lstrip(".")))
    except (ValueError, av.error.FFmpegError):
        raise OutputError(f"{path}: unknown output container {path.suffix!r}") from None
    name = out.format.name
    out.close()
    return name


_FORMAT_BY_SUFFIX = {".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".mov": "mov", ".webm": "webm", ".avi": "avi",
                     ".nut": "nut", ".ts": "mpegts"}


def supported_codecs(container_format: str) -> set[str]:
    out = av.open(io.BytesIO(), "w", format=container_format)
    try:
        return set(out.supported_codecs)
    finally:
        out.close()


def can_hold(container_format: str, info: VideoInfo, video_codec: str) -> bool:
    """Whether a container can take the video codec and copy every other stream as is."""
    codecs = supported_codecs(container_format)
    return video_codec_name(video_codec) in codecs and all(s.codec_context.name in codecs for s in info.other_streams)


def video_codec_name(encoder: str) -> str:
    return av.Codec(encoder, "w").name if encoder else encoder


def temp_path_for(final: Path) -> Path:
    """A hidden file beside the output (same folder, so the final rename is atomic), keeping the
    extension FFmpeg uses to pick the muxer."""
    return final.with_name(f".{final.stem}.vidsr-partial-{os.getpid()}{final.suffix}")


class MediaSink:
    def __init__(self, final: Path, info: VideoInfo, source, enc: EncodeOptions, width: int, height: int,
                 warn: Callable[[str], None]):
        self.final = final
        self.tmp = temp_path_for(final)
        self.info = info
        self.warn = warn
        self.frames_in = 0
        self.packets_out = 0
        try:
            codec = av.Codec(enc.codec, "w")
        except (ValueError, av.error.FFmpegError):
            raise SettingsError(f"unknown encoder {enc.codec!r} (any FFmpeg video encoder, e.g. libx264, libx265, libsvtav1, ffv1)") from None
        if codec.type != "video":
            raise SettingsError(f"{enc.codec} is not a video encoder")
        try:
            self.pix_fmt, notes = output_format(info.work_format, codec, width, height, enc.pix_fmt)
        except ValueError as e:
            raise SettingsError(str(e)) from None
        for n in notes:
            warn(n)
        self.container = av.open(str(self.tmp), "w", format=container_format_for(final))
        try:
            self._add_video(enc, codec, width, height, source)
            self._carry_streams(source)
        except BaseException:
            self.abort()
            raise
        self._started = False

    # -- setup --------------------------------------------------------------------------------

    def _add_video(self, enc: EncodeOptions, codec: av.Codec, width: int, height: int, source) -> None:
        info = self.info
        options = dict(QUIET_OPTIONS.get(codec.name, {}))
        if enc.crf is not None:
            if codec.name not in CRF_CODECS:
                self.warn(f"--crf does not apply to {codec.name}; ignored")
            else:
                options["crf"] = str(enc.crf)
        options.update(enc.options)
        rate = info.average_rate if info.average_rate else None
        self.video = self.container.add_stream(codec.name, rate=rate, options=options)
        cc = self.video.codec_context
        cc.width, cc.height, cc.pix_fmt = width, height, self.pix_fmt
        cc.time_base = info.time_base
        self.video.time_base = info.time_base
        c = info.colour
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = c.space, c.primaries, c.transfer, c.range
        if info.sample_aspect_ratio:
            cc.sample_aspect_ratio = info.sample_aspect_ratio
        if info.display_matrix:
            import numpy as np

            self.video.set_display_matrix([int(v) for v in np.frombuffer(info.display_matrix, dtype="<i4")])
        src_video = next(s for s in source.streams.video if not (s.disposition & av.stream.Disposition.attached_pic))
        self.video.metadata.update({k: v for k, v in src_video.metadata.items() if k.lower() in ("language", "title", "handler_name")})
        self.container.metadata.update(source.metadata)

    def _carry_streams(self, source) -> None:
        """Map every other input stream to a copy, a transcode, or nothing (with a warning)."""
        held = set(self.container.supported_codecs)
        fmt = self.container.format.name.split(",")[0]
        self.routes: dict[int, tuple[str, object]] = {}
        for s in self.info.other_streams:
            name = s.codec_context.name
            label = f"stream #{s.index} ({s.type}, {name})"
            if name in held or s.type == "attachment" and fmt == "matroska":
                try:
                    out = self.container.add_stream_from_template(s)
                    out.metadata.update(s.metadata)
                    out.disposition = s.disposition
                    self.routes[s.index] = ("copy", out)
                    continue
                except (ValueError, av.error.FFmpegError) as e:
                    self.warn(f"{label}: cannot be copied ({e}); trying to convert it")
            if s.type == "audio":
                target = self.container.default_audio_codec
                if target and target != "none":
                    self.routes[s.index] = ("audio", _AudioTranscoder(self.container, s, target))
                    self.warn(f"{label}: {fmt} cannot hold {name}; transcoding to {target}")
                    continue
            if s.type == "subtitle" and name in TEXT_SUBTITLES and fmt in SUBTITLE_FOR:
                target = SUBTITLE_FOR[fmt]
                self.routes[s.index] = ("subtitle", _SubtitleTranscoder(self.container, s, target))
                self.warn(f"{label}: {fmt} cannot hold {name}; converting to {target}")
                continue
            self.warn(f"{label}: {fmt} cannot hold it and it cannot be converted; it is left out "
                      f"(write to .mkv to keep it)")

    # -- writing ------------------------------------------------------------------------------

    def write_frame(self, frame: av.VideoFrame) -> None:
        self.frames_in += 1
        self._mux_video(self.video.encode(frame))

    def _mux_video(self, packets) -> None:
        for p in packets:
            self.packets_out += 1
            self.container.mux(p)

    def write_packet(self, packet: av.Packet) -> None:
        route = self.routes.get(packet.stream.index)
        if route is None:
            return
        kind, target = route
        if kind == "copy":
            packet.stream = target
            self.container.mux(packet)
        else:
            for p in target.feed(packet):
                self.container.mux(p)

    def close(self) -> None:
        """Flush encoders, check that every frame came out, and move the file into place."""
        try:
            self._mux_video(self.video.encode(None))
            for kind, target in self.routes.values():
                if kind in ("audio", "subtitle"):
                    for p in target.feed(None):
                        self.container.mux(p)
            if self.packets_out != self.frames_in:
                raise OutputError(f"encoder returned {self.packets_out} frames for {self.frames_in} given; output not written")
            self.container.close()
        except av.error.FFmpegError as e:
            self.abort()
            raise OutputError(f"{self.final}: writing failed ({e})") from None
        except BaseException:
            self.abort()
            raise
        os.replace(self.tmp, self.final)

    def abort(self) -> None:
        """Drop the partial output."""
        try:
            self.container.close()
        except Exception:
            pass
        try:
            self.tmp.unlink()
        except FileNotFoundError:
            pass


class _AudioTranscoder:
    def __init__(self, container, stream, codec: str):
        self.decoder = av.CodecContext.create(stream.codec_context.name, "r")
        self.decoder.extradata = stream.codec_context.extradata
        layout = stream.codec_context.layout
        rate = stream.codec_context.sample_rate
        self.out = container.add_stream(codec, rate=rate, layout=layout.name if layout else "stereo")
        self.stream_tb = stream.time_base
        self.resampler = av.AudioResampler(format=self.out.codec_context.format, layout=self.out.codec_context.layout, rate=rate)

    def feed(self, packet):
        frames = self.decoder.decode(packet) if packet is not None else self.decoder.decode(None)
        out = []
        for f in frames:
            for r in self.resampler.resample(f):
                out += self.out.encode(r)
        if packet is None:
            for r in self.resampler.resample(None):
                out += self.out.encode(r)
            out += self.out.encode(None)
        return out


class _SubtitleTranscoder:
    def __init__(self, container, stream, codec: str):
        self.decoder = stream.codec_context
        if not self.decoder.is_open:
            self.decoder.open()  # text decoders make their ASS header when opened
        self.out = container.add_stream(codec)
        header = self.decoder.subtitle_header
        if header:
            self.out.codec_context.subtitle_header = header
        self.src_tb = stream.time_base

    def feed(self, packet):
        if packet is None:
            return []
        out = []
        sub = self.decoder.decode2(packet)
        if sub is not None:
            pk = self.out.codec_context.encode_subtitle(sub)
            pk.stream = self.out
            pk.time_base = self.src_tb
            pk.pts = pk.dts = packet.pts
            pk.duration = packet.duration
            out.append(pk)
        return out
