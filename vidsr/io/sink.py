"""Writing the output with PyAV: the upscaled video, every other stream carried over, and the
metadata that must survive, into a temporary file that only becomes the output when complete.

What happens to each other stream (copied, attached, converted or left out, never silently) is
``streams``'s plan; the encoder's options and checks are ``encoder``'s. The encoder must give back
one packet per frame it was given, or the run fails.
"""

from __future__ import annotations

import io
import os
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import av.error

from ..delivery import tags
from ..errors import OutputError, SettingsError
from .encoder import EncodeOptions, build_options, open_encoder
from .formats import describe, frame_format, output_format, timed_like
from .output_paths import cannot_write, temp_path_for
from .source import DECODE_ORDER_ONLY, VideoInfo
from .streams import (AUDIO_FROM_ZERO, CHAPTER_FORMATS, AudioTranscoder, SubtitleTranscoder, attachment_of,
                      describe_output, fit_languages, has_encoder, is_timecode, label, muxer, plan, start_of, track_tags)

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner unless told to log errors only

__all__ = ["EncodeOptions", "MediaSink", "container_format_for", "video_encoder_for"]

DEFAULT_ENCODER = "libx264"
# Encoders offered when the container cannot hold the one asked for, in order of preference.
COMMON_ENCODERS = ("libx264", "libx265", "libsvtav1", "libvpx-vp9", "ffv1", "prores_ks", "mpeg4")
# MPEG-TS timestamps are 33-bit and wrap by design, so a stream that starts with a negative decode
# time (B-frames) is stored exactly and readers unwrap it; FFmpeg's default instead shifts every
# stream later by the encoder delay. AVI places video by chunk count and audio by byte count: the
# shift (from an audio encoder's negative start) rounded up to a whole frame moved every video
# frame after the first one frame later, behind an empty chunk.
MUXER_OPTIONS = {"mpegts": {"avoid_negative_ts": "disabled"}, "avi": {"avoid_negative_ts": "disabled"}}


def container_format_for(path: Path) -> str:
    """The FFmpeg muxer a file name implies."""
    if not path.suffix:
        raise OutputError(f"{path}: the output name needs a suffix that names its container (.mp4, .mkv, ...)")
    try:
        out = av.open(io.BytesIO(), "w", format=_FORMAT_BY_SUFFIX.get(path.suffix.lower(), path.suffix.lower().lstrip(".")))
    except (ValueError, av.error.FFmpegError):
        raise OutputError(f"{path}: unknown output container {path.suffix!r}") from None
    name = out.format.name
    out.close()
    return name


_FORMAT_BY_SUFFIX = {".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".mov": "mov", ".webm": "webm", ".avi": "avi",
                     ".nut": "nut", ".ts": "mpegts", ".m2ts": "mpegts", ".mts": "mpegts", ".m2t": "mpegts",
                     ".mpg": "mpeg", ".mpeg": "mpeg", ".y4m": "yuv4mpegpipe",
                     ".png": "apng", ".apng": "apng"}  # a video (an animated picture) written as PNG: APNG
# encoders whose time base must be one frame (MPEG-1/2 take only their standard rates; MPEG-4 Part 2
# a denominator below 2^16), and containers that write it as the frame rate (YUV4MPEG's header):
# they get the stream's frame rate, not the container's time base
FRAME_TIME_BASE = {"mpeg1video", "mpeg2video", "mpeg4"}
FRAME_RATE_CONTAINERS = {"yuv4mpegpipe", "avi"}
# encoders that read any YUV they are given as BT.601 limited range (WebP is defined so): given RGB,
# they convert it themselves, and decoders give the same RGB back
RGB_IN = {"libwebp", "libwebp_anim"}
PALETTED = {"gif"}  # encoders given pal8 frames with a palette of their own (io/palette.py), colour sources
DURATIONS_HELD = 256  # frame durations awaiting their packets: well beyond any encoder's delay
# MP4 and its kin. A track ends where its last packet in decode order ends (its dts plus its
# duration), not where the last frame shown ends: with B-frames and uneven durations (a GIF's held
# last picture) the two differ, so that packet's duration is set to make them meet. And an edit
# list starts the file at time 0, hiding whatever comes before: a source that starts earlier (an
# MPEG-TS captured across its clock's wrap) is moved later as a whole.
MOV_MUXERS = {"mp4", "mov", "ipod", "3gp", "3g2"}


def encoder_named(name: str) -> av.Codec:
    try:
        codec = av.Codec(name, "w")
    except (ValueError, av.error.FFmpegError):
        raise SettingsError(f"unknown encoder {name!r} (any FFmpeg video encoder, e.g. libx264, libx265, libsvtav1, ffv1)") from None
    if codec.type != "video":
        raise SettingsError(f"{name} is not a video encoder")
    return codec


def video_encoder_for(container_format: str, asked: str | None, pix_fmt: str | None = None) -> tuple[av.Codec, str | None]:
    """The encoder to use in a container, and a note when it is not the default one.

    A codec the user named (flag or preset) is used or refused, naming encoders that fit. With none
    named: libx264 where the container holds H.264, else the container's own default encoder, or
    another it holds that keeps ``pix_fmt`` (10-bit, say) when the default cannot."""
    mux = muxer(container_format)
    codec = encoder_named(asked or DEFAULT_ENCODER)
    if mux.holds(codec.name):
        return codec, None
    with av.open(io.BytesIO(), "w", format=container_format) as probe:
        default = probe.default_video_codec
    fits = [av.Codec(name, "w") for name in (default, *COMMON_ENCODERS)
            if name and name != "none" and has_encoder(name) and mux.holds(name)]
    fits = list({c.name: c for c in fits}.values())  # the default may also be a common one
    if asked is None and fits:
        keeps = [c for c in fits if pix_fmt is None or not c.video_formats or pix_fmt in {f.name for f in c.video_formats}]
        chosen = (keeps or fits)[0]
        return chosen, f"{mux.name} cannot hold {codec.name}; encoding with {chosen.name} (--codec to choose)"
    offer = f"choose --codec {' or '.join(c.name for c in fits)}" if fits else "choose another output container"
    raise SettingsError(f"{mux.name} cannot hold {codec.name} ({codec.long_name}); {offer}")


def check_encoder(enc: EncodeOptions, container_format: str = "matroska") -> None:
    """The encoder settings checked as an output would check them, on a small frame in memory:
    for a batch, whose files are opened one by one, so a bad --codec, --crf, --pix-fmt or
    --encoder-opt is one line before any work, not a failure in every file. What depends on the
    file (its container, size, format) is still checked with each file."""
    codec, _ = video_encoder_for(container_format, enc.codec, enc.pix_fmt)
    try:
        pix_fmt, _ = output_format("yuv420p", codec, 256, 256, enc.pix_fmt)
    except ValueError as e:
        raise SettingsError(str(e)) from None
    with av.open(io.BytesIO(), "w", format=container_format) as probe:
        stream = probe.add_stream(codec.name, rate=25, options=build_options(codec, enc, None, lambda _: None))
        stream.width, stream.height, stream.pix_fmt = 256, 256, pix_fmt
        open_encoder(stream)


# container tags that describe a file, not its content: not carried into an output
FILE_KEYS = {"major_brand", "minor_version", "compatible_brands", "encoder"}


class MediaSink:
    """The output file: an encoder for the video (or, with ``video_template``, a stream that takes
    already encoded packets, for joining segments) and every other stream of ``source`` carried."""

    def __init__(self, final: Path, info: VideoInfo, source, enc: EncodeOptions, width: int, height: int,
                 warn: Callable[[str], None], video_template=None, tag: str | None = None):
        self.final = final
        self.tmp = temp_path_for(final)
        self.info = info
        self.warn = warn
        self.width, self.height = width, height
        self.frames_in = 0
        self.packets_out = 0
        self.encoded = video_template is not None
        self._last_time = None  # the latest frame time written, in seconds (a Fraction)
        self._first_time = None
        # an encoder timed in whole frames (FRAME_TIME_BASE) into a container with finer times:
        # seconds from the frame grid to the first frame's time, taken off each frame and put back
        # on each packet, so a source whose frames sit off the grid (an MPEG-TS's start) keeps
        # them where they were instead of rounded half a frame away (None: not such an encoder)
        self._grid_offset = None
        self._not_after = None  # (input frame number, seconds) of the first frame not after the one before
        # each frame's duration in seconds by its time, until its packet comes out of the encoder:
        # encoders drop frame durations, and the muxer needs them for the last frame
        self._durations: dict = {}
        fmt = container_format_for(final)
        self._held = None  # MOV_MUXERS: the latest video packet, muxed once the next comes
        self._extent = None  # (first dts, first pts, latest end) in seconds of the video packets muxed
        self.format = fmt
        self._palettes = None  # a paletted encoder's per-frame palettes (io/palette.py)
        if not self.encoded:
            codec, note = video_encoder_for(fmt, enc.codec, info.work_format)
            if note:
                warn(note)
            try:
                self.pix_fmt, notes = output_format(info.work_format, codec, width, height, enc.pix_fmt)
            except ValueError as e:
                raise SettingsError(str(e)) from None
            if codec.name in RGB_IN and not enc.pix_fmt and "bgra" in {f.name for f in codec.video_formats or []}:
                self.pix_fmt, notes = "bgra", []  # converted here with the source's own matrix and range
            if codec.name in PALETTED and not enc.pix_fmt and self.pix_fmt != "gray":
                from .palette import FramePalettes

                self.pix_fmt, self._palettes = "pal8", FramePalettes()
                notes = [f"{codec.name} holds 256 colours a frame: each frame gets its own palette, dithered"]
            for n in notes:
                warn(n)
            # what the pipeline fills (its luma plane written by the engine); converted to pix_fmt here
            self.frame_format = frame_format(self.pix_fmt)
        self.tag = tag
        options = dict(MUXER_OPTIONS.get(fmt, {}))
        if tag is not None:
            if fmt in tags.TAGGING_MUXERS:
                options.update(tags.TAGGING_MUXERS[fmt])
            else:
                warn(f"{final.suffix or fmt} cannot store the delivery tag; upscale it with --model and --scale "
                     "(or write .mp4, .mkv, .mov or .webm)")
                self.tag = None
        self.container = av.open(str(self.tmp), "w", format=fmt, options=options)
        self._lead = self._lead_before_zero(source) if fmt in MOV_MUXERS else Fraction(0)
        try:
            if self.encoded:
                self._add_encoded_video(video_template, source)
            else:
                self._add_video(enc, codec, width, height, source)
            self._carry_streams()
            fit_languages(self.container, fmt, warn)
        except av.error.FFmpegError as e:
            self.abort()
            raise OutputError(f"{final}: {fmt} refused the output's streams ({e})") from None
        except BaseException:
            self.abort()
            raise

    # -- setup --------------------------------------------------------------------------------

    def _lead_before_zero(self, source) -> Fraction:
        """Seconds the source starts before time 0, where its video does (MOV_MUXERS would hide
        those frames), said in a warning: every packet is moved that much later. Audio alone a
        little before 0 is an encoder's priming, which the edit list is right to hide."""
        video = source.streams[self.info.index]
        earliest = min((start_of(s) for s in source.streams), default=Fraction(0))
        if start_of(video) >= 0 or earliest >= 0:
            return Fraction(0)
        self.warn(f"the input starts {float(-earliest):.3f} s before time 0, which {self.format} would hide: "
                  f"every stream is moved {float(-earliest):.3f} s later")
        return -earliest

    def _add_video(self, enc: EncodeOptions, codec: av.Codec, width: int, height: int, source) -> None:
        info = self.info
        options = build_options(codec, enc, info.hdr, self.warn)
        if self.format in DECODE_ORDER_ONLY:
            # a chunk's place is its time and only decode order is kept: B-frames would move the
            # frames next to a gap (the encoder's decode times space them unlike the frames)
            options.setdefault("bf", "0")
        rate = info.average_rate if info.average_rate else None
        self.video = self.container.add_stream(codec.name, rate=rate, options=options)
        cc = self.video.codec_context
        cc.width, cc.height, cc.pix_fmt = width, height, self.pix_fmt
        cc.time_base = info.time_base
        if rate:  # what the bitstream declares (H.264's VUI); else encoders declare 1/time base (12800 fps)
            cc.framerate = rate
        self.video.time_base = info.time_base
        if (codec.name in FRAME_TIME_BASE or self.format in FRAME_RATE_CONTAINERS) and rate:
            cc.time_base = 1 / rate  # frames are retimed to it as they are encoded
            if self.format in FRAME_RATE_CONTAINERS:
                self.video.time_base = cc.time_base
            else:
                self._grid_offset = Fraction(0)  # measured on the first frame
        c = info.colour
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = c.space, c.primaries, c.transfer, c.range
        self._matrix = c.space  # the frames' YUV matrix, for an RGB encoder (the source's, or the one its size implies)
        self._range = "JPEG" if c.full_range else "MPEG"
        if describe(av.VideoFormat(self.pix_fmt))[2]:
            cc.colorspace = 0  # RGB samples: no matrix applies
        if info.sample_aspect_ratio:
            cc.sample_aspect_ratio = info.sample_aspect_ratio
        if info.display_matrix:
            import numpy as np

            self.video.set_display_matrix([int(v) for v in np.frombuffer(info.display_matrix, dtype="<i4")])
        self._describe_video(source)
        open_encoder(self.video)

    def _add_encoded_video(self, template, source) -> None:
        """A video stream for packets encoded elsewhere (segments of this output), with the
        encoded stream's parameters (codec, size, colour, side data) and the source's time base."""
        self.video = self.container.add_stream_from_template(template)
        self.video.time_base = self.info.time_base
        self._describe_video(source)

    def _describe_video(self, source) -> None:
        src_video = source.streams[self.info.index]
        self.video.metadata.update(track_tags(src_video.metadata, keep=("language", "title", "handler_name", "timecode")))
        # a timecode track's start timecode, where only the track has it
        for s in self.info.other_streams:
            if is_timecode(s) and "timecode" not in self.video.metadata:
                self.video.metadata["timecode"] = s.metadata["timecode"]
        # the source's tags, but not a delivery tag (only the downscaler writes one, its own) nor what
        # describes the source's file rather than its content (its brands, the program that wrote it):
        # the output's muxer writes its own, and MP4 with stored tags would add them a second time
        self.container.metadata.update({k: v for k, v in source.metadata.items()
                                        if not tags.is_key(k) and k.lower() not in FILE_KEYS})
        if self.tag is not None:
            self.container.metadata[tags.KEY] = self.tag
        chapters = source.chapters()
        for c in chapters:  # moved with the streams (see _lead_before_zero)
            if self._lead:
                c["start"] += round(self._lead / c["time_base"])
                c["end"] += round(self._lead / c["time_base"])
        if chapters:  # timestamps are unchanged, so each chapter still starts on its frame
            fmt = self.container.format.name.split(",")[0]
            if fmt in CHAPTER_FORMATS:
                self.container.set_chapters(chapters)
            else:
                self.warn(f"{len(chapters)} chapters: {fmt} cannot hold them; they are left out "
                          "(write to .mkv or .mp4 to keep them)")

    def _carry_streams(self) -> None:
        """Map every other input stream to a copy, an attachment, a conversion, or nothing (with a
        warning naming it); see ``streams``."""
        fmt = self.container.format.name.split(",")[0]
        self.routes: dict[int, tuple[str, object]] = {}
        for carry in plan(self.info.other_streams, fmt):
            s = carry.stream
            note = carry.warning(fmt)
            if note:
                self.warn(note)
            if carry.action == "copy":
                out = self.container.add_stream_from_template(s)
                describe_output(out, s)
                self.routes[s.index] = ("copy", out)
            elif carry.action == "attach":
                attachment = attachment_of(s, self.info.cover_pictures)
                if attachment is None:
                    self.warn(f"{label(s)}: the file holds no picture for it; it is left out")
                    continue
                self.container.add_attachment(*attachment)
                self.routes[s.index] = ("attached", None)  # written with the header; its packets are not muxed
            elif carry.action == "audio":
                self.routes[s.index] = ("convert", AudioTranscoder(self.container, s, carry.target, carry.zero))
            elif carry.action == "subtitle":
                self.routes[s.index] = ("convert", SubtitleTranscoder(self.container, s, carry.target))

    # -- writing ------------------------------------------------------------------------------

    def write_frame(self, frame: av.VideoFrame) -> None:
        self.frames_in += 1
        if frame.pts is not None and frame.time_base is not None:
            t = frame.pts * frame.time_base
            if self._last_time is not None and t <= self._last_time and self._not_after is None:
                self._not_after = (self.frames_in - 1, float(t))  # counted from 0, as damage is
            self._last_time = t if self._last_time is None else max(t, self._last_time)
            if frame.duration:
                self._durations[t] = frame.duration * frame.time_base
                if len(self._durations) > DURATIONS_HELD:  # a packet retimed by its encoder never claims its entry
                    del self._durations[min(self._durations)]
            self._check_on_rate(t)
            if self._grid_offset is not None:
                rate = self.info.average_rate
                if self.frames_in == 1:
                    self._grid_offset = t - Fraction(round(t * rate)) / rate
                frame.pts, frame.time_base = round((t - self._grid_offset) * rate), 1 / rate
        # A decoded frame keeps its picture type, and encoders obey a forced one: from an intra-only
        # source (FFV1, ProRes, MJPEG) every frame would be a keyframe. The encoder picks its own GOP.
        frame.pict_type = av.video.frame.PictureType.NONE
        target = "bgra" if self._palettes is not None else self.pix_fmt  # a palette is made from RGB
        if frame.format.name != target:  # an RGB or packed encoder: converted with the output's matrix
            frame = timed_like(frame.reformat(format=target, src_colorspace=self._matrix,
                                              src_color_range=self._range, dst_color_range=self._range), frame)
        if self._palettes is not None:
            frame = self._palettes(frame)
        try:
            self._mux_video(self.video.encode(frame))
        except (av.error.FFmpegError, OSError) as e:
            raise self._explained(e) from None

    def _check_on_rate(self, t) -> None:
        """A container that keeps a frame rate instead of times (AVI, YUV4MPEG) places a frame by its
        count: a frame off the rate's grid would be moved without a word, so it is refused (a gap of
        whole frames is kept: the muxer fills it)."""
        rate = self.info.average_rate
        if self.encoded or self.format not in FRAME_RATE_CONTAINERS or not rate:
            return
        if self._first_time is None:
            self._first_time = t
        k = (t - self._first_time) * rate
        if abs(k - round(k)) > 0.25:
            raise OutputError(f"{self.final}: {self.format} keeps a constant frame rate ({float(rate):.6g} fps), and input "
                              f"frame {self.frames_in - 1} at {float(t):.3f} s is off it (the input's frame rate varies); "
                              "write .mkv or .mp4, which keep each frame's time")

    def _explained(self, error: Exception) -> Exception:
        """The error to raise for an encoder's or muxer's refusal: a frame whose time is not after the
        one before explains FFmpeg's bare "Invalid argument" (MP4, MOV, MPEG-TS and most encoders
        take only rising timestamps; x264 into Matroska keeps a repeated one)."""
        if self._not_after is None:
            return cannot_write(self.final, error) if isinstance(error, OSError) else error
        n, t = self._not_after
        return OutputError(f"{self.final}: input frame {n} is timed at {t:.3f} s, not after the frame before it; "
                           f"{self.video.codec_context.name} into {self.format} takes only rising timestamps "
                           "(libx264 into Matroska keeps them: -o NAME.mkv)")

    def write_encoded(self, packet: av.Packet) -> None:
        """Mux an already encoded video packet (``video_template``), in decode order."""
        self.frames_in += 1
        packet.stream = self.video
        self._mux_video([packet])

    def _mux_video(self, packets) -> None:
        for p in packets:
            self.packets_out += 1
            if self._grid_offset and p.time_base is not None:  # back where the frames were (see __init__)
                tb = self.video.time_base
                if p.pts is not None:
                    p.pts = round((p.pts * p.time_base + self._grid_offset) / tb)
                if p.dts is not None:
                    p.dts = round((p.dts * p.time_base + self._grid_offset) / tb)
                p.duration = round(p.duration * p.time_base / tb)
                p.time_base = tb
            if not self.encoded and p.pts is not None and p.time_base is not None:
                duration = self._durations.pop(p.pts * p.time_base, None)
                if duration is not None and not p.duration:
                    p.duration = max(1, round(duration / p.time_base))
            if self.format not in MOV_MUXERS or p.dts is None or p.pts is None or p.time_base is None:
                self._mux(p)
                continue
            dts, pts, end = p.dts * p.time_base, p.pts * p.time_base, (p.pts + (p.duration or 0)) * p.time_base
            first_dts, first_pts, latest = self._extent or (dts, pts, end)
            self._extent = (first_dts, min(first_pts, pts), max(latest, end))
            if self._held is not None:
                self._mux(self._held)
            self._held = p

    def _mux_last_video(self) -> None:
        """The held last packet, lasting until the latest frame shown ends (the track's length is
        counted from the first dts to the last packet's dts plus its duration)."""
        p, self._held = self._held, None
        if p is None:
            return
        if p.duration:
            first_dts, first_pts, end = self._extent
            lasts = (end - first_pts) - (p.dts * p.time_base - first_dts)
            if lasts > 0:
                p.duration = max(1, round(lasts / p.time_base))
        self._mux(p)

    def _mux(self, packet: av.Packet) -> None:
        """Mux one packet. The first one creates the file and writes the header (so the file only
        exists once the pipeline that removes it on failure is running)."""
        if self._lead and packet.time_base is not None:  # see _lead_before_zero
            step = round(self._lead / packet.time_base)
            if packet.pts is not None:
                packet.pts += step
            if packet.dts is not None:
                packet.dts += step
        try:
            self.container.mux(packet)
        except OSError as e:  # PyAV's errno errors (disk full, read-only, I/O error) are OSErrors too
            raise cannot_write(self.final, e) from None

    def write_packet(self, packet: av.Packet) -> None:
        """Mux a packet of another stream by its plan. Packets without a decode timestamp are muxed
        as they are: FFmpeg's muxer derives one where the container needs it."""
        kind, target = self.routes.get(packet.stream.index, ("dropped", None))
        if kind == "copy" and packet.is_discard and self.format in AUDIO_FROM_ZERO:
            return  # before an edit list's start: timestamps hide it elsewhere, AVI would play it
        if kind == "copy":
            packet.stream = target
            self._mux(packet)
        elif kind == "convert":
            for p in target.feed(packet):
                self._mux(p)

    def close(self) -> None:
        """Flush encoders, check that every frame came out, and move the file into place."""
        try:
            if not self.encoded:
                self._mux_video(self.video.encode(None))
            self._mux_last_video()
            for kind, target in self.routes.values():
                if kind == "convert":
                    for p in target.feed(None):
                        self._mux(p)
            if self.packets_out != self.frames_in and not self._one_packet_animation():
                raise OutputError(f"encoder returned {self.packets_out} frames for {self.frames_in} given; output not written")
            self.container.close()
            os.replace(self.tmp, self.final)
        except (av.error.FFmpegError, OSError) as e:
            self.abort()
            explained = self._explained(e)
            raise (cannot_write(self.final, e) if explained is e else explained) from None
        except BaseException:
            self.abort()
            raise

    def _one_packet_animation(self) -> bool:
        """An animated WebP is one packet holding every frame (libwebp_anim writes it at the end)."""
        return not self.encoded and self.video.codec_context.name == "libwebp_anim" and self.packets_out == 1

    def abort(self) -> None:
        """Drop the partial output. Never raises: it runs while another error is on its way out."""
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - a half-written file may not close cleanly; it is removed next
            pass
        try:
            self.tmp.unlink(missing_ok=True)
        except OSError:  # a folder we could not write to has no partial file to remove
            pass

