"""Bad input: one clear line on stderr, a non-zero exit, and no output file (or partial file) left."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from vidsr.io import source

from .conftest import no_partial_files, run_vidsr, vidsr_command
from .media import Spec, make_video


def assert_refused(r, dst: Path | None, *needles: str, code: int = 2):
    assert r.code == code, r.err
    lines = r.error_lines
    assert len(lines) == 1, r.err
    for n in needles:
        assert n in lines[0], lines[0]
    assert "Traceback" not in r.err
    if dst is not None:
        assert not dst.exists()
        assert no_partial_files(dst.parent)


def frames_reported(err: str) -> int:
    """How many frames the "skipped damaged" warnings name ("frame 7", "3 frames (17-19)")."""
    lines = [line for line in err.splitlines() if "skipped damaged" in line]
    return sum(int(line.split("damaged ")[1].split(" frame")[0]) if " frames (" in line else 1 for line in lines)


def noise_clip(path: Path, codec: str, frames: int, rng, options=None, container_options=None) -> Path:
    """A 96x64 clip of random frames at 25 fps (``rng`` draws them, and goes on from there)."""
    with av.open(str(path), "w", options=container_options or {}) as out:
        v = out.add_stream(codec, rate=25, options=options or {})
        v.width, v.height, v.pix_fmt = 96, 64, "yuv420p"
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8), format="rgb24")
            f.pts = i
            out.mux(v.encode(f))
        out.mux(v.encode())
    return path


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """A clean faststart clip, the same cut at 60% (truncated) and with a chunk overwritten."""
    root = tmp_path_factory.mktemp("damaged")
    clean = root / "clean.mp4"
    rng = np.random.default_rng(1)
    noise_clip(clean, "libx264", 30, rng, {"g": "10"}, {"movflags": "faststart"})
    data = clean.read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) * 6 // 10])
    corrupt = bytearray(data)
    mid = len(corrupt) // 2
    corrupt[mid : mid + 3000] = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    (root / "corrupt.mp4").write_bytes(bytes(corrupt))
    # no moov at all: cut a non-faststart file
    plain = make_video(root / "plain.mp4", Spec(frames=30))
    (root / "nomoov.mp4").write_bytes(plain.read_bytes()[:2000])
    return root


def test_missing_file(cli, tmp_path):
    dst = tmp_path / "out.mp4"
    assert_refused(cli(tmp_path / "nope.mp4", "-o", dst), dst, "no such file")


def test_not_a_media_file(cli, tmp_path):
    src = tmp_path / "notes.mp4"
    src.write_text("this is not a video\n" * 50)
    dst = tmp_path / "out.mp4"
    assert_refused(cli(src, "-o", dst), dst, "not a readable media file")


def test_empty_file(cli, tmp_path):
    src = tmp_path / "empty.mp4"
    src.write_bytes(b"")
    assert_refused(cli(src, "-o", tmp_path / "o.mp4"), tmp_path / "o.mp4", "empty")


def test_no_video_stream(cli, tmp_path):
    src = tmp_path / "audio.m4a"
    out = av.open(str(src), "w", format="mp4")
    a = out.add_stream("aac", rate=48000, layout="mono")
    for k in range(10):
        af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        af.sample_rate, af.pts = 48000, k * 1024
        for p in a.encode(af):
            out.mux(p)
    for p in a.encode():
        out.mux(p)
    out.close()
    dst = tmp_path / "out.mp4"
    assert_refused(cli(src, "-o", dst), dst, "no video stream")


def test_truncated_file_fails_with_frame_number(cli, damaged, tmp_path):
    dst = tmp_path / "out.mp4"
    r = cli(damaged / "truncated.mp4", "-o", dst, "--model", "lanczos")
    assert_refused(r, dst, "damaged video at frame")


def test_file_without_index_is_refused(cli, damaged, tmp_path):
    dst = tmp_path / "out.mp4"
    assert_refused(cli(damaged / "nomoov.mp4", "-o", dst), dst, "not a readable media file")


def test_corrupt_file_fails_with_frame_number(cli, damaged, tmp_path):
    dst = tmp_path / "out.mp4"
    assert_refused(cli(damaged / "corrupt.mp4", "-o", dst, "--model", "lanczos"), dst, "damaged video at frame")


@pytest.mark.parametrize("name", ["truncated.mp4", "corrupt.mp4"])
def test_skip_damaged_reports_every_lost_frame(cli, damaged, tmp_path, name):
    dst = tmp_path / "out.mp4"
    r = cli(damaged / name, "-o", dst, "--model", "lanczos", "--skip-damaged")
    assert r.code == 0, r.err
    with av.open(str(dst)) as c:
        written = sum(1 for _ in c.decode(video=0))
    reported = frames_reported(r.err)
    assert reported > 0
    assert written + reported == 30  # every frame is either in the output or named in a warning


def test_output_is_input(cli, media, tmp_path):
    src = shutil.copy(media["cfr.mp4"], tmp_path / "same.mp4")
    before = Path(src).read_bytes()
    r = cli(src, "-o", src, "-y")
    assert_refused(r, None, "output is the input")
    assert Path(src).read_bytes() == before
    assert no_partial_files(tmp_path)


def test_output_exists_without_overwrite(cli, media, tmp_path):
    dst = tmp_path / "taken.mp4"
    dst.write_bytes(b"keep me")
    r = cli(media["cfr.mp4"], "-o", dst)
    assert r.code == 2 and "already exists" in r.error_lines[0]
    assert dst.read_bytes() == b"keep me"
    assert cli(media["cfr.mp4"], "-o", dst, "-y", "--model", "lanczos", "--quiet").code == 0
    assert dst.read_bytes() != b"keep me"


def test_output_folder_missing(cli, media, tmp_path):
    dst = tmp_path / "no" / "such" / "out.mp4"
    assert_refused(cli(media["cfr.mp4"], "-o", dst), None, "does not exist")


def test_unknown_codec(cli, media, tmp_path):
    dst = tmp_path / "out.mp4"
    assert_refused(cli(media["cfr.mp4"], "-o", dst, "--codec", "nosuchcodec", "--model", "lanczos"), dst, "unknown encoder")


def test_audio_codec_as_video_codec(cli, media, tmp_path):
    dst = tmp_path / "out.mp4"
    assert_refused(cli(media["cfr.mp4"], "-o", dst, "--codec", "aac", "--model", "lanczos"), dst, "not a video encoder")


def test_unknown_model(cli, media, tmp_path):
    dst = tmp_path / "out.mp4"
    assert_refused(cli(media["cfr.mp4"], "-o", dst, "--model", "nosuchmodel"), dst, "unknown model")


@pytest.mark.parametrize("device,needle", [("tpu", "unknown device 'tpu'"), ("cuda:x", "device 'cuda:x'")])
def test_bad_device(cli, media, tmp_path, device, needle):
    r = cli(media["cfr.mp4"], "-o", tmp_path / "o.mp4", "--model", "espcn", "--device", device)
    assert r.code == 2 and needle in r.error_lines[0]
    assert not (tmp_path / "o.mp4").exists()


def test_unsupported_scale(cli, media, tmp_path):
    dst = tmp_path / "out.mp4"
    assert_refused(cli(media["cfr.mp4"], "-o", dst, "--scale", "5"), dst, "--scale")


def test_unknown_container(cli, media, tmp_path):
    dst = tmp_path / "out.xyz"
    assert_refused(cli(media["cfr.mp4"], "-o", dst, "--model", "lanczos"), dst, "unknown output container")


def test_bad_budget_and_encoder_opt(cli, media, tmp_path):
    dst = tmp_path / "out.mp4"
    assert_refused(cli(media["cfr.mp4"], "-o", dst, "--budget", "1.5"), dst, "--budget")
    assert_refused(cli(media["cfr.mp4"], "-o", dst, "--encoder-opt", "novalue"), dst, "KEY=VALUE")
    assert_refused(cli(media["cfr.mp4"], "-o", dst, "--tile", "4"), dst, "--tile must be at least 8")


def test_frame_size_over_limit(cli, media, tmp_path, monkeypatch):
    # The limit is a constant sized for real memory; shrink it so a small clip trips it.
    monkeypatch.setattr(source, "MAX_INPUT_PIXELS", 40 * 40)
    dst = tmp_path / "out.mp4"
    assert_refused(cli(media["cfr.mp4"], "-o", dst), dst, "over the limit")


def test_output_size_over_limit(cli, media, tmp_path, monkeypatch):
    from vidsr import pipeline

    monkeypatch.setattr(pipeline, "MAX_OUTPUT_PIXELS", 100 * 100)
    dst = tmp_path / "out.mp4"
    assert_refused(cli(media["cfr.mp4"], "-o", dst, "--model", "lanczos"), dst, "over the limit")


def test_real_command_exit_code_and_single_line(media, tmp_path):
    r = run_vidsr(tmp_path / "missing.mp4")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("vidsr: error:")


def partial_with_data(folder: Path) -> list[Path]:
    """The partial files in ``folder`` that a run has started writing: not the empty one each run
    makes and removes at its start to see that it can write there."""
    found = []
    for p in folder.iterdir():
        try:
            if ".vidsr-partial-" in p.name and p.stat().st_size > 0:
                found.append(p)
        except FileNotFoundError:
            pass  # that probe, removed between listing and looking
    return found


def test_ctrl_c_leaves_no_partial_output(tmp_path):
    src = make_video(tmp_path / "long.mp4", Spec(width=320, height=240, frames=400))
    dst = tmp_path / "out.mp4"
    exe = Path(sys.executable).with_name("vidsr")
    # A background job (CI runners, `cmd &`) inherits SIGINT as ignored, and Python then never turns
    # it into KeyboardInterrupt: give the child the default disposition, as a terminal would.
    proc = subprocess.Popen([str(exe), str(src), "-o", str(dst), "--model", "lanczos", "--codec", "libx264",
                             "--encoder-opt", "preset=veryslow"], stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # wait until the partial file has data (encoding has started), then interrupt; a partial file
    # alone may be the start-up probe, gone a moment later (the test then failed under load)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not partial_with_data(tmp_path):
        time.sleep(0.05)
    if proc.poll() is not None or not partial_with_data(tmp_path):
        proc.kill()  # ended, or ending, before it was interrupted: say how
        pytest.fail(f"vidsr never wrote or ended early (code {proc.wait()}): {proc.stderr.read()[-2000:]}")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not dst.exists()
    assert no_partial_files(tmp_path)


@pytest.mark.parametrize("codec,crf,scale", [("libx264", 52, "0..51"), ("libx265", 60, "0..51"), ("libvpx-vp9", 64, "0..63")])
def test_crf_outside_the_encoder_scale_is_refused(cli, media, tmp_path, codec, crf, scale):
    """x264/x265 would clamp it to 51 without a word; VP9's option would fail with FFmpeg's message."""
    dst = tmp_path / "out.mkv"
    r = cli(media["cfr.mp4"], "-o", dst, "--model", "lanczos", "--codec", codec, "--crf", crf)
    assert_refused(r, dst, f"--crf {crf} is outside {codec}'s scale {scale}")


@pytest.mark.parametrize("option,needle", [("nosuchoption=1", "libx264 has no option nosuchoption"),
                                           ("x264-params=nosuchparam=3", "libx264 rejected x264-params"),
                                           ("preset=warpspeed", "libx264 refused its settings")])
def test_encoder_options_it_does_not_take_are_refused(cli, media, tmp_path, option, needle):
    dst = tmp_path / "out.mp4"
    assert_refused(cli(media["cfr.mp4"], "-o", dst, "--model", "lanczos", "--encoder-opt", option), dst, needle)


def test_known_encoder_options_still_work(cli, media, tmp_path):
    dst = tmp_path / "out.mp4"
    r = cli(media["cfr.mp4"], "-o", dst, "--model", "lanczos", "--encoder-opt", "preset=ultrafast",
            "--encoder-opt", "x264-params=keyint=5", "--encoder-opt", "g=5", "--quiet")
    assert r.code == 0, r.err
    with av.open(str(dst)) as c:
        assert sum(f.key_frame for f in c.decode(video=0)) == 3  # 12 frames, a keyframe every 5


def test_odd_size_in_420_says_why(cli, media, tmp_path):
    dst = tmp_path / "out.mp4"
    r = cli(media["odd.mkv"], "-o", dst, "--scale", 3, "--model", "bicubic", "--pix-fmt", "yuv420p")
    assert_refused(r, dst, "cannot encode 135x93 in yuv420p", "even width and height", "--pix-fmt yuv444p")


def test_x265_frames_under_64_pixels_a_side_are_refused_and_a_larger_scale_is_not(cli, tmp_path):
    """The wheel's x265 corrupts memory on such frames (an abort, or a process going on corrupted)."""
    src = make_video(tmp_path / "tiny.mp4", Spec(width=24, height=20, frames=3))
    dst = tmp_path / "out.mkv"
    r = cli(src, "-o", dst, "--model", "lanczos", "--scale", 2, "--codec", "libx265")
    assert_refused(r, dst, "libx265 cannot encode 48x40", "under 64 pixels a side", "libx264")
    r = cli(src, "-o", dst, "--model", "lanczos", "--scale", 4, "--codec", "libx265", "--quiet")
    assert r.code == 0, r.err
    with av.open(str(dst)) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == 3 and (frames[0].width, frames[0].height) == (96, 80)


def test_container_that_cannot_hold_the_named_codec_says_which_can(cli, media, tmp_path):
    dst = tmp_path / "out.webm"
    r = cli(media["cfr.mp4"], "-o", dst, "--model", "lanczos", "--codec", "libx264")
    assert_refused(r, dst, "webm cannot hold libx264", "libvpx-vp9")


def test_partial_file_of_a_killed_run_is_removed_by_the_next_run(media, tmp_path):
    """SIGKILL leaves no chance to clean up: the next run into the folder removes partial files of
    ours whose process is gone, and keeps those of a run still going."""
    src = make_video(tmp_path / "long.mp4", Spec(width=320, height=240, frames=400))
    proc = subprocess.Popen(vidsr_command() + [str(src), "-o", str(tmp_path / "killed.mp4"), "--model", "lanczos",
                                                "--encoder-opt", "preset=veryslow"], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not partial_with_data(tmp_path):
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    stale = partial_with_data(tmp_path)
    assert stale, "run never started writing"
    alive = subprocess.Popen(["sleep", "60"])
    try:
        running = tmp_path / f".other.vidsr-partial-{alive.pid}.mp4"  # as a run still going would have it
        running.write_bytes(b"in progress")
        r = run_vidsr(media["cfr.mp4"], "-o", tmp_path / "next.mp4", "--model", "lanczos", "--quiet")
        assert r.returncode == 0, r.stderr
        assert not any(p.exists() for p in stale)
        assert running.exists()
    finally:
        alive.kill()
        alive.wait()


@pytest.mark.parametrize("display_index", [6, 9])
def test_damaged_frame_is_named_by_its_display_index(cli, tmp_path, display_index):
    """With B-frames, decode order is not display order (frame 9 is decoded before 7 and 8), and a
    frame-threaded decoder gives frames back late: the report must still name the frame a player
    shows as number ``display_index``."""
    from .media import make_damaged_frame

    src = make_damaged_frame(tmp_path / "b.mp4", display_index)
    dst = tmp_path / "out.mp4"
    assert_refused(cli(src, "-o", dst, "--model", "lanczos"), dst, f"damaged video at frame {display_index}:")
    r = cli(src, "-o", dst, "--model", "lanczos", "--skip-damaged", "--quiet")
    assert r.code == 0, r.err
    skipped = [line for line in r.err.splitlines() if "skipped damaged" in line]
    assert skipped and skipped[0].startswith(f"vidsr: warning: skipped damaged frame {display_index}:")
    with av.open(str(dst)) as c:
        written = [round(float(f.pts * f.time_base) * 25) for f in c.decode(video=0)]
    assert display_index not in written and len(written) + frames_reported(r.err) == 20


@pytest.mark.parametrize("flag,value", [("--fps-target", "nan"), ("--fps-target", "inf"), ("--fps-target", "-inf"),
                                        ("--budget", "nan"), ("--pcsr-k", "inf")])
def test_non_finite_numbers_are_refused(cli, media, tmp_path, flag, value):
    dst = tmp_path / "out.mp4"
    assert_refused(cli(media["cfr.mp4"], "-o", dst, "--model", "lanczos", f"{flag}={value}"), dst, flag, "finite number")


@pytest.mark.parametrize("line", ["budget = nan", "fps_target = inf", "pcsr_k = -inf"])
def test_non_finite_numbers_in_a_preset_are_refused(cli, media, tmp_path, line):
    preset = tmp_path / "mine.toml"
    preset.write_text(line + "\n")
    dst = tmp_path / "out.mp4"
    assert_refused(cli(media["cfr.mp4"], "-o", dst, "--preset", preset, "--model", "lanczos"), dst,
                   f"{line.split()[0]} must be a finite number")


def test_non_finite_numbers_in_bench_flags_are_refused(cli):
    r = cli("bench", "fps", "--seconds", "nan")
    assert r.code == 2 and "finite number" in r.error_lines[0], r.err


@pytest.mark.parametrize("args,message", [
    (["quality", "--scales", "0"], "invalid choice: 0"),
    (["overhead", "--repeats", "0"], "must be at least 1"),
    (["delivery", "--frames", "0"], "must be at least 1"),
    (["video", "--seconds", "0"], "must be above 0"),
    (["fps", "--targets", "-5"], "must be above 0"),
    (["fps", "--model", "nosuch"], "unknown model 'nosuch'"),
    (["quality", "--json", "{tmp}"], "is a folder; name a file"),
])
def test_bench_flags_a_run_cannot_use_are_one_line_before_it_starts(cli, tmp_path, args, message):
    r = cli("bench", *[a.format(tmp=tmp_path) for a in args])
    assert r.code == 2 and message in r.err and "Traceback" not in r.err and len(r.error_lines) == 1, r.err


def test_a_bench_without_the_sample_photograph_says_where_it_looks(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDSR_DATA", str(tmp_path))
    r = cli("bench", "overhead", "--repeats", "1")
    assert r.code == 2 and "plasma-EveningGlow.jpg: not found" in r.err and "$VIDSR_DATA" in r.err, r.err


@pytest.fixture(scope="module")
def cut_matroska(tmp_path_factory) -> Path:
    """A 20-frame Matroska clip cut in half: Matroska keeps no frame count, so only the length its
    header states (and the bytes it promises) show the loss."""
    root = tmp_path_factory.mktemp("cut")
    whole = root / "whole.mkv"
    noise_clip(whole, "ffv1", 20, np.random.default_rng(2))
    data = whole.read_bytes()
    cut = root / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    return cut


def test_truncated_matroska_is_refused(cli, cut_matroska, tmp_path):
    dst = tmp_path / "out.mkv"
    assert_refused(cli(cut_matroska, "-o", dst, "--model", "lanczos"), dst, "truncated")
    assert source.matroska_shortfall(cut_matroska) > 0
    assert source.matroska_shortfall(cut_matroska.with_name("whole.mkv")) == 0


def test_skip_damaged_counts_the_frames_a_cut_matroska_lost(cli, cut_matroska, tmp_path):
    dst = tmp_path / "out.mkv"
    r = cli(cut_matroska, "-o", dst, "--model", "lanczos", "--skip-damaged")
    assert r.code == 0, r.err
    with av.open(str(dst)) as c:
        written = sum(1 for _ in c.decode(video=0))
    assert 0 < written < 20
    assert written + frames_reported(r.err) == 20


def test_frames_a_demuxer_skipped_are_counted_in_a_damaged_file():
    """A damaged Matroska file: the decoder rejects one frame (pts 240) and the demuxer, resyncing,
    skips the packets up to pts 480 without a trace. Every one of those frames is reported."""
    ledger = source._Ledger()
    ledger.sent = [i * 40 for i in range(7)] + [480 + i * 40 for i in range(8)]
    ledger.out = set(ledger.sent) - {240}
    ledger.produced = len(ledger.out)
    ledger.rejected = "Invalid data"
    ledger.unaccounted()
    found = ledger.damage()
    assert sum(d.count for d in found) == 1 + 5  # frame 6, and frames 7-11 that never arrived
    assert [(d.frame, d.count) for d in found] == [(6, 1), (7, 5)]
    healthy = source._Ledger()  # the same pause in a file with no damage is the file's own
    healthy.sent = list(ledger.sent)
    healthy.out, healthy.produced = set(healthy.sent), len(healthy.sent)
    healthy.unaccounted()
    assert healthy.damage() == []


def test_output_without_a_suffix_or_inside_a_file(cli, media, tmp_path):
    dst = tmp_path / "out"
    assert_refused(cli(media["cfr.mp4"], "-o", dst, "--model", "lanczos"), dst, "needs a suffix")
    blocker = tmp_path / "file.mp4"
    blocker.write_bytes(b"x")
    assert_refused(cli(media["cfr.mp4"], "-o", blocker / "out.mp4", "--model", "lanczos"), None, "is a file, not a folder")
    assert blocker.read_bytes() == b"x"


def test_a_whole_matroska_file_declaring_a_wrong_frame_rate_is_not_called_truncated(cli, tmp_path):
    # a remux that takes the stream's parameters from an H.264 stream declaring 1/time base as its
    # rate (12800 fps) writes that rate into Matroska: the frames' own spacing says 24 fps
    src = make_video(tmp_path / "src.mp4", Spec(width=32, height=24, frames=8, rate=24))
    mkv = tmp_path / "remux.mkv"
    with av.open(str(src)) as i, av.open(str(mkv), "w") as o:
        out = o.add_stream_from_template(i.streams.video[0])
        out.codec_context.framerate = 12800
        for packet in i.demux(i.streams.video[0]):
            if packet.size:
                packet.stream = out
                o.mux(packet)
    with av.open(str(mkv)) as c:
        assert c.streams.video[0].average_rate > 1000  # the wrong rate is what the file says
    r = cli(mkv, "-o", tmp_path / "out.mkv", "--model", "bicubic")
    assert r.code == 0, r.err
    assert len(list(av.open(str(tmp_path / "out.mkv")).decode(video=0))) == 8


def test_a_matroska_file_whose_audio_and_subtitles_outlast_its_video_is_not_called_truncated(cli, tmp_path):
    """FFmpeg's demuxer gives every Matroska track the whole file's length; the video's own is its
    DURATION tag (3 frames, 0.12 s, where the subtitles run to 0.3 s)."""
    src = make_video(tmp_path / "src.mkv", Spec(frames=3, audio="aac", subtitles="subrip"))
    with av.open(str(src)) as c:
        assert float(c.streams.video[0].duration * c.streams.video[0].time_base) > 0.25
    dst = tmp_path / "out.mkv"
    r = cli(src, "-o", dst, "--model", "lanczos", "--quiet")
    assert r.code == 0, r.err
    assert len(list(av.open(str(dst)).decode(video=0))) == 3


@pytest.mark.parametrize("for_video,others_end,cut", [(False, 0.30, False), (False, 0.12, True), (True, 0.30, True)])
def test_a_stated_length_short_of_the_video_counts_every_stream_only_when_it_is_the_files(tmp_path, for_video,
                                                                                        others_end, cut):
    """A Matroska file without the track's DURATION tag (mkvmerge's, or one cut before its tags)
    states only the whole file's length: the file is cut only if no stream reaches it."""
    from dataclasses import replace

    container, info = source.open_source(make_video(tmp_path / "v.mkv", Spec(frames=3)))
    container.close()
    info = replace(info, frames=0, stream_duration=0.3, stated_for_video=for_video)
    ledger = source._Ledger()
    ledger.sent = [round(k / 25 / info.time_base) for k in range(3)]  # 3 frames at 25 fps: 0.12 s
    ledger.others_end = others_end
    ledger.cut_short(info)
    assert (ledger.cut is not None) == cut


@pytest.mark.parametrize("spacing,estimated", [([0, 40, 80, 120], False), ([0, 30, 100, 140], True), ([0], True)])
def test_frames_a_cut_lost_are_counted_exactly_only_where_the_frames_left_are_evenly_spaced(tmp_path, spacing,
                                                                                            estimated):
    """The count of a cut's lost frames is the lost time over the frames' spacing: exact for an
    even spacing, "about" for a variable frame rate or too few frames to measure one."""
    from dataclasses import replace
    from fractions import Fraction

    container, info = source.open_source(make_video(tmp_path / "v.mkv", Spec(frames=3)))
    container.close()
    info = replace(info, frames=0, stream_duration=1.0, stated_for_video=True, time_base=Fraction(1, 1000))
    ledger = source._Ledger()
    ledger.sent = list(spacing)
    ledger.cut_short(info)
    [cut] = ledger.damage()
    assert cut.estimated == estimated and cut.frame == len(spacing)
    assert cut.describe().startswith(f"about {cut.count} frames (from {len(spacing)})" if estimated else f"{cut.count} frames")
