"""The "nothing lost" matrix: every output container x every source kind, each run on one file that
carries every kind of stream (second video, two audio codecs, two subtitle formats, a font
attachment, cover art; data streams in their own MPEG-TS carrier). Each run must exit 0 and account
for every input stream: carried byte for byte (up to the framing the container requires), converted
with a warning, or left out with a warning that names it; the upscaled video keeps its frame count,
timestamps, colour tags, bit depth and HDR10 metadata, and the encoder picks its own keyframes."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import av
import av.bitstream
import pytest

from vidsr.io.hdr import HdrMetadata
from vidsr.io.source import implied_matrix

from .media import MAX_CLL, SOURCES, make_carrier, make_data_carrier

CONTAINERS = ["mp4", "mkv", "mov", "ts", "webm"]
KINDS = [*SOURCES, "data"]
ATTACHED_PIC = av.stream.Disposition.attached_pic
# What some containers require of a stream's framing, undone before comparing payloads: MPEG-TS
# carries H.264/HEVC as Annex B with access unit delimiters, and AAC with ADTS headers.
ANNEX_B = {"h264": "h264_mp4toannexb", "hevc": "hevc_mp4toannexb"}
FRAMING_NALS = {"h264": {7, 8, 9}, "hevc": {32, 33, 34, 35}}  # parameter sets and delimiters


@dataclass
class StreamFacts:
    index: int
    type: str
    codec: str
    language: str  # "und" when untagged
    cover: bool
    name: str | None = None  # attachment file name
    payloads: list = field(default_factory=list)  # normalised packet payloads, in order
    times: list = field(default_factory=list)  # packet pts in seconds (3 decimals), None when unset


def _nal_units(data: bytes, codec: str) -> list[bytes]:
    """The NAL units of an H.264/HEVC packet (length-prefixed or Annex B), without the ones a
    container adds or moves (parameter sets, delimiters)."""
    units = []
    if data[:3] == b"\0\0\1" or data[:4] == b"\0\0\0\1":
        units = [u.lstrip(b"\0") for u in data.split(b"\0\0\1") if u.strip(b"\0")]
    else:
        i = 0
        while i + 4 <= len(data):
            n = int.from_bytes(data[i:i + 4], "big")
            units.append(data[i + 4:i + 4 + n])
            i += 4 + n
    kind = (lambda u: u[0] & 0x1F) if codec == "h264" else (lambda u: (u[0] >> 1) & 0x3F)
    return [u.rstrip(b"\0") for u in units if kind(u) not in FRAMING_NALS[codec]]


def _normalise(data: bytes, codec: str) -> object:
    if codec in FRAMING_NALS:
        return _nal_units(data, codec)
    if codec == "aac" and data[:2] in (b"\xff\xf1", b"\xff\xf9"):
        return data[7 if data[1] & 1 else 9:]  # the ADTS header MPEG-TS needs
    return data


def streams_of(path) -> list[StreamFacts]:
    with av.open(str(path)) as c:
        facts = []
        for s in c.streams:
            codec = s.codec_context.codec.canonical_name if s.codec_context else (s.name if s.type == "data" else "attachment")
            language = s.metadata.get("language", "und")  # containers differ in how they say "none"
            f = StreamFacts(s.index, s.type, codec, language, s.type == "video" and bool(s.disposition & ATTACHED_PIC))
            if s.type == "attachment":
                f.name, f.payloads = s.name, [bytes(s.data)]
            facts.append(f)
        for p in c.demux():
            f = facts[p.stream.index]
            if p.size and f.type != "attachment":
                f.payloads.append(_normalise(bytes(p), f.codec))
                f.times.append(None if p.pts is None else round(float(p.pts * p.time_base), 3))
    return facts


def video_frames(path, index: int = 0) -> list[av.VideoFrame]:
    with av.open(str(path)) as c:
        return list(c.decode(c.streams[index]))


@pytest.fixture(scope="module")
def carriers(tmp_path_factory):
    root = tmp_path_factory.mktemp("carriers")
    made = {}

    def get(kind: str):
        if kind not in made:
            made[kind] = (make_data_carrier(root / "data.ts") if kind == "data" else make_carrier(root / f"{kind}.mkv", kind))
        return made[kind]

    return get


def _warning_for(warnings: list[str], index: int) -> str | None:
    named = [w for w in warnings if f"stream #{index} (" in w]
    assert len(named) <= 1, named
    return named[0] if named else None


def _same_payloads(a: StreamFacts, b: StreamFacts) -> bool:
    times_match = a.cover or a.type == "attachment" or a.times == b.times
    return a.type == b.type and a.codec == b.codec and a.payloads == b.payloads and times_match


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_stream_is_accounted_for(cli, carriers, tmp_path, kind, container):
    src = carriers(kind)
    dst = tmp_path / f"out.{container}"
    r = cli(src, "-o", dst, "--model", "lanczos", "--quiet")
    assert r.code == 0, r.err
    assert "Traceback" not in r.err
    warnings = [line for line in r.err.splitlines() if line.startswith("vidsr: warning:")]
    before, after = streams_of(src), streams_of(dst)
    unused = [s for s in after if s.index != 0]
    for s in before[1:]:
        said = _warning_for(warnings, s.index)
        if said is None:  # carried: an output stream with the same payloads (and timestamps)
            match = next((o for o in unused if _same_payloads(s, o) and o.cover == s.cover and o.name == s.name), None)
            assert match is not None, f"stream #{s.index} ({s.type}, {s.codec}) was neither carried nor named in a warning"
            if s.type in ("audio", "subtitle") or container in ("mkv", "mp4"):
                assert match.language == s.language, f"stream #{s.index} lost its language tag"
            if s.type == "video" and not s.cover:  # the second video, whose first packets have no dts
                assert len(video_frames(dst, match.index)) == len(video_frames(src, s.index))
            unused.remove(match)
        elif "left out" in said:
            if s.type == "attachment" or s.cover:
                assert repr(s.name or "cover.jpg") in said, said  # named by its file name
        else:  # converted: a new stream of the same type, in the codec the warning names, same language
            target = said.rsplit(" ", 1)[-1]
            match = next((o for o in unused if o.type == s.type and o.codec == av.Codec(target, "w").canonical_name
                          and o.language == s.language and o.payloads), None)
            assert match is not None, f"{said!r}, but no such stream in the output"
            unused.remove(match)
    assert not unused, f"output streams from nowhere: {unused}"
    _check_main_video(src, dst, warnings)


def same_hdr(got: HdrMetadata | None, want: HdrMetadata) -> bool:
    """Equal up to each format's precision (AV1 stores chromaticities in 1/65536)."""
    if got is None or (got.max_cll, got.max_fall) != (want.max_cll, want.max_fall):
        return False
    points = zip(got.primaries + (got.white_point,), want.primaries + (want.white_point,))
    close = all(abs(gx - wx) < Fraction(1, 10000) and abs(gy - wy) < Fraction(1, 10000) for (gx, gy), (wx, wy) in points)
    return close and abs(got.luminance[1] - want.luminance[1]) < 1 and abs(got.luminance[0] - want.luminance[0]) < Fraction(1, 1000)


def _bits(frame) -> int:
    return max(c.bits for c in frame.format.components)


def _check_main_video(src, dst, warnings):
    a, b = video_frames(src), video_frames(dst)
    assert len(b) == len(a)
    assert [round(float(f.pts * f.time_base), 3) for f in b] == [round(float(f.pts * f.time_base), 3) for f in a]
    # the encoder chose its own GOP: not every frame a keyframe, even from an intra-only source
    assert sum(f.key_frame for f in b) == 1
    # a matrix the source leaves unnamed comes out named: the one its size implies
    space = a[0].colorspace if a[0].colorspace not in (0, 2) else implied_matrix(a[0].height)
    assert (b[0].colorspace, b[0].color_primaries, b[0].color_trc) == (space, a[0].color_primaries, a[0].color_trc)
    # an unspecified range may come out as limited, what players assume for it
    assert b[0].color_range == a[0].color_range or (a[0].color_range, b[0].color_range) == (0, 1)
    assert _bits(b[0]) == _bits(a[0]) or any("cannot encode" in w for w in warnings)
    hdr = HdrMetadata.from_frame(a[0])
    if hdr is not None:
        assert same_hdr(HdrMetadata.from_frame(b[0]), hdr) or any("HDR10" in w for w in warnings)


def test_second_video_without_dts_keeps_its_keyframe(carriers, tmp_path):
    """The matrix's second video is H.264 with B-frames in Matroska: the demuxer gives its first
    packets, keyframe included, no decode timestamp. They must all be carried."""
    src = carriers("8bit")
    with av.open(str(src)) as c:
        first = [p for p in c.demux(c.streams[1]) if p.size][:2]
    assert first[0].is_keyframe and all(p.dts is None for p in first)  # the case the matrix covers


def test_aac_in_ts_is_copied_and_timestamps_stay(cli, carriers, tmp_path):
    dst = tmp_path / "o.ts"
    r = cli(carriers("8bit"), "-o", dst, "--model", "lanczos", "--quiet")
    assert r.code == 0, r.err
    assert "transcoding" not in r.err
    with av.open(str(dst)) as c:
        assert [s.codec_context.name for s in c.streams.audio] == ["aac", "opus"]
        assert c.streams.video[0].start_time * c.streams.video[0].time_base == 0  # not shifted by the encoder delay


def test_converted_subtitles_keep_language(cli, carriers, tmp_path):
    dst = tmp_path / "o.mp4"
    assert cli(carriers("8bit"), "-o", dst, "--model", "lanczos", "--quiet").code == 0
    with av.open(str(dst)) as c:
        subs = [(s.codec_context.name, s.metadata.get("language")) for s in c.streams.subtitles]
    assert subs == [("mov_text", "ger"), ("mov_text", "spa")]


def test_cover_art_from_mp4_becomes_a_matroska_attachment(cli, carriers, tmp_path):
    """MP4 keeps cover art as a picture stream, Matroska as an attachment: the picture's bytes
    survive both ways."""
    mp4, mkv = tmp_path / "a.mp4", tmp_path / "b.mkv"
    assert cli(carriers("8bit"), "-o", mp4, "--model", "lanczos", "--quiet").code == 0
    r = cli(mp4, "-o", mkv, "--model", "lanczos", "--quiet")
    assert r.code == 0, r.err
    covers = [[s.payloads for s in streams_of(p) if s.cover] for p in (carriers("8bit"), mp4, mkv)]
    assert covers[0] == covers[1] == covers[2] and len(covers[0]) == 1
    with av.open(str(mkv)) as c:
        cover = next(s for s in c.streams.video if s.disposition & ATTACHED_PIC)
        assert cover.metadata.get("mimetype") == "image/jpeg"


def test_hlg_and_pq_signalling_survive_x264_and_x265(cli, tmp_path):
    from .media import Spec, make_video

    for transfer in (16, 18):  # PQ, HLG
        src = make_video(tmp_path / f"t{transfer}.mkv", Spec(codec="libx265", pix_fmt="yuv420p10le", frames=3, height=64,
                                                            colour=(9, 9, transfer, 1),
                                                            options={"x265-params": "log-level=error"}))
        for codec in ("libx264", "libx265"):
            dst = tmp_path / f"o{transfer}{codec}.mkv"
            assert cli(src, "-o", dst, "--model", "lanczos", "--codec", codec, "--quiet").code == 0
            f = video_frames(dst)[0]
            assert (f.colorspace, f.color_primaries, f.color_trc) == (9, 9, transfer)


@pytest.mark.parametrize("codec", ["libx264", "libx265", "libsvtav1"])
def test_hdr10_metadata_reaches_each_encoder(cli, carriers, tmp_path, codec):
    src = carriers("hdr10")
    dst = tmp_path / f"hdr_{codec}.mkv"
    r = cli(src, "-o", dst, "--model", "lanczos", "--codec", codec, "--quiet")
    assert r.code == 0, r.err
    want = HdrMetadata.from_frame(video_frames(src)[0])
    # the source's values, as media.MASTER_DISPLAY gives them to x265 (xy in 1/50000, cd/m2 in 1/10000)
    assert want.primaries == ((Fraction(34000, 50000), Fraction(16000, 50000)), (Fraction(13250, 50000), Fraction(34500, 50000)),
                              (Fraction(7500, 50000), Fraction(3000, 50000)))
    assert want.white_point == (Fraction(15635, 50000), Fraction(16450, 50000))
    assert want.luminance == (Fraction(50, 10000), Fraction(1000)) and (want.max_cll, want.max_fall) == MAX_CLL
    assert same_hdr(HdrMetadata.from_frame(video_frames(dst)[0]), want)


def test_frames_with_a_named_icc_profile_do_not_crash_the_run(tmp_path):
    """Reading the first frame's side data (for HDR10 metadata) must not touch an ICC profile entry
    with metadata: PyAV frees that metadata twice and the process dies (run apart, so it cannot take
    the test session with it)."""
    from .conftest import run_vidsr
    from .media import make_icc_video

    src = make_icc_video(tmp_path / "icc.mov")
    r = run_vidsr(src, "-o", tmp_path / "out.mkv", "--model", "lanczos", "--quiet")
    assert r.returncode == 0, r.stderr
    assert len(video_frames(tmp_path / "out.mkv")) == 3


def test_audio_converted_to_a_codec_with_fixed_rates_is_resampled(cli, tmp_path):
    """AAC at 44.1 kHz into WebM: Opus takes 48 kHz but not 44.1."""
    from .media import Spec, make_video

    src = make_video(tmp_path / "cd.mp4", Spec(audio="aac", audio_rate=44100))
    dst = tmp_path / "out.webm"
    r = cli(src, "-o", dst, "--model", "lanczos", "--quiet")
    assert r.code == 0, r.err
    with av.open(str(dst)) as c:
        audio = c.streams.audio[0]
        assert (audio.codec_context.name, audio.codec_context.sample_rate) == ("opus", 48000)
        assert sum(f.samples for f in c.decode(audio)) / 48000 > 0.5  # the whole tone, not a stub


def _small_clip(path, frames=6, width=64, height=48, timecode=None, pcm=False, rgb=False, chapters=False):
    """A tiny clip: H.264 (or RGB in PNG), optionally with a QuickTime timecode, PCM audio or two
    chapters ("Intro" at 0, "Rest" at 0.12 s)."""
    import numpy as np

    out = av.open(str(path), "w")
    if chapters:
        out.set_chapters([{"id": 1, "start": 0, "end": 3, "time_base": Fraction(1, 25), "metadata": {"title": "Intro"}},
                          {"id": 2, "start": 3, "end": frames, "time_base": Fraction(1, 25), "metadata": {"title": "Rest"}}])
    v = out.add_stream("png" if rgb else "libx264", rate=25)
    v.width, v.height, v.pix_fmt = width, height, "rgb24" if rgb else "yuv420p"
    if timecode:
        v.metadata["timecode"] = timecode
    a = out.add_stream("pcm_s16le", rate=48000, layout="stereo") if pcm else None
    for i in range(frames):
        f = av.VideoFrame.from_ndarray(np.full((height, width, 3), (200, 40 + 20 * i, 60), np.uint8), format="rgb24")
        f.pts = i
        for p in v.encode(f):
            out.mux(p)
    for p in v.encode():
        out.mux(p)
    if a is not None:
        samples = np.zeros((1, 2 * 48000 * frames // 25), np.int16)  # packed stereo
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
        frame.sample_rate, frame.pts = 48000, 0
        for p in a.encode(frame):
            out.mux(p)
        for p in a.encode():
            out.mux(p)
    out.close()
    return path


@pytest.mark.parametrize("container", ["mp4", "mov", "mkv"])
def test_a_timecode_track_is_kept_as_the_videos_timecode(cli, tmp_path, container):
    """Cameras write a QuickTime timecode track, a data stream with no codec FFmpeg names."""
    src = _small_clip(tmp_path / "camera.mov", timecode="01:00:00:00")
    with av.open(str(src)) as c:
        assert any(s.type == "data" for s in c.streams)  # the muxer wrote the track
    dst = tmp_path / f"out.{container}"
    r = cli(src, "-o", dst, "--model", "lanczos")
    assert r.code == 0, r.err
    assert "warning" not in r.err
    with av.open(str(dst)) as c:
        tags = {k.lower(): v for k, v in c.streams.video[0].metadata.items()}
        assert tags.get("timecode") == "01:00:00:00"
        if container != "mkv":  # MP4 and MOV write a timecode track again
            assert any(s.type == "data" and s.metadata.get("timecode") == "01:00:00:00" for s in c.streams)


def test_pcm_audio_goes_to_a_container_that_holds_it_or_is_converted(cli, tmp_path):
    """PCM with no channel order: MP4 refuses it only when it writes its index, so the default
    output is Matroska, and an MP4 asked for gets the audio converted, every sample of it."""
    src = _small_clip(tmp_path / "pcm.mkv", frames=10, pcm=True)
    with av.open(str(src)) as c:
        want = sum(f.samples for f in c.decode(audio=0))
    r = cli(src, "--model", "lanczos")
    assert r.code == 0, r.err
    with av.open(str(tmp_path / "pcm_x2.mkv")) as c:
        assert c.streams.audio[0].codec_context.name == "pcm_s16le"
    dst = tmp_path / "out.mp4"
    r = cli(src, "-o", dst, "--model", "lanczos")
    assert r.code == 0, r.err
    assert "transcoding to aac" in r.err
    with av.open(str(dst)) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
        assert abs(sum(f.samples for f in c.decode(audio=0)) - want) <= 1024  # one AAC frame of padding


@pytest.mark.parametrize(("height", "matrix"), [(48, 6), (720, 1)])
def test_an_rgb_source_names_the_matrix_it_was_converted_with(cli, tmp_path, height, matrix):
    """RGB becomes YUV with the matrix its size implies (BT.601 below 720 lines, BT.709 from
    there); the output names it, so a player at the upscaled size does not assume the other."""
    src = _small_clip(tmp_path / "rgb.mov", frames=2, width=64 if height == 48 else 1280, height=height, rgb=True)
    dst = tmp_path / "out.mp4"
    r = cli(src, "-o", dst, "--model", "bicubic")
    assert r.code == 0, r.err
    with av.open(str(dst)) as c:
        frame = next(c.decode(video=0))
        assert frame.colorspace == matrix
        r_, g, b = frame.to_ndarray(format="rgb24")[frame.height // 2, frame.width // 2]
        assert abs(int(r_) - 200) <= 3 and abs(int(g) - 40) <= 3 and abs(int(b) - 60) <= 3


def test_file_tags_are_not_carried_twice(cli, tmp_path):
    """MP4 brands describe the file, not its content: a delivery file (MP4 storing its tags) made
    from a delivery file must not pile them up."""
    src = _small_clip(tmp_path / "a.mp4", width=128, height=96)
    first, second = tmp_path / "b.mp4", tmp_path / "c.mp4"
    assert cli("downscale", src, "-o", first).code == 0
    assert cli("downscale", first, "-o", second).code == 0
    with av.open(str(second)) as c:
        assert ";" not in c.metadata.get("major_brand", "")


@pytest.mark.parametrize("source", ["mkv", "mp4"])
def test_chapters_are_carried(cli, tmp_path, source):
    """Chapters survive into every container that holds them (from MP4, whose chapter titles sit in
    a text track FFmpeg shows as a data stream, with no warning about that stream); MPEG-TS says
    it leaves them out."""
    src = _small_clip(tmp_path / f"chapters.{source}", chapters=True)
    for container in ("mp4", "mkv", "mov"):
        dst = tmp_path / f"out.{container}"
        r = cli(src, "-o", dst, "--model", "lanczos")
        assert r.code == 0, r.err
        assert "warning" not in r.err
        with av.open(str(dst)) as c:
            got = [(ch["metadata"]["title"], round(float(ch["start"] * ch["time_base"]), 3)) for ch in c.chapters()]
        assert got == [("Intro", 0.0), ("Rest", 0.12)]
    r = cli(src, "-o", tmp_path / "out.ts", "--model", "lanczos")
    assert r.code == 0 and "2 chapters: mpegts cannot hold them" in r.err


@pytest.mark.parametrize("alpha", [128, 255])
def test_an_alpha_channel_that_cannot_be_carried_is_named_where_it_is_used(cli, tmp_path, alpha):
    # a translucent picture is named (from its first translucent frame); an opaque one in a format
    # with alpha loses nothing and is not
    import numpy as np

    src = tmp_path / "alpha.mov"
    with av.open(str(src), "w") as out:
        v = out.add_stream("png", rate=25)
        v.width, v.height, v.pix_fmt = 32, 32, "rgba"
        for i in range(3):
            picture = np.full((32, 32, 4), 128, np.uint8)
            picture[..., 3] = alpha if i == 2 else 255
            f = av.VideoFrame.from_ndarray(picture, format="rgba")
            f.pts = i
            out.mux(v.encode(f))
        out.mux(v.encode())
    r = cli(src, "-o", tmp_path / "out.mkv", "--model", "lanczos")
    assert r.code == 0, r.err
    if alpha < 255:
        assert ("alpha channel (rgba) is not carried: the output is opaque "
                "(the first translucent frame is at 0.080 s)") in r.err
    else:
        assert "is not carried" not in r.err, r.err


def test_an_opaque_gif_is_not_said_to_lose_alpha(cli, tmp_path):
    # FFmpeg decodes every GIF as bgra, transparency or not
    import numpy as np

    src = tmp_path / "opaque.gif"
    with av.open(str(src), "w") as out:
        v = out.add_stream("gif", rate=10)
        v.width, v.height, v.pix_fmt = 32, 32, "rgb8"
        for i in range(3):
            picture = np.full((32, 32, 3), 60 * i, np.uint8)
            f = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="rgb8")
            f.pts = i
            out.mux(v.encode(f))
        out.mux(v.encode())
    with av.open(str(src)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "bgra"  # what the warning used to go by
    r = cli(src, "-o", tmp_path / "out.mkv", "--model", "lanczos")
    assert r.code == 0 and "is not carried" not in r.err, r.err


@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_track_titles_from_mp4_survive(cli, tmp_path, container):
    """MP4 gives a track's title back as ``name``; written again it must be the ``title``."""
    from .media import Spec, make_video

    src = make_video(tmp_path / "titled.mp4", Spec(audio="aac", frames=4))
    titled = tmp_path / "titled2.mp4"
    with av.open(str(src)) as c, av.open(str(titled), "w") as out:
        pairs = []
        for s in c.streams:
            o = out.add_stream_from_template(s)
            o.metadata["title"] = f"{s.type} track"
            pairs.append((s, o))
        for p in c.demux():
            if p.dts is not None:
                p.stream = dict((a.index, b) for a, b in pairs)[p.stream.index]
                out.mux(p)
    dst = tmp_path / f"out.{container}"
    r = cli(titled, "-o", dst, "--model", "lanczos")
    assert r.code == 0, r.err
    with av.open(str(dst)) as c:
        titles = {s.type: s.metadata.get("title") or s.metadata.get("name") for s in c.streams}
    assert titles == {"video": "video track", "audio": "audio track"}



@pytest.mark.parametrize("audio,subtitle,want,warned", [("fre", "deu", ("fra", "ger"), None),
                                                         ("swe", "eng", (None, "eng"), "'swe'")])
def test_mov_keeps_a_language_under_its_other_code_and_names_one_it_cannot_keep(cli, tmp_path, audio, subtitle,
                                                                               want, warned):
    """FFmpeg's MOV muxer keeps only QuickTime's own language list ("fra" but "ger", no "swe") and
    drops the rest without a word; MP4 keeps any code as it is."""
    from .media import Spec, make_video

    src = make_video(tmp_path / "src.mkv", Spec(frames=3, audio="aac", subtitles="subrip",
                                                languages={"audio": audio, "subtitle": subtitle}))
    for container, expect in (("mov", want), ("mp4", (audio, subtitle))):
        dst = tmp_path / f"o.{container}"
        r = cli(src, "-o", dst, "--model", "lanczos")
        assert r.code == 0, r.err
        with av.open(str(dst)) as c:
            got = tuple(next(s for s in c.streams if s.type == t).metadata.get("language") for t in ("audio", "subtitle"))
        assert got == expect
        said = [line for line in r.err.splitlines() if "cannot store its language" in line]
        assert len(said) == (1 if warned and container == "mov" else 0), said
        if said:
            assert warned in said[0] and "audio" in said[0]
