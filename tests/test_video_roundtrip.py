"""What must survive a trip through ``vidsr``: every frame, its timestamp, the other streams byte
for byte, colour metadata, rotation, bit depth and odd sizes."""

from __future__ import annotations

import av
import numpy as np
import pytest

from .conftest import no_partial_files
from .media import make_size_change, make_trimmed, packets, video_frames


def seconds(frames):
    return [round(float(f.pts * f.time_base), 6) for f in frames]


@pytest.mark.parametrize("name,scale", [("cfr.mp4", 2), ("vfr.mkv", 3), ("cfr.mp4", 4)])
def test_every_frame_and_timestamp_survive(cli, media, tmp_path, name, scale):
    src = media[name]
    dst = tmp_path / f"out{src.suffix}"
    r = cli(src, "-o", dst, "--scale", scale, "--model", "lanczos", "--quiet")
    assert r.code == 0, r.err
    a, b = video_frames(src), video_frames(dst)
    assert len(b) == len(a)
    assert seconds(b) == seconds(a)
    assert (b[0].width, b[0].height) == (a[0].width * scale, a[0].height * scale)


def test_vfr_stays_vfr(cli, media, tmp_path):
    dst = tmp_path / "vfr_out.mkv"
    assert cli(media["vfr.mkv"], "-o", dst, "--model", "lanczos", "--quiet").code == 0
    gaps = np.diff(seconds(video_frames(dst)))
    assert len(set(np.round(gaps, 3))) >= 3  # 40 ms, 80 ms and the 200 ms gap are all still there


@pytest.mark.parametrize("suffix", [".mkv", ".webm", ".mp4", ".mov"])
def test_each_frame_keeps_its_duration_the_last_one_too(cli, tmp_path, suffix):
    # an animated GIF holds each picture for its own time, the last one longest, as GIFs often do:
    # encoders drop frame durations, and without them the muxer guessed the last frame's. MP4 and
    # MOV keep no duration per frame (a frame lasts until the next; the last until the track ends)
    from PIL import Image

    pictures = [Image.fromarray(np.full((24, 32, 3), 50 * i, np.uint8)) for i in range(4)]
    pictures[0].save(tmp_path / "in.gif", save_all=True, append_images=pictures[1:], duration=[100, 200, 300, 900])
    dst = tmp_path / f"out{suffix}"
    assert cli(tmp_path / "in.gif", "-o", dst, "--model", "bicubic", "--quiet").code == 0
    frames = video_frames(dst)
    assert seconds(frames) == [0.0, 0.1, 0.3, 0.6]
    if suffix in (".mkv", ".webm"):
        assert [round(float(f.duration * f.time_base), 3) for f in frames] == [0.1, 0.2, 0.3, 0.9]
    with av.open(str(dst)) as c:
        assert c.duration / 1e6 == pytest.approx(1.5, abs=0.002)
        if suffix in (".mp4", ".mov"):  # the track itself, not only the file, lasts until the last frame ends
            video = c.streams.video[0]
            assert float(video.duration * video.time_base) == pytest.approx(1.5, abs=0.002)
    # and the file is whole: its long last frame is not read as a cut (its stated length includes it)
    assert cli(dst, "-o", tmp_path / f"again{suffix}", "--model", "bicubic", "--quiet").code == 0


@pytest.mark.parametrize("name,kinds", [("cfr.mp4", ("audio", "subtitles")), ("vfr.mkv", ("audio", "subtitles"))])
def test_other_streams_copied_packet_for_packet(cli, media, tmp_path, name, kinds):
    src = media[name]
    dst = tmp_path / f"copy{src.suffix}"
    assert cli(src, "-o", dst, "--model", "bicubic", "--quiet").code == 0
    for kind in kinds:
        before, after = packets(src, kind), packets(dst, kind)
        assert before, f"test clip has no {kind}"
        assert after == before, f"{kind} packets changed"


def test_colour_rotation_and_metadata_survive(cli, media, tmp_path):
    dst = tmp_path / "meta.mp4"
    assert cli(media["cfr.mp4"], "-o", dst, "--model", "lanczos", "--quiet").code == 0
    f = video_frames(dst)[0]
    assert f.rotation == 90
    assert (f.colorspace, f.color_primaries, f.color_trc, f.color_range) == (1, 1, 1, 1)


def test_ten_bit_stays_ten_bit_with_hdr_tags(cli, media, tmp_path):
    dst = tmp_path / "ten.mkv"
    assert cli(media["tenbit.mkv"], "-o", dst, "--model", "lanczos", "--codec", "libx265", "--quiet").code == 0
    f = video_frames(dst)[0]
    assert f.format.name == "yuv420p10le"
    assert (f.colorspace, f.color_primaries, f.color_trc) == (9, 9, 16)
    # real 10-bit content, not 8-bit values shifted up
    y = f.to_ndarray()[: f.height]
    assert (y % 4 != 0).any()


def test_ten_bit_into_an_rgb_only_encoder_takes_its_deepest_format_not_its_first(cli, media, tmp_path):
    """Animated PNG takes rgb24 first in its list and rgb48be later: 10-bit video goes to rgb48be."""
    dst = tmp_path / "ten.png"
    r = cli(media["tenbit.mkv"], "-o", dst, "--model", "lanczos")
    assert r.code == 0, r.err
    assert "using rgb48be" in r.err
    f = video_frames(dst)[0]
    assert f.format.name == "rgb48be"
    rgb = f.to_ndarray().astype(np.int64)
    assert ((rgb >> 8) != (rgb & 255)).mean() > 0.1  # more than 8 bits of picture, not 8-bit values spread (x257)


def test_full_range_is_kept_and_not_squeezed(cli, media, tmp_path):
    dst = tmp_path / "full_out.mp4"
    assert cli(media["full.mp4"], "-o", dst, "--model", "lanczos", "--quiet").code == 0
    a, b = video_frames(media["full.mp4"])[0], video_frames(dst)[0]
    assert b.color_range == 2
    ya, yb = a.to_ndarray()[: a.height], b.to_ndarray()[: b.height]
    assert abs(float(yb.mean()) - float(ya.mean())) < 3  # same levels: no limited/full conversion


@pytest.mark.parametrize("scale", [2, 3])
def test_odd_dimensions(cli, media, tmp_path, scale):
    dst = tmp_path / f"odd{scale}.mkv"
    r = cli(media["odd.mkv"], "-o", dst, "--scale", scale, "--model", "bicubic", "--quiet")
    assert r.code == 0, r.err
    frames = video_frames(dst)
    assert (frames[0].width, frames[0].height) == (45 * scale, 31 * scale)
    assert len(frames) == 6


def test_odd_output_with_x264_moves_to_444(cli, media, tmp_path):
    dst = tmp_path / "odd3.mp4"
    r = cli(media["odd.mkv"], "-o", dst, "--scale", 3, "--model", "bicubic", "--codec", "libx264")
    assert r.code == 0, r.err
    assert "4:4:4" in r.err
    f = video_frames(dst)[0]
    assert (f.width, f.height, f.format.name) == (135, 93, "yuv444p")


def test_default_output_name_and_container(cli, media, tmp_path):
    import shutil

    mp4 = shutil.copy(media["cfr.mp4"], tmp_path / "clip.mp4")
    mkv = shutil.copy(media["vfr.mkv"], tmp_path / "talk.mkv")
    assert cli(mp4, "--model", "lanczos", "--quiet").code == 0
    assert (tmp_path / "clip_x2.mp4").exists()
    # subrip cannot go into mp4, so the input's container is kept
    assert cli(mkv, "--model", "lanczos", "--quiet").code == 0
    assert (tmp_path / "talk_x2.mkv").exists() and not (tmp_path / "talk_x2.mp4").exists()
    assert no_partial_files(tmp_path)


def test_forced_mp4_converts_subtitles_with_a_warning(cli, media, tmp_path):
    dst = tmp_path / "forced.mp4"
    r = cli(media["vfr.mkv"], "-o", dst, "--model", "lanczos", "--quiet")
    assert r.code == 0, r.err
    assert "srt" in r.err and "mov_text" in r.err
    with av.open(str(dst)) as c:
        assert [s.codec_context.name for s in c.streams.subtitles] == ["mov_text"]
    texts = [body for _, body in packets(dst, "subtitles")]
    assert any(b"Hello" in t for t in texts) and any(b"World" in t for t in texts)


def test_codecs_and_encoder_options(cli, media, tmp_path):
    dst = tmp_path / "lossless.mkv"
    r = cli(media["cfr.mp4"], "-o", dst, "--model", "lanczos", "--codec", "ffv1", "--quiet")
    assert r.code == 0, r.err
    with av.open(str(dst)) as c:
        assert c.streams.video[0].codec_context.name == "ffv1"
    dst2 = tmp_path / "fast.mp4"
    r = cli(media["cfr.mp4"], "-o", dst2, "--model", "lanczos", "--crf", 30, "--encoder-opt", "preset=ultrafast", "--quiet")
    assert r.code == 0, r.err
    assert len(video_frames(dst2)) == 12


def test_a_second_video_stream_is_carried_untouched(cli, tmp_path):
    """Only the first video stream is upscaled; a second one (a picture-in-picture track, an angle)
    is copied packet for packet."""
    from fractions import Fraction

    src, dst = tmp_path / "two.mkv", tmp_path / "two_x2.mkv"
    with av.open(str(src), "w") as c:
        main, extra = c.add_stream("libx264", rate=24), c.add_stream("mjpeg", rate=24)
        main.width, main.height, main.pix_fmt = 64, 48, "yuv420p"
        extra.width, extra.height, extra.pix_fmt = 32, 32, "yuvj420p"
        rng = np.random.default_rng(0)
        for i in range(6):
            for st in (main, extra):
                f = av.VideoFrame.from_ndarray(rng.integers(0, 255, (st.height, st.width, 3), dtype=np.uint8), format="rgb24")
                f = f.reformat(format=st.pix_fmt)
                f.pts, f.time_base = i, Fraction(1, 24)
                for p in st.encode(f):
                    c.mux(p)
        for st in (main, extra):
            for p in st.encode():
                c.mux(p)
    r = cli(src, "-o", dst, "--model", "bicubic", "--quiet")
    assert r.code == 0, r.err

    def mjpeg_packets(path):
        with av.open(str(path)) as c:
            st = next(s for s in c.streams.video if s.codec_context.name == "mjpeg")
            return [bytes(p) for p in c.demux(st) if p.size]

    with av.open(str(dst)) as c:
        sizes = sorted((s.codec_context.width, s.codec_context.height) for s in c.streams.video)
    assert sizes == [(32, 32), (128, 96)]
    assert len(video_frames(dst)) == 6
    assert mjpeg_packets(dst) == mjpeg_packets(src) and len(mjpeg_packets(src)) == 6


def test_webm_without_a_codec_gets_one_that_fits(cli, media, tmp_path):
    dst = tmp_path / "out.webm"
    r = cli(media["cfr.mp4"], "-o", dst, "--model", "lanczos", "--quiet")
    assert r.code == 0, r.err
    assert "webm cannot hold libx264; encoding with libvpx-vp9" in r.err
    with av.open(str(dst)) as c:
        assert c.streams.video[0].codec_context.name == "vp9"
    assert len(video_frames(dst)) == 12


def test_archive_preset_default_name_is_mkv(cli, media, tmp_path):
    import shutil

    src = shutil.copy(media["full.mp4"], tmp_path / "clip.mp4")
    r = cli(src, "--preset", "archive", "--model", "lanczos", "--quiet")
    assert r.code == 0, r.err
    assert (tmp_path / "clip_x2.mkv").exists() and not (tmp_path / "clip_x2.mp4").exists()
    with av.open(str(tmp_path / "clip_x2.mkv")) as c:
        assert c.streams.video[0].codec_context.name == "ffv1"


@pytest.mark.parametrize("codec,suffix", [("qtrle", ".mov"), ("gif", ".gif")])
def test_an_rgb_encoder_gets_the_network_picture(cli, media, tmp_path, codec, suffix):
    # the engine writes luma into a YUV frame; an encoder that takes only RGB (or a palette) gets
    # that frame converted, not the upscaled luma written over its packed samples
    src = media["odd.mkv"]
    ref, out = tmp_path / "ref.mkv", tmp_path / f"rgb{suffix}"
    assert cli(src, "-o", ref, "--model", "arm-espcn", "--codec", "ffv1", "--pix-fmt", "yuv444p", "--quiet").code == 0
    r = cli(src, "-o", out, "--model", "arm-espcn", "--codec", codec, "--quiet")
    assert r.code == 0, r.err
    a, b = video_frames(ref), video_frames(out)
    assert len(a) == len(b)
    want, got = (f.to_ndarray(format="rgb24").astype(float) for f in (a[2], b[2]))
    if codec == "gif":  # 256 colours of the frame's own palette, dithered: per pixel within about 7 levels
        assert np.abs(want - got).mean() < 10  # (a fixed 3-3-2 palette: 17.6)
        # and as the eye averages it, over 4x4 blocks
        want, got = (x[:60, :88].reshape(15, 4, 22, 4, 3).mean((1, 3)) for x in (want, got))
    assert np.abs(want - got).mean() < (8 if codec == "gif" else 3)


@pytest.mark.parametrize("suffix,format_name", [(".mpg", "mpeg"), (".m2ts", "mpegts"), (".y4m", "yuv4mpegpipe")])
def test_common_suffixes_name_their_containers(cli, media, tmp_path, suffix, format_name):
    dst = tmp_path / f"out{suffix}"
    r = cli(media["odd.mkv"], "-o", dst, "--model", "bicubic", "--quiet")
    assert r.code == 0, r.err
    with av.open(str(dst)) as c:
        assert c.format.name == format_name
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    assert len(times) == 6 and np.allclose(np.diff(times), 1 / 25)  # the frame rate, not the time base's


def test_mpeg2_takes_the_frame_rate_as_its_time_base(cli, media, tmp_path):
    # MPEG-2 takes only its standard frame rates: given MP4's 1/12800 it refused every MP4 source
    dst = tmp_path / "out.ts"
    r = cli(media["cfr.mp4"], "-o", dst, "--model", "bicubic", "--codec", "mpeg2video", "--quiet")
    assert r.code == 0, r.err
    assert seconds(video_frames(dst)) == seconds(video_frames(media["cfr.mp4"]))


def test_a_varying_frame_rate_into_a_constant_rate_container_is_refused(cli, media, tmp_path):
    from fractions import Fraction

    src = tmp_path / "vfr.mkv"  # frames 40 ms apart, but one 20 ms after the one before
    with av.open(str(src), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt, s.time_base = 32, 24, "yuv420p", Fraction(1, 1000)
        s.codec_context.time_base = s.time_base  # else the encoder rounds each time to 1/25 s
        for pts in (0, 40, 60, 100, 140):
            f = av.VideoFrame(32, 24, "yuv420p")
            f.pts, f.time_base = pts, s.time_base
            c.mux(s.encode(f))
        c.mux(s.encode())
    dst = tmp_path / "out.avi"
    r = cli(src, "-o", dst, "--model", "bicubic")
    assert r.code == 2 and "input frame 2 at 0.060 s is off it" in r.err and "write .mkv or .mp4" in r.err, r.err
    assert not dst.exists() and no_partial_files(tmp_path)
    # a constant rate is fine, gaps of whole frames too (the muxer fills them with empty chunks,
    # which the header counts as frames and the demuxer skips: the file reads back whole, gaps kept)
    assert cli(media["vfr.mkv"], "-o", dst, "--model", "bicubic", "--quiet").code == 0
    back = tmp_path / "back.mkv"
    r = cli(dst, "-o", back, "--model", "bicubic", "--quiet")
    assert r.code == 0, r.err
    assert seconds(video_frames(back)) == seconds(video_frames(media["vfr.mkv"]))


def test_an_avi_with_b_frames_keeps_each_picture_at_its_time(cli, tmp_path):
    # AVI keeps decode order only: the demuxer's times are guesses made in that order, so x264's
    # B-frames came back carrying their neighbours' times (refused as out of order, or one late)
    src = tmp_path / "in.avi"
    with av.open(str(src), "w") as c:
        s = c.add_stream("libx264", rate=25, options={"bframes": "3", "crf": "10"})
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("mp3", rate=44100, layout="mono")
        for i in range(20):  # picture i is flat at level 20 + 10 i
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 + 10 * i, np.uint8), "rgb24")
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode())
        tone = av.AudioFrame.from_ndarray(np.zeros((1, 1152), np.float32), format="fltp", layout="mono")
        tone.sample_rate, tone.pts = 44100, 0
        c.mux(a.encode(tone))
        c.mux(a.encode())
    with av.open(str(src)) as c:  # what the demuxer alone gives: the pictures' times out of order
        raw = [f.pts for f in c.decode(video=0)]
    assert raw != sorted(raw)
    for suffix in (".mkv", ".mp4"):
        dst = tmp_path / f"out{suffix}"
        r = cli(src, "-o", dst, "--model", "bicubic", "--quiet")
        assert r.code == 0, r.err
        frames = video_frames(dst)
        assert seconds(frames) == [round(0.04 * i, 6) for i in range(20)]
        levels = [f.to_ndarray(format="gray").mean() for f in frames]
        assert np.allclose(levels, [20 + 10 * i for i in range(20)], atol=4), levels  # each at its own time


def _avi_flash_and_click(path):
    """(index of the white frame, seconds of the first loud sample from the audio's start) of an
    AVI: its frame k is at k / rate, and its audio plays from its first frame (the demuxer's own
    video times are guesses, see vidsr.io.source)."""
    with av.open(str(path)) as c:
        flash = [f.to_ndarray(format="gray").mean() > 150 for f in c.decode(video=0)].index(True)
    with av.open(str(path)) as c:
        rate = c.streams.audio[0].sample_rate
        samples = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    return flash, float(np.argmax(np.abs(samples) > 0.3) / rate)


@pytest.mark.parametrize("video_start,audio_start", [(0.0, 0.4), (0.4, 0.0)])
def test_audio_that_starts_apart_from_the_video_keeps_its_place_in_an_avi(cli, tmp_path, video_start, audio_start):
    # AVI plays audio from the video's first frame, by byte count: audio starting 0.4 s after the
    # video played 0.4 s early, audio starting before it played late
    from fractions import Fraction

    src = tmp_path / "apart.mkv"
    with av.open(str(src), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=48000, layout="mono")
        for i in range(round(video_start * 25), 40):  # a white flash at 0.8 s
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 255 if i == 20 else 30, np.uint8), "rgb24")
            f.pts, f.time_base = i, Fraction(1, 25)
            c.mux(v.encode(f))
        c.mux(v.encode())
        first = round(audio_start * 48000)
        sound = np.zeros(76800 - first, np.float32)
        sound[38400 - first: 38700 - first] = 0.8  # a click at 0.8 s
        for k in range(0, len(sound), 1024):
            f = av.AudioFrame.from_ndarray(sound[None, k:k + 1024].copy(), format="fltp", layout="mono")
            f.sample_rate, f.pts, f.time_base = 48000, first + k, Fraction(1, 48000)
            c.mux(a.encode(f))
        c.mux(a.encode())
    dst = tmp_path / "out.avi"
    r = cli(src, "-o", dst, "--model", "bicubic")
    assert r.code == 0, r.err
    assert f"starts 0.400 s {'after' if audio_start > video_start else 'before'} it" in r.err, r.err
    flash, click = _avi_flash_and_click(dst)
    assert flash / 25 == pytest.approx(0.8 - video_start)  # an AVI's frame k is at k / rate
    assert click == pytest.approx(flash / 25, abs=0.005)


@pytest.mark.parametrize("keyframe_at_cut", [False, True])
def test_frames_an_edit_list_hides_stay_hidden_and_the_rest_are_all_there(cli, tmp_path, keyframe_at_cut):
    # an MP4 cut without re-encoding keeps the frames before the cut: those the shown ones refer to
    # are read and give no picture by design, the others are left out though the header counts
    # them (either was refused as damaged)
    src = make_trimmed(tmp_path / "trimmed.mp4", hidden=5, shown=20, keyframe_at_cut=keyframe_at_cut)
    with av.open(str(src)) as c:
        assert c.streams.video[0].frames == 25
        assert sum(p.is_discard for p in c.demux(video=0)) == (0 if keyframe_at_cut else 5)
    assert len(video_frames(src)) == 20
    dst = tmp_path / "out.mp4"
    r = cli(src, "-o", dst, "--model", "bicubic", "--quiet")
    assert r.code == 0, r.err
    frames = video_frames(dst)
    assert seconds(frames) == [round(0.04 * i, 6) for i in range(20)]
    assert np.allclose([f.to_ndarray(format="gray").mean() for f in frames], [100 + i for i in range(20)], atol=3)


def test_audio_an_edit_list_hides_stays_hidden_in_an_avi(cli, tmp_path):
    # an MP4 cut without re-encoding keeps 0.2 s of audio before the cut, hidden by its edit list;
    # AVI has no timestamps to hide it, so copied as it was it played and put the audio 0.2 s late
    from fractions import Fraction

    src = tmp_path / "cut.mp4"
    with av.open(str(src), "w") as c:
        v = c.add_stream("libx264", rate=25, options={"sc_threshold": "0"})
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=48000, layout="mono")
        for i in range(-5, 40):  # shown from 0; a white flash at 0.8 s
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 255 if i == 20 else 30, np.uint8), "rgb24")
            f.pts, f.time_base = i, Fraction(1, 25)
            c.mux(v.encode(f))
        c.mux(v.encode())
        sound = np.zeros(86400, np.float32)  # from -0.2 s; a click at 0.8 s
        sound[48000:48300] = 0.8
        for k in range(0, len(sound), 1024):
            f = av.AudioFrame.from_ndarray(sound[None, k:k + 1024].copy(), format="fltp", layout="mono")
            f.sample_rate, f.pts, f.time_base = 48000, k - 9600, Fraction(1, 48000)
            c.mux(a.encode(f))
        c.mux(a.encode())
    with av.open(str(src)) as c:
        assert sum(p.is_discard for p in c.demux(audio=0)) >= 5
    dst = tmp_path / "out.avi"
    r = cli(src, "-o", dst, "--model", "bicubic", "--quiet")
    assert r.code == 0, r.err
    flash, click = _avi_flash_and_click(dst)
    assert flash == 20
    assert click == pytest.approx(0.8, abs=0.012)


@pytest.mark.parametrize("codec,suffix", [("mpeg2video", ".mkv"), ("mpeg4", ".mp4"), ("mpeg2video", ".ts")])
def test_an_encoder_timed_in_whole_frames_keeps_frames_that_sit_off_the_grid(cli, tmp_path, codec, suffix):
    # MPEG-1/2/4 Part 2 encoders count time in frames: frames 20 ms off the 25 fps grid (an
    # MPEG-TS's start, say) were each rounded half a frame later
    from fractions import Fraction

    src = tmp_path / "off.mkv"
    with av.open(str(src), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt, s.time_base = 64, 48, "yuv420p", Fraction(1, 1000)
        s.codec_context.time_base = s.time_base
        for i in range(10):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 30 + 10 * i, np.uint8), "rgb24")
            f.pts, f.time_base = 20 + 40 * i, s.time_base
            c.mux(s.encode(f))
        c.mux(s.encode())
    dst = tmp_path / f"out{suffix}"
    r = cli(src, "-o", dst, "--codec", codec, "--model", "bicubic", "--quiet")
    assert r.code == 0, r.err
    assert seconds(video_frames(dst)) == seconds(video_frames(src)) == [round(0.02 + 0.04 * i, 6) for i in range(10)]


def wrapped_ts(path, frames: int = 50, video_at: int = -45000, audio_at: int = -45000):
    """An MPEG-TS captured across its 33-bit clock's wrap: FFmpeg reads its first half second at
    negative times (``video_at``, ``audio_at``: each stream's start, in 90 kHz ticks). Video at 25 fps (frame i flat at level 30 + 4 (i mod 25), a white flash at frame 25)
    and AAC audio with a click at the flash's time."""
    from fractions import Fraction

    wrap, tb = 2 ** 33, Fraction(1, 90000)
    with av.open(str(path), "w", options={"mpegts_copyts": "1", "avoid_negative_ts": "disabled"}) as c:
        v = c.add_stream("libx264", rate=25, options={"bf": "0"})
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        v.codec_context.time_base = v.time_base = tb
        a = c.add_stream("aac", rate=48000, layout="mono")
        for i in range(frames):
            level = 255 if i == 25 else 30 + 4 * (i % 25)
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), level, np.uint8), "rgb24")
            f.pts, f.time_base = wrap + video_at + 3600 * i, tb
            c.mux(v.encode(f))
        c.mux(v.encode())
        sound = np.zeros(frames * 1920, np.float32)
        click = 48000 + (video_at - audio_at) * 48000 // 90000  # 1 s after the first frame: the flash's time
        sound[click:click + 300] = 0.8
        for k in range(0, len(sound), 1024):
            f = av.AudioFrame.from_ndarray(sound[None, k:k + 1024].copy(), format="fltp", layout="mono")
            f.sample_rate, f.time_base, f.pts = 48000, Fraction(1, 48000), (wrap + audio_at) * 48000 // 90000 + k
            c.mux(a.encode(f))
        c.mux(a.encode())
    return path


def _flash_and_click(path):
    with av.open(str(path)) as c:
        flash = next(float(f.time) for f in c.decode(video=0) if f.to_ndarray(format="gray").mean() > 150)
    with av.open(str(path)) as c:
        click = next(float(f.time) + np.argmax(np.abs(f.to_ndarray()[0]) > 0.3) / f.sample_rate
                     for f in c.decode(audio=0) if (np.abs(f.to_ndarray()[0]) > 0.3).any())
    return flash, click


@pytest.mark.parametrize("suffix", [".mp4", ".mov"])
def test_a_source_that_starts_before_zero_keeps_every_frame_in_an_mp4(cli, tmp_path, suffix):
    # MP4's edit list starts at 0 and hides what comes before: the first half second of frames
    # was in the file but never shown
    src = wrapped_ts(tmp_path / "wrapped.ts")
    before = video_frames(src)
    assert float(before[0].time) < -0.4
    dst = tmp_path / f"out{suffix}"
    r = cli(src, "-o", dst, "--model", "bicubic")
    assert r.code == 0, r.err
    assert "before time 0" in r.err
    after = video_frames(dst)
    assert len(after) == len(before) == 50
    lead = float(after[0].time) - float(before[0].time)  # everything moved by one amount
    assert lead > 0.4
    assert [round(float(f.time) - lead, 3) for f in after] == [round(float(f.time), 3) for f in before]
    (flash, click), (flash0, click0) = _flash_and_click(dst), _flash_and_click(src)
    assert click - flash == pytest.approx(click0 - flash0, abs=0.005)  # in sync as the source was


def test_audio_alone_a_little_before_zero_is_left_to_the_mp4_edit_list(cli, tmp_path):
    # an encoder's priming starts audio before 0 and the edit list is right to hide it: the video,
    # which starts at 0, is not moved
    src = wrapped_ts(tmp_path / "primed.ts", frames=30, video_at=0, audio_at=-4500)
    dst = tmp_path / "out.mp4"
    r = cli(src, "-o", dst, "--model", "bicubic")
    assert r.code == 0, r.err
    assert "before time 0" not in r.err
    assert seconds(video_frames(dst)) == seconds(video_frames(src))


def _combing(frames) -> float:
    """How far each line strays from the mean of its neighbours, over the whole clip (luma, 8-bit):
    high where two fields of a moving picture are woven into one frame."""
    y = np.stack([f.to_ndarray(format="gray").astype(float) for f in frames])
    return float(np.abs(y[:, 1:-1] - (y[:, :-2] + y[:, 2:]) / 2).mean())


def test_interlaced_video_is_deinterlaced_frame_for_frame(cli, tmp_path):
    # a bar moving 6 px a field: woven into frames, its edges comb
    src = tmp_path / "interlaced.mp4"
    with av.open(str(src), "w") as c:
        s = c.add_stream("libx264", rate=25, options={"x264-params": "interlaced=1:tff=1", "crf": "4"})
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(8):
            picture = np.full((48, 64, 3), 30, np.uint8)
            for line in range(48):
                x = 6 + 12 * i + 6 * (line % 2)  # the bottom field is half a frame later
                picture[line, x: x + 10] = 220
            f = av.VideoFrame.from_ndarray(picture, "rgb24").reformat(format="yuv420p")
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode())
    before = video_frames(src)
    assert all(f.interlaced_frame for f in before)
    dst = tmp_path / "out.mkv"
    r = cli(src, "-o", dst, "--model", "bicubic")
    assert r.code == 0 and "the video is interlaced: deinterlacing it" in r.err, r.err
    after = video_frames(dst)
    assert seconds(after) == seconds(before)  # one frame per frame, each at its time
    assert not any(f.interlaced_frame for f in after)
    small = [f.reformat(width=64, height=48, interpolation="AREA") for f in after]
    assert _combing(small) < 0.5 * _combing(before)
    # a progressive source is left as it is
    r = cli(tmp_path / "out.mkv", "-o", tmp_path / "again.mkv", "--model", "bicubic")
    assert r.code == 0 and "deinterlacing" not in r.err


def test_an_interlaced_stream_that_changes_size_is_deinterlaced_whole(tmp_path):
    # the deinterlacer is built for the stream's size: one that changes mid-stream gets a new one
    # (the old one held the first part's last frame), so no frame is cut to the first size
    from vidsr.io.deinterlace import deinterlaced

    src = make_size_change(tmp_path / "changes.ts", interlaced=True)
    with av.open(str(src)) as c:
        frames = [f.reformat(format="yuv420p") for f in c.decode(video=0)]
    assert all(f.interlaced_frame for f in frames)
    notes = []
    out = list(deinterlaced(frames, notes.append))
    assert [(f.width, f.height) for f in out] == [(f.width, f.height) for f in frames] == [(48, 32)] * 4 + [(64, 48)] * 4
    assert [f.pts for f in out] == [f.pts for f in frames] and len(notes) == 1


@pytest.mark.parametrize("command", ["upscale", "downscale"])
def test_a_stream_that_changes_size_keeps_every_frame_at_the_first_size(cli, tmp_path, command):
    # frames of the second size are resampled to the first (as ffmpeg does) and said so once: none
    # is dropped, and the output has one size (it failed with a traceback on the first such frame)
    src = make_size_change(tmp_path / "changes.ts")
    before = video_frames(src)
    dst = tmp_path / "out.mkv"
    if command == "upscale":
        r, size = cli(src, "-o", dst, "--model", "bicubic", "--quiet"), (96, 64)
    else:
        r, size = cli("downscale", src, "-o", dst, "--scale", "2", "--quiet"), (24, 16)
    assert r.code == 0, r.err
    assert r.err.count("the video changes size from 48x32 to 64x48 at ") == 1, r.err
    after = video_frames(dst)
    assert seconds(after) == seconds(before)
    assert {(f.width, f.height) for f in after} == {size}
    def quarters(frame):  # mean luma of the outer quarters, away from the edge between the halves
        y = frame.to_ndarray(format="gray").astype(float)
        q = y.shape[1] // 4
        return y[:, :q].mean(), y[:, -q:].mean()

    for b, a in zip(before[4:], after[4:]):  # the second size's pictures, each resampled whole
        assert np.allclose(quarters(b), quarters(a), atol=4), (quarters(b), quarters(a))


def test_animated_webp_keeps_a_bt709_sources_colours(cli, tmp_path):
    # WebP reads any YUV it is given as BT.601: it is given RGB, converted with the source's matrix
    src = tmp_path / "red.mkv"
    with av.open(str(src), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = 32, 24, "yuv420p"  # a format WebP takes as it is
        s.codec_context.colorspace, s.codec_context.color_range = 1, 1  # BT.709, limited
        for i in range(3):
            f = av.VideoFrame.from_ndarray(np.full((24, 32, 3), (200, 40, 40), np.uint8), "rgb24").reformat(
                format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode())
    r = cli(src, "-o", tmp_path / "red.webp", "--model", "bicubic", "--quiet")
    assert r.code == 0, r.err
    from PIL import Image

    with Image.open(tmp_path / "red.webp") as im:  # (identical frames: the encoder may merge them)
        colour = np.asarray(im.convert("RGB"), dtype=float)[8:-8, 8:-8].mean((0, 1))
    assert np.abs(colour - (200, 40, 40)).max() < 4, colour


@pytest.mark.parametrize("fmt", ["yuva420p", "yuva444p10le", "argb", "bgra", "rgba64le", "ya8"])
def test_translucency_is_read_from_the_alpha_of_every_layout(fmt):
    # planar alpha, packed alpha first or last, 8 or more bits: opaque is the format's top value
    from vidsr.io.formats import translucent

    from vidsr.io.formats import bit_depth, plane_view

    top = (1 << bit_depth(fmt)) - 1

    def frame(alpha_of_one_pixel: int) -> av.VideoFrame:
        if av.VideoFormat(fmt).is_planar:  # written plane by plane (swscale's 10-bit alpha is not exact)
            out = av.VideoFrame(18, 16, fmt)
            for i in range(len(out.planes)):
                plane_view(out, i)[:] = top
            plane_view(out, 3)[3, 5] = alpha_of_one_pixel
            return out
        picture = np.full((16, 18, 4), top, np.uint16 if top > 255 else np.uint8)
        picture[3, 5, 3] = alpha_of_one_pixel
        source = "rgba64le" if top > 255 else "rgba"
        return av.VideoFrame.from_ndarray(picture, format=source).reformat(format=fmt)

    assert not translucent(frame(top))
    assert translucent(frame(top // 2))
    assert not translucent(frame(0).reformat(format="yuv420p"))  # no alpha at all
