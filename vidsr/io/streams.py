"""Every input stream other than the upscaled video, and what the output does with it.

Nothing is lost silently. A stream is carried byte for byte when the output container holds it;
otherwise it is converted with a warning (audio to the container's audio codec, text subtitles to
its subtitle format), and what can be neither is left out with a warning that names it. Cover art
(an ``attached_pic`` stream) goes into MP4 as its cover picture and into Matroska as the
attachment Matroska stores it as; fonts and other attachments exist only in Matroska.
"""

from __future__ import annotations

import io
import mimetypes
from dataclasses import dataclass
from fractions import Fraction
from functools import cache

import av
import av.error

TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"}
SUBTITLE_FOR = {"mp4": "mov_text", "mov": "mov_text", "matroska": "ass", "webm": "webvtt"}
# Matroska is the one container with attachment streams; WebM, its subset, leaves them out.
ATTACHMENT_FORMATS = {"matroska"}
# Muxers that store an attached picture as the file's cover: MP4's 'covr' atom. (FFmpeg's MOV mode
# takes such a stream without complaint and writes nothing of it.)
COVER_ART_FORMATS = {"mp4"}
# FFmpeg's MPEG-TS muxer answers "unknown" when asked about any codec but its defaults, and writes
# what it has no stream type for as private data that readers cannot identify. These are the codecs
# it writes with a stream type or descriptor readers know (and opaque data, which stays opaque).
TS_CODECS = {"mpeg1video", "mpeg2video", "mpeg4", "h264", "hevc", "vvc", "cavs", "dirac", "vc1",
             "mp2", "mp3", "aac", "aac_latm", "ac3", "eac3", "dts", "truehd", "opus", "s302m",
             "dvb_subtitle", "dvb_teletext", "klv", "timed_id3", "bin_data"}
# Muxers that write chapters (FFmpeg's others drop them without a word).
CHAPTER_FORMATS = {"mp4", "mov", "matroska", "webm"}
# Muxers that place audio by its byte count from the video's first frame, not by its timestamps
# (AVI): audio that starts later must be preceded by silence, or it plays that much early, and
# audio that starts earlier must lose its head, or it plays that much late.
AUDIO_FROM_ZERO = {"avi"}
LATE_AUDIO_S = 0.005  # a start further off than this is evened out by re-encoding
# Suffixes to suggest when a stream has to be left out, in the order they are offered.
SUGGESTED = {"matroska": ".mkv", "mp4": ".mp4", "mov": ".mov", "mpegts": ".ts"}


@dataclass
class Muxer:
    """What an FFmpeg muxer takes, asked of FFmpeg itself."""

    name: str
    codecs: frozenset[str]  # FFmpeg's answer: codec, decoder and encoder names
    audio_codec: str | None  # its default audio encoder, for audio it cannot hold

    def holds(self, codec: str) -> bool:
        """Whether the container can hold a codec (by codec or coder name: h264, libx264)."""
        if self.name == "mpegts":
            return canonical(codec) in TS_CODECS
        return codec in self.codecs

    def accepts(self, stream) -> bool:
        """Whether the muxer takes a copy of this very stream. Writing a header is where a muxer
        refuses one, and FFmpeg's codec list says yes to some it then refuses (Opus in MOV). PCM
        also writes a packet and the trailer: MP4 takes PCM with no channel order in the header and
        refuses it only when it writes the trailer. (Only PCM: a muxer parses some coded packets,
        E-AC-3 in MP4 say, and would refuse a made-up one that the real stream's packets pass.)"""
        try:
            with av.open(io.BytesIO(), "w", format=self.name) as out:
                copy = out.add_stream_from_template(stream)
                copy.disposition = stream.disposition
                out.start_encoding()
                if stream.type == "audio" and codec_of(stream).startswith("pcm_"):
                    packet = av.Packet(bytes(max(stream.codec_context.block_align or 0, 64)))
                    packet.stream, packet.pts, packet.dts, packet.time_base = copy, 0, 0, copy.time_base
                    out.mux(packet)
        except (ValueError, av.error.FFmpegError):
            return False
        return True


@cache
def muxer(container_format: str) -> Muxer:
    out = av.open(io.BytesIO(), "w", format=container_format)
    try:
        audio = out.default_audio_codec
        return Muxer(out.format.name.split(",")[0], frozenset(out.supported_codecs),
                     audio if audio and audio != "none" else None)
    finally:
        out.close()


@cache
def canonical(codec: str) -> str:
    """The codec a decoder or encoder name stands for (libx264 -> h264, srt -> subrip)."""
    for mode in ("r", "w"):
        try:
            return av.Codec(codec, mode).canonical_name
        except (ValueError, av.error.FFmpegError):
            continue
    return codec


def is_cover_art(stream) -> bool:
    return stream.type == "video" and bool(stream.disposition & av.stream.Disposition.attached_pic)


def main_video(container):
    """The stream that is upscaled: the first video stream that is not cover art."""
    return next((s for s in container.streams.video if not is_cover_art(s)), None)


def codec_of(stream) -> str:
    """The codec name of any stream; attachments and data streams have no codec context, and a
    timecode track (QuickTime 'tmcd') has no codec FFmpeg names."""
    if stream.codec_context is not None:
        return stream.codec_context.name
    if stream.type == "data":
        return stream.name or ("timecode" if is_timecode(stream) else "data")
    return stream.metadata.get("mimetype", "attachment")


def is_timecode(stream) -> bool:
    """A timecode track: a data stream whose only content is the start timecode in its tags."""
    return stream.type == "data" and not stream.name and "timecode" in stream.metadata


def label(stream) -> str:
    """How a warning names a stream: its index, kind, codec, language and file name."""
    kind = "cover art" if is_cover_art(stream) else stream.type
    parts = [kind] if stream.type == "attachment" else [kind, codec_of(stream)]
    language = stream.metadata.get("language")
    if language and language != "und":
        parts.append(f"language {language}")
    name = stream.name if stream.type == "attachment" else stream.metadata.get("filename")
    if name:
        parts.append(repr(name))
    return f"stream #{stream.index} ({', '.join(parts)})"


@dataclass
class Carry:
    """The plan for one input stream.

    action: "copy" (packets muxed as they are), "attach" (written once, as a Matroska attachment),
    "audio" / "subtitle" (decoded and re-encoded to ``target``), "timecode" (the output video's
    timecode tag stands for it), "chapters" (the output's chapters stand for it) or "drop".
    For a container that places audio from the video's first frame (``AUDIO_FROM_ZERO``), re-encoded
    audio is timed from ``zero``, that frame's time in seconds; ``late`` is how many seconds after it
    the audio starts, made up for with silence (or by losing its head) when it is more than a few ms.
    """

    stream: object
    action: str
    target: str | None = None
    late: Fraction = Fraction(0)
    zero: Fraction | None = None

    def warning(self, fmt: str) -> str | None:
        codec = codec_of(self.stream)
        if self.action == "audio" and self.late:
            evened = "with that much silence before it" if self.late > 0 else "without its first samples"
            return (f"{label(self.stream)}: {fmt} plays audio from the video's first frame, and this starts "
                    f"{abs(self.late):.3f} s {'after' if self.late > 0 else 'before'} it; transcoding to "
                    f"{self.target} {evened}")
        if self.action == "audio":
            return f"{label(self.stream)}: {fmt} cannot hold {codec}; transcoding to {self.target}"
        if self.action == "subtitle":
            return f"{label(self.stream)}: {fmt} cannot hold {codec}; converting to {self.target}"
        if self.action == "drop":
            keep = [suffix for name, suffix in SUGGESTED.items() if name != fmt and plan_one(self.stream, muxer(name)).action != "drop"]
            hint = f" (write to {' or '.join(keep)} to keep it)" if keep else ""
            return f"{label(self.stream)}: {fmt} cannot hold it and it cannot be converted; it is left out{hint}"
        return None


def is_chapter_track(stream) -> bool:
    """MP4/MOV keep chapter titles in a text track, which FFmpeg reads as the file's chapters and
    shows as a data stream of raw bytes. The output's own chapters stand for it."""
    return (stream.type == "data" and codec_of(stream) == "bin_data" and stream.container.format.name.startswith("mov")
            and bool(stream.container.chapters()))


def plan_one(stream, mux: Muxer) -> Carry:
    if is_chapter_track(stream):
        return Carry(stream, "chapters")
    if is_timecode(stream):
        # The start timecode goes onto the output's video stream as a tag: MP4 and MOV muxers write
        # a new timecode track from it, other containers keep the tag. Frame timing is unchanged,
        # so the timecode still names the same frames.
        return Carry(stream, "timecode")
    if stream.type == "attachment":
        return Carry(stream, "attach" if mux.name in ATTACHMENT_FORMATS else "drop")
    codec = codec_of(stream)
    if is_cover_art(stream):
        if mux.name in COVER_ART_FORMATS and mux.holds(codec) and mux.accepts(stream):
            return Carry(stream, "copy")
        return Carry(stream, "attach" if mux.name in ATTACHMENT_FORMATS else "drop")
    zero = None
    if stream.type == "audio" and mux.name in AUDIO_FROM_ZERO:
        video = main_video(stream.container)
        zero = start_of(video) if video is not None else Fraction(0)
        late = start_of(stream) - zero
        same = canonical(codec)
        target = same if mux.holds(same) and has_encoder(same) else mux.audio_codec
        if abs(late) > LATE_AUDIO_S and target:
            return Carry(stream, "audio", target, late=late, zero=zero)
    if mux.holds(codec) and mux.accepts(stream):
        return Carry(stream, "copy")
    if stream.type == "audio" and mux.audio_codec:
        return Carry(stream, "audio", mux.audio_codec, zero=zero)
    if stream.type == "subtitle" and codec in TEXT_SUBTITLES and mux.name in SUBTITLE_FOR:
        return Carry(stream, "subtitle", SUBTITLE_FOR[mux.name])
    return Carry(stream, "drop")


def start_of(stream) -> Fraction:
    """Seconds from the file's zero to the stream's first packet (0 where the file does not say)."""
    if stream.start_time is None or stream.time_base is None:
        return Fraction(0)
    return Fraction(stream.start_time) * Fraction(stream.time_base)


@cache
def has_encoder(codec: str) -> bool:
    """Whether PyAV's FFmpeg has an encoder by this name (the wheels leave some out)."""
    try:
        av.Codec(codec, "w")
        return True
    except (ValueError, av.error.FFmpegError):
        return False


def plan(streams, container_format: str) -> list[Carry]:
    mux = muxer(container_format)
    return [plan_one(s, mux) for s in streams]


def holds_all(container_format: str, streams) -> bool:
    """Whether a container carries every stream as it is (copied, attached, or standing in the
    output's timecode tag or chapters; nothing converted or left out)."""
    return all(c.action in ("copy", "attach", "timecode", "chapters") for c in plan(streams, container_format))


def attachment_of(stream, cover_pictures: dict[int, bytes]) -> tuple[str, str, bytes] | None:
    """(file name, MIME type, bytes) of an attachment or of a cover picture to store as one; None
    for a cover whose picture the file did not give."""
    if stream.type == "attachment":
        return stream.name, stream.mimetype, bytes(stream.data)
    if stream.index not in cover_pictures:
        return None
    mime = stream.metadata.get("mimetype") or {"mjpeg": "image/jpeg", "png": "image/png", "bmp": "image/bmp"}.get(
        codec_of(stream), "application/octet-stream")
    name = stream.metadata.get("filename") or f"cover{mimetypes.guess_extension(mime) or '.bin'}"
    return name, mime, cover_pictures[stream.index]


def track_tags(metadata: dict, keep=None) -> dict:
    """An input stream's tags for its output stream (``keep``: only those keys, lower case), less
    what describes the input file (its duration, its encoder). FFmpeg reads an MP4/MOV track's
    title as ``name`` but writes the ``title`` tag: the one becomes the other."""
    tags = {k: v for k, v in metadata.items() if k.lower() not in ("duration", "encoder")
            and (keep is None or k.lower() in keep or k.lower() == "name")}
    if "name" in tags and not any(k.lower() == "title" for k in tags):
        tags["title"] = tags.pop("name")
    return tags


# ISO 639-2's languages with two codes, bibliographic and terminological ("fre" and "fra").
_TWIN_PAIRS = ("alb sqi", "arm hye", "baq eus", "bur mya", "chi zho", "cze ces", "dut nld", "fre fra", "geo kat",
               "ger deu", "gre ell", "ice isl", "mac mkd", "mao mri", "may msa", "per fas", "rum ron", "slo slk",
               "tib bod", "wel cym")
LANGUAGE_TWINS = {a: b for pair in _TWIN_PAIRS for a, b in [pair.split(), pair.split()[::-1]]}


@cache
def mov_keeps_language(code: str) -> bool:
    """Whether FFmpeg's MOV muxer stores ``code``: it keeps only QuickTime's own language list
    (which holds "fra" but "ger", and no "swe") and drops anything else without a word. Asked of
    the muxer itself, with a one-packet file in memory."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mov") as c:
        s = c.add_stream("pcm_s16le", rate=8000, layout="mono")
        s.metadata["language"] = code
        frame = av.AudioFrame(format="s16", layout="mono", samples=16)
        frame.sample_rate, frame.pts = 8000, 0
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        c.mux(s.encode(frame))
        c.mux(s.encode(None))
    buf.seek(0)
    with av.open(buf) as c:
        return c.streams[0].metadata.get("language") == code


def fit_languages(container, fmt: str, warn) -> None:
    """Language tags as ``fmt`` can keep them: MOV takes a language under its other ISO 639-2 code
    where only that one is on its list; one it cannot keep under either is named in a warning."""
    if fmt != "mov":
        return
    for out in container.streams:
        code = out.metadata.get("language")
        if not code or code == "und" or mov_keeps_language(code):
            continue
        twin = LANGUAGE_TWINS.get(code)
        if twin and mov_keeps_language(twin):
            out.metadata["language"] = twin
        else:
            warn(f"output stream {out.index} ({out.type}): .mov cannot store its language {code!r} "
                 "(QuickTime's own list); it is left out (write .mp4 or .mkv to keep it)")


def describe_output(out, stream) -> None:
    """Give an output stream the input's tags (language, title, ...) and disposition."""
    out.metadata.update(track_tags(stream.metadata))
    out.disposition = stream.disposition


# FFmpeg's default layout per channel count, for audio that names no channel order
DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def ordered_layout(layout) -> str:
    """The layout to encode: the source's, or where it names no channel order (PCM's "2 channels",
    which encoders refuse) the usual one for as many channels."""
    if layout is None:
        return "stereo"
    if layout.name.endswith("channels"):
        return DEFAULT_LAYOUTS.get(layout.nb_channels, layout.name)
    return layout.name


class AudioTranscoder:
    """Decode, resample where the encoder needs it, encode. ``zero``: for a container that places
    audio by count from the video's first frame (``AUDIO_FROM_ZERO``), that frame's time in
    seconds: the output starts there, with silence before the first sample or without the samples
    before it, and from there on its samples are counted."""

    def __init__(self, container, stream, codec: str, zero: Fraction | None = None):
        self.zero = zero
        self.next_sample: int | None = None  # with zero: the count so far, once the first frame came
        self.skip = 0  # with zero: samples still to drop from the head
        self.decoder = av.CodecContext.create(stream.codec_context.name, "r")
        self.decoder.extradata = stream.codec_context.extradata
        layout = stream.codec_context.layout
        rate = stream.codec_context.sample_rate
        # PCM packets do not say their rate, channels or sample format: the decoder is told them
        self.decoder.sample_rate, self.decoder.layout = rate, layout
        self.decoder.format = stream.codec_context.format
        rates = av.Codec(codec, "w").audio_rates  # Opus, say, takes 48 kHz but not 44.1 kHz
        if rates and rate not in rates:
            rate = max(rates)
        self.out = container.add_stream(codec, rate=rate, layout=ordered_layout(layout))
        describe_output(self.out, stream)
        self.resampler = av.AudioResampler(format=self.out.codec_context.format, layout=self.out.codec_context.layout, rate=rate)

    def feed(self, packet):
        frames = self.decoder.decode(packet) if packet is not None else self.decoder.decode(None)
        resampled = [r for f in frames for r in self.resampler.resample(f)]
        if packet is None:
            resampled += self.resampler.resample(None)
        out = []
        for r in resampled:
            if self.zero is not None:
                if self.next_sample is None:
                    out += self._start(r)
                r = self._counted(r)
                if r is None:
                    continue
            out += self.out.encode(r)
        if packet is None:
            out += self.out.encode(None)
        return out

    def _start(self, first) -> list:
        """How far the first frame is from ``zero``, less the encoder's priming (which a container
        without timestamps plays too): that much silence, encoded now, or that many samples dropped."""
        if not self.out.codec_context.is_open:
            self.out.codec_context.open()  # it knows its priming once open
        rate = first.sample_rate
        offset = 0
        if first.pts is not None and first.time_base is not None:
            offset = round((first.pts * first.time_base - self.zero) * rate)
            offset -= self.out.codec_context.initial_padding or 0
        self.next_sample, self.skip = max(offset, 0), max(-offset, 0)
        if offset <= 0:
            return []
        silence = av.AudioFrame(format=first.format.name, layout=first.layout.name, samples=offset)
        for plane in silence.planes:
            plane.update(bytes(plane.buffer_size))
        silence.sample_rate, silence.time_base, silence.pts = rate, Fraction(1, rate), 0
        return self.out.encode(silence)

    def _counted(self, frame):
        """The frame less what is still to be dropped, timed by the count (the source's times, in
        Matroska's milliseconds say, would round unevenly against it); None when all of it goes."""
        if self.skip >= frame.samples:
            self.skip -= frame.samples
            return None
        if self.skip:
            samples = frame.to_ndarray()
            keep = samples[:, self.skip:] if frame.format.is_planar else samples[:, self.skip * frame.layout.nb_channels:]
            rate = frame.sample_rate
            frame = av.AudioFrame.from_ndarray(keep.copy(), format=frame.format.name, layout=frame.layout.name)
            frame.sample_rate = rate
            self.skip = 0
        frame.pts, frame.time_base = self.next_sample, Fraction(1, frame.sample_rate)
        self.next_sample += frame.samples
        return frame


class SubtitleTranscoder:
    def __init__(self, container, stream, codec: str):
        self.decoder = stream.codec_context
        if not self.decoder.is_open:
            self.decoder.open()  # text decoders make their ASS header when opened
        self.out = container.add_stream(codec)
        describe_output(self.out, stream)
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
