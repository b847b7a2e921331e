"""``vidsr batch``: media found by probing, a manifest that resumes, long files in segments joined
without a second encode, failures recorded, workers and the driver killed; against a real local Ray
instance (2 CPUs) started here and shut down after."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from vidsr.batch import segments as seg
from vidsr.batch.discover import discover
from vidsr.batch.driver import Options, run_batch
from vidsr.batch.jobs import job_args
from vidsr.batch.manifest import JOURNAL, Manifest, Record
from vidsr.cli.upscale import run

from .media import Spec, make_trimmed, make_video, packets
from .test_bad_input import damaged, frames_reported  # noqa: F401  (damaged: the fixture)

ray = pytest.importorskip("ray")

FLAGS = ["--model", "espcn"]  # a real network, cheap enough for tiny clips


def output_of(dst: Path, rel: str) -> Path:
    """Where the batch wrote ``rel`` (the container is the job's choice), from the manifest."""
    return dst / Manifest(dst).get(rel).output


def frames_of(path: Path) -> list[tuple[int, np.ndarray]]:
    with av.open(str(path)) as c:
        return [(f.pts, f.to_ndarray()) for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def local_ray():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local instance for these tests alone
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture
def tree(tmp_path):
    """SRC with videos in two folders, an image under a name that is not an image's, a text file,
    and a damaged video."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    make_video(src / "a.mp4", Spec(frames=10, audio="aac"))
    make_video(src / "sub" / "b.mkv", Spec(frames=6, codec="ffv1"))
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((20, 30, 3)) * 255).astype(np.uint8)).save(src / "sub" / "pic.dat", format="PNG")
    (src / "notes.txt").write_text("not media")
    (src / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 100)
    return src


def test_media_are_found_by_what_they_are_not_what_they_are_called(tree):
    kinds = {f.rel: f.kind for f in discover(tree)}
    assert kinds == {"a.mp4": "video", "sub/b.mkv": "video", "sub/pic.dat": "image", "notes.txt": "other",
                     "broken.mp4": "other"}


def test_the_manifest_keeps_the_latest_record_and_ignores_a_torn_line(tmp_path):
    m = Manifest(tmp_path)
    m.record(Record("a.mp4", 1, 2, "h", "upscale", "s", "failed", error="x"))
    m.record(Record("a.mp4", 1, 2, "h", "upscale", "s", "done", output="a.mp4", output_sha256="o"))
    with open(tmp_path / JOURNAL, "a") as f:
        f.write('{"input": "b.mp4", "size": 3, "mti')  # a kill in the middle of a write
    again = Manifest(tmp_path)
    assert again.get("a.mp4").status == "done" and again.get("b.mp4") is None
    again.record(Record("c.mp4", 1, 2, "h", "upscale", "s", "done"))  # compacts, then appends
    lines = (tmp_path / JOURNAL).read_text().splitlines()
    assert [json.loads(line)["input"] for line in lines] == ["a.mp4", "c.mp4"]


def long_clip(path: Path, codec: str = "libx264", **kw) -> Path:
    return make_video(path, Spec(frames=150, rate=25, codec=codec, audio="aac", subtitles="mov_text",
                                 options={"g": "25", **kw.pop("options", {})}, **kw))


def test_segments_start_at_keyframes_and_cover_the_video(tmp_path):
    src = long_clip(tmp_path / "long.mp4")
    keyframes, _, _ = seg.keyframes(src)
    parts = seg.plan(src, 1.5)
    assert len(parts) >= 2
    assert [p.start for p in parts] == sorted(p.start for p in parts) and all(p.start in keyframes for p in parts)
    assert [p.end for p in parts[:-1]] == [p.start for p in parts[1:]] and parts[-1].end is None
    assert seg.plan(src, 10.0) == [seg.Segment(0, keyframes[0], None)]  # short against the segment length: one


def test_an_avi_is_one_segment_its_frames_have_no_times_to_split_by(tmp_path):
    src = make_video(tmp_path / "long.avi", Spec(frames=150, rate=25, options={"g": "25"}))
    assert len(seg.keyframes(src)[0]) >= 2  # keyframes enough to split a file that keeps times
    assert seg.plan(src, 1.5) == [seg.Segment(0, 0, None)]


@pytest.mark.parametrize("codec", ["ffv1", "libx264"])
def test_joined_segments_equal_a_single_run(tmp_path, codec):
    """Lossless: every frame bit-identical; lossy (x264 with B-frames): the same frames at the same
    timestamps. Audio and subtitle packets byte-identical either way."""
    src = long_clip(tmp_path / "long.mp4", options={"bf": "3"} if codec == "libx264" else {})
    flags = FLAGS + ["--codec", codec]
    parts = seg.plan(src, 1.5)
    files = []
    for p in parts:
        files.append(tmp_path / f"seg{p.index}.mp4")
        run(job_args("upscale", flags, src, files[-1]), {}, segment=(p.start, p.end))
    joined, single = tmp_path / "joined.mkv", tmp_path / "single.mkv"
    assert seg.join(src, parts, files, joined, print) == 150
    run(job_args("upscale", flags, src, single), {})
    a, b = frames_of(joined), frames_of(single)
    assert [pts for pts, _ in a] == [pts for pts, _ in b] and len(a) == 150
    if codec == "ffv1":
        assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(a, b))
    for kind in ("audio", "subtitles"):
        assert packets(joined, kind) == packets(single, kind)


def test_segments_of_a_file_cut_with_an_edit_list_join_to_its_shown_frames(tmp_path):
    src = make_trimmed(tmp_path / "trimmed.mp4", hidden=7, shown=100, gop=25)  # all 7 hidden ones read, as references
    parts = seg.plan(src, 1.0)
    assert len(parts) >= 2
    files = []
    for p in parts:
        files.append(tmp_path / f"seg{p.index}.mp4")  # as the batch writes them
        run(job_args("upscale", FLAGS, src, files[-1]), {}, segment=(p.start, p.end))
    joined, single = tmp_path / "joined.mkv", tmp_path / "single.mkv"
    assert seg.join(src, parts, files, joined, print) == 100
    run(job_args("upscale", FLAGS, src, single), {})
    assert [pts for pts, _ in frames_of(joined)] == [pts for pts, _ in frames_of(single)]
    assert len(frames_of(single)) == 100


def test_a_batch_mirrors_the_tree_records_failures_and_resumes(tree, tmp_path, local_ray):
    dst = tmp_path / "dst"
    report = run_batch(Options(tree, dst, flags=FLAGS, progress=False))
    # broken.mp4 cannot be opened: named as a video, it fails the batch (notes.txt is only skipped)
    assert (report.done, report.failed, report.not_media) == (3, 1, 1)
    assert (dst / "a.mp4").exists() and (dst / "sub" / "b.mkv").exists() and (dst / "sub" / "pic.png").exists()
    assert len(frames_of(dst / "a.mp4")) == 10
    records = Manifest(dst).records
    assert set(records) == {"a.mp4", "sub/b.mkv", "sub/pic.dat"} and all(r.status == "done" for r in records.values())
    # the same command again: nothing to do
    before = {p: p.stat().st_mtime_ns for p in dst.rglob("*") if p.is_file() and p.name != JOURNAL}
    again = run_batch(Options(tree, dst, flags=FLAGS, progress=False))
    assert (again.done, again.skipped) == (0, 3)
    assert before == {p: p.stat().st_mtime_ns for p in dst.rglob("*") if p.is_file() and p.name != JOURNAL}
    # a changed input is redone; new flags redo everything
    make_video(tree / "a.mp4", Spec(frames=14, audio="aac"))
    changed = run_batch(Options(tree, dst, flags=FLAGS, progress=False))
    assert (changed.done, changed.skipped) == (1, 2) and len(frames_of(dst / "a.mp4")) == 14


def test_a_corrupt_file_fails_alone_and_is_retried_only_when_asked(tree, tmp_path, local_ray, damaged):  # noqa: F811
    shutil.copyfile(damaged / "truncated.mp4", tree / "cut.mkv")  # readable, but frames are lost (named .mkv all the same)
    dst = tmp_path / "dst"
    report = run_batch(Options(tree, dst, flags=FLAGS, progress=False))
    assert report.failed == 2 and report.done == 3  # cut.mkv, and broken.mp4 that cannot be opened
    record = Manifest(dst).get("cut.mkv")
    assert record.status == "failed" and "damaged video at frame" in record.error
    assert not [p for p in dst.iterdir() if p.name.startswith("cut")]
    assert run_batch(Options(tree, dst, flags=FLAGS, progress=False)).failed == 2  # still failed, not retried:
    assert Manifest(dst).get("cut.mkv") == record  # the same record, not a new run's
    retried = run_batch(Options(tree, dst, flags=FLAGS, progress=False, retry_failed=True))
    assert retried.failed == 2 and retried.done == 0 and retried.skipped == 3  # retried, and failed again


def test_a_dry_run_writes_nothing(tree, tmp_path, local_ray):
    dst = tmp_path / "dst"
    report = run_batch(Options(tree, dst, flags=FLAGS, dry_run=True, progress=False))
    assert report.done == 3 and not dst.exists()


def test_the_driver_leaves_torch_to_the_workers(tree, tmp_path):
    """The driver checks flags, probes and hashes files without torch: importing it would add its
    start-up (over a second) to every batch, on top of the workers' own."""
    code = ("import sys\nfrom vidsr.cli import main\n"
            f"main(['batch', {str(tree)!r}, {str(tmp_path / 'dst')!r}, '--dry-run', *{FLAGS!r}])\n"
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "would run: a.mp4" in proc.stderr and proc.stdout.strip().splitlines()[-1] == "False"


def test_bad_job_flags_fail_before_anything_runs(tree, tmp_path):
    from vidsr.errors import SettingsError

    for flags, needle in ((["--scale", "7"], "invalid choice"), (["-o", "x.mp4"], "-o is the batch's"),
                          (["--preset", "nosuch"], "unknown preset")):
        with pytest.raises(SettingsError, match=needle):
            run_batch(Options(tree, tmp_path / "dst", flags=flags, progress=False))
    assert not (tmp_path / "dst").exists()


@pytest.mark.parametrize("job", ["upscale", "downscale"])
@pytest.mark.parametrize("flags,needle", [(["--crf", "99"], "--crf 99 is outside libx264's scale"),
                                          (["--codec", "nosuch"], "unknown encoder 'nosuch'"),
                                          (["--pix-fmt", "nonsense"], "cannot encode nonsense"),
                                          (["--encoder-opt", "foo=bar"], "libx264 has no option foo")])
def test_bad_encoder_flags_fail_before_anything_runs_not_in_every_file(tree, tmp_path, job, flags, needle):
    """The single command refuses these when it opens its encoder; a batch would open one per file
    and record every file as failed (a rerun would then call them failed before)."""
    from vidsr.errors import SettingsError

    for dry_run in (True, False):
        with pytest.raises(SettingsError, match=needle):
            run_batch(Options(tree, tmp_path / "dst", job=job, flags=flags, dry_run=dry_run, progress=False))
    assert not (tmp_path / "dst").exists()


def test_skip_damaged_names_every_frame_a_file_lost(tree, tmp_path, local_ray, damaged, capsys):  # noqa: F811
    """What the single command says of a damaged file, the batch says too, and records."""
    shutil.copyfile(damaged / "truncated.mp4", tree / "cut.mp4")
    with av.open(str(damaged / "clean.mp4")) as c:
        whole = sum(1 for _ in c.decode(video=0))
    dst = tmp_path / "dst"
    report = run_batch(Options(tree, dst, flags=[*FLAGS, "--skip-damaged"], progress=False))
    record = Manifest(dst).get("cut.mp4")
    assert record.status == "done" and 0 < record.damaged_frames < whole
    assert record.frames + record.damaged_frames == whole == len(frames_of(dst / "cut.mp4")) + record.damaged_frames
    assert report.damaged_frames == record.damaged_frames
    said = [line for line in capsys.readouterr().err.splitlines() if "skipped damaged" in line]
    assert said and all(line.startswith("vidsr batch: cut.mp4: skipped damaged") for line in said)
    assert frames_reported("\n".join(said)) == record.damaged_frames


def test_a_worker_killed_mid_task_is_retried(tmp_path, local_ray):
    """The worker process dies while it writes a file (kill -9): Ray restarts it and runs the task
    again; the file is done, complete, and nothing partial is left."""
    src = tmp_path / "src"
    src.mkdir()
    make_video(src / "slow.mp4", Spec(width=192, height=128, frames=60))
    dst = tmp_path / "dst"
    result = {}
    runner = threading.Thread(target=lambda: result.update(r=run_batch(
        Options(src, dst, flags=["--model", "plain", "--tile", "16"], workers=1, progress=False))))
    runner.start()
    killed = None
    deadline = time.time() + 300  # Ray's start alone took over 120 s on a loaded 2-core machine
    while killed is None and time.time() < deadline and runner.is_alive():
        partial = [p for p in dst.glob(".slow.vidsr-partial-*") if p.stat().st_size > 0] if dst.exists() else []
        if partial:
            killed = int(partial[0].name.split("-partial-")[1].split(".")[0])
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    runner.join(timeout=300)
    assert killed is not None, "the worker never started writing"
    assert result["r"].done == 1 and result["r"].failed == 0
    assert len(frames_of(dst / "slow.mp4")) == 60
    assert not list(dst.glob(".*partial*"))


def test_killing_the_driver_loses_only_the_work_in_flight(tmp_path, local_ray):
    """kill -9 of the driver half-way: the files recorded are kept, the rerun does the rest, and the
    outputs are those of an uninterrupted run (lossless, so bit for bit)."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        make_video(src / f"c{i}.mkv", Spec(frames=16, codec="ffv1"))
    flags = FLAGS + ["--codec", "ffv1"]
    cmd = [sys.executable, "-m", "vidsr", "batch", str(src), str(tmp_path / "dst"), "--address", local_ray,
           "--workers", "1", "--quiet", *flags]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    journal = tmp_path / "dst" / JOURNAL
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text().count('"status": "done"') >= 2:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    done_before = sum(r.status == "done" for r in Manifest(tmp_path / "dst").records.values())
    assert 2 <= done_before < 6, "the driver was not killed half-way"
    # a file finished but not yet recorded is the batch's own: the rerun redoes it, no --overwrite needed
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    records = Manifest(tmp_path / "dst").records
    assert len(records) == 6 and all(r.status == "done" for r in records.values())
    whole = tmp_path / "whole"
    assert run_batch(Options(src, whole, flags=flags, progress=False)).done == 6
    for i in range(6):
        a, b = frames_of(output_of(tmp_path / "dst", f"c{i}.mkv")), frames_of(output_of(whole, f"c{i}.mkv"))
        assert [p for p, _ in a] == [p for p, _ in b] and all(np.array_equal(x, y) for (_, x), (_, y) in zip(a, b))
    assert not list((tmp_path / "dst").glob(".*partial*"))


def test_a_long_file_runs_in_segments_and_resumes_per_segment(tmp_path, local_ray):
    """A long video becomes segment tasks; a segment finished before a kill is not run again; the
    joined output is the single run's, frame for frame (lossless)."""
    from vidsr.batch import driver
    from vidsr.batch.jobs import run_task
    from vidsr.batch.manifest import settings_digest

    src = tmp_path / "src"
    src.mkdir()
    long_clip(src / "long.mp4", codec="ffv1")
    dst = tmp_path / "dst"
    flags = FLAGS + ["--codec", "ffv1"]
    opts = Options(src, dst, flags=flags, segment_seconds=1.5, progress=False)
    item = driver.Item("long.mp4", src / "long.mp4", False, output=driver.output_for(opts, "long.mp4", src / "long.mp4", False))
    st = item.path.stat()
    item.size, item.mtime_ns = st.st_size, st.st_mtime_ns
    digest = settings_digest(opts.job, flags)
    tasks = driver.tasks_for(opts, item, digest)
    assert len(tasks) >= 2 and all(t.segment is not None for t in tasks)
    assert run_task(tasks[0], {})["status"] == "done"  # one segment done, then the run is "killed"
    assert len(driver.tasks_for(opts, item, digest)) == len(tasks) - 1
    report = run_batch(opts)
    assert report.done == 1 and report.frames == 150
    assert not any((dst / driver.SEGMENTS_DIR).iterdir())  # joined: the segments are gone
    joined = output_of(dst, "long.mp4")
    single = tmp_path / f"single{joined.suffix}"  # the same container: the same time base
    run(job_args("upscale", flags, src / "long.mp4", single), {})
    a, b = frames_of(joined), frames_of(single)
    assert [p for p, _ in a] == [p for p, _ in b] and all(np.array_equal(x, y) for (_, x), (_, y) in zip(a, b))
    for kind in ("audio", "subtitles"):
        assert packets(joined, kind) == packets(single, kind)


def test_a_downscale_batch_tags_every_output_and_segments_keep_the_tag(tmp_path, local_ray):
    """--job downscale: the tree downscaled for delivery, each output tagged (a segmented long file
    too, whose joined output has the whole run's frames), and the same command again skips all."""
    from vidsr.delivery import tags

    src = tmp_path / "src"
    src.mkdir()
    make_video(src / "a.mp4", Spec(width=64, height=48, frames=6, audio="aac"))
    long_clip(src / "long.mp4")
    dst = tmp_path / "dst"
    opts = Options(src, dst, job="downscale", flags=[], segment_seconds=1.5, progress=False)
    report = run_batch(opts)
    assert (report.done, report.failed) == (2, 0)
    for rel, frames in (("a.mp4", 6), ("long.mp4", 150)):
        out = output_of(dst, rel)
        got = frames_of(out)
        assert len(got) == frames and tags.read(out) is not None and tags.read(out).scale == 2
    with av.open(str(output_of(dst, "a.mp4"))) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (32, 24)
    again = run_batch(opts)
    assert (again.done, again.skipped) == (0, 2)


def _dry(src, dst, *flags, overwrite=False):
    return run_batch(Options(src, dst, flags=["--model", "lanczos", *flags], dry_run=True, progress=False,
                             overwrite=overwrite))


def test_outputs_never_land_on_inputs_collide_or_replace_files_the_batch_did_not_write(tmp_path):
    from vidsr.errors import SettingsError

    clip = make_video(tmp_path / "clip.mp4", Spec(width=32, height=32, frames=2))
    # DST holding SRC: sub/a.mp4's output would be the input sub/sub/a.mp4 ... of SRC itself
    (tmp_path / "t3" / "sub" / "sub").mkdir(parents=True)
    shutil.copy(clip, tmp_path / "t3" / "sub" / "a.mp4")
    shutil.copy(clip, tmp_path / "t3" / "sub" / "sub" / "a.mp4")
    before = (tmp_path / "t3" / "sub" / "a.mp4").read_bytes()
    with pytest.raises(SettingsError, match="would land inside SRC on the input"):
        _dry(tmp_path / "t3" / "sub", tmp_path / "t3")
    assert (tmp_path / "t3" / "sub" / "a.mp4").read_bytes() == before
    # a file already in DST that no run of this batch wrote
    (tmp_path / "src").mkdir()
    (tmp_path / "dst").mkdir()
    shutil.copy(clip, tmp_path / "src" / "clip.mp4")
    (tmp_path / "dst" / "clip.mp4").write_text("precious")
    with pytest.raises(SettingsError, match="not written by this batch; --overwrite"):
        _dry(tmp_path / "src", tmp_path / "dst")
    assert _dry(tmp_path / "src", tmp_path / "dst", overwrite=True).done == 1
    # two inputs, one output name
    (tmp_path / "pair").mkdir()
    shutil.copy(clip, tmp_path / "pair" / "clip")
    shutil.copy(clip, tmp_path / "pair" / "clip.mp4")
    with pytest.raises(SettingsError, match="would both be written to clip.mp4"):
        _dry(tmp_path / "pair", tmp_path / "out")
    # DST that is a file; a model nobody ships (before any worker starts)
    with pytest.raises(SettingsError, match="DST must be a folder"):
        _dry(tmp_path / "src", clip)
    with pytest.raises(SettingsError, match="unknown model"):
        run_batch(Options(tmp_path / "src", tmp_path / "o2", flags=["--model", "bogus"], dry_run=True, progress=False))


def test_an_output_a_killed_run_finished_but_never_recorded_is_the_batchs_own(tmp_path):
    """A run killed between a worker renaming its output into place and the driver recording it:
    the file's "started" record says the output is the batch's, so the rerun redoes it."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    make_video(src / "c.mp4", Spec(width=32, height=32, frames=2))
    st = (src / "c.mp4").stat()
    Manifest(dst).record(Record("c.mp4", st.st_size, st.st_mtime_ns, "", "upscale", "x", "started", output="c.mp4"))
    (dst / "c.mp4").write_bytes(b"finished, not recorded")
    assert _dry(src, dst).done == 1


def test_the_settings_digest_counts_the_files_flags_name(tmp_path):
    from vidsr.batch.manifest import settings_digest

    preset = tmp_path / "mine.toml"
    preset.write_text("crf = 40\n")
    flags = ["--preset", str(preset)]
    first = settings_digest("upscale", flags)
    assert settings_digest("upscale", flags) == first
    assert settings_digest("upscale", ["--preset=" + str(preset)]) != settings_digest("upscale", ["--preset=x"])
    preset.write_text("crf = 20\n")  # the same command, another preset: its outputs are not the same
    assert settings_digest("upscale", flags) != first


def test_editing_a_preset_the_batch_names_redoes_its_files(tmp_path, local_ray, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    make_video(src / "a.mp4", Spec(frames=4))
    preset = tmp_path / "mine.toml"
    preset.write_text("[encoder]\ncrf = 40\n")
    flags = FLAGS + ["--preset", str(preset)]
    assert run_batch(Options(src, dst, flags=flags, progress=False)).done == 1
    assert run_batch(Options(src, dst, flags=flags, progress=False)).skipped == 1
    small = (dst / "a.mp4").stat().st_size
    preset.write_text("[encoder]\ncrf = 10\n")
    assert run_batch(Options(src, dst, flags=flags, progress=False)).done == 1
    assert (dst / "a.mp4").stat().st_size > small
    assert "done a.mp4" not in capsys.readouterr().err  # no progress (--quiet): no per-file lines


def test_a_stop_signal_ends_the_batch_cleanly_and_it_resumes(tmp_path, local_ray):
    """SIGTERM to the driver (a scheduler's or a service manager's stop) while a worker writes: the
    batch ends as Ctrl-C ends it (one line, exit 130), with no stack dump from Ray and no partial
    file left; the rerun does the rest."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(2):
        make_video(src / f"c{i}.mp4", Spec(width=192, height=128, frames=60))
    dst = tmp_path / "dst"
    cmd = [sys.executable, "-m", "vidsr", "batch", str(src), str(dst), "--workers", "1", "--quiet",
           "--model", "plain", "--tile", "16"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # its own Ray
    deadline, signalled = time.time() + 240, False
    while time.time() < deadline and proc.poll() is None:
        if dst.exists() and any(p.stat().st_size > 0 for p in dst.glob(".*.vidsr-partial-*")):
            proc.send_signal(signal.SIGTERM)
            signalled = True
            break
        time.sleep(0.05)
    err = proc.communicate(timeout=120)[1]
    assert signalled, "no worker started writing"
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "vidsr: interrupted", err
    assert "SIGTERM received" not in err and "Traceback" not in err, err
    assert not list(dst.glob(".*partial*"))
    rerun = subprocess.run(cmd + ["--address", local_ray], capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert all(len(frames_of(dst / f"c{i}.mp4")) == 60 for i in range(2))


def test_a_batch_jobs_no_sharpen_flag_reaches_its_engine(tmp_path):
    # a batch's flags go through the upscaler's own parser into the engine each worker caches: with
    # --no-sharpen the routed video's interpolated tiles are plain Lanczos (no sharpened base), and
    # the cache keeps the two apart, so a worker serving both settings never mixes them
    from vidsr.batch.jobs import run_job

    src = tmp_path / "a.mp4"
    make_video(src, Spec(frames=4))
    engines, outs = {}, {}
    for flags in ([], ["--no-sharpen"]):
        dst = tmp_path / f"out{len(flags)}.mp4"
        run_job("upscale", job_args("upscale", ["--budget", "0", *flags], src, dst), engines)
        outs[bool(flags)] = np.stack([f for _, f in frames_of(dst)]).astype(int)
    assert sorted((key[-1], engine.sharp is not None) for key, engine in engines.items()) == [(False, False), (True, True)]
    assert np.abs(outs[True] - outs[False]).mean() > 0.5  # the base changed the pixels


def test_outputs_written_under_earlier_flags_stay_the_batchs_own(tmp_path, local_ray, capsys):
    """Flags that name an output otherwise (another container) leave the old output in DST, said
    once; going back to the first flags replaces that output as the batch's own, not a stranger's."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    make_video(src / "a.mp4", Spec(frames=4))
    assert run_batch(Options(src, dst, flags=FLAGS, progress=False)).done == 1
    capsys.readouterr()
    assert run_batch(Options(src, dst, flags=[*FLAGS, "--preset", "archive"], progress=False)).done == 1
    assert "a.mp4: its output under earlier flags, a.mp4, stays in DST beside a.mkv" in capsys.readouterr().err
    assert (dst / "a.mp4").exists() and (dst / "a.mkv").exists()
    again = run_batch(Options(src, dst, flags=FLAGS, progress=False))  # refused as "not written by this batch" before
    assert again.done == 1 and output_of(dst, "a.mp4") == dst / "a.mp4"
    assert Manifest(dst).wrote("a.mp4", "a.mkv") and Manifest(dst).wrote("a.mp4", "a.mp4")
