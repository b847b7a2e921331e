"""The write-side matrix: an output that cannot be written (read-only filesystem, a folder without
write permission, a missing folder, a full disk) for each thing a run writes (the video, a PNG, the
--stats file). Each must end with one "vidsr: error:" line, exit code 2, no traceback, and nothing
left behind: no output, no partial file.

Read-only and full filesystems are real ones: a small tmpfs mounted in a private mount namespace
(``unshare``; as root, or in a user namespace otherwise), which disappears with the run. Permission
is a real one too: a folder without write permission, and, when the tests run as root (whom
permissions do not stop), the run loses the capabilities that override them (``setpriv``)."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from .conftest import no_partial_files, vidsr_command

CONDITIONS = ["read-only", "no-permission", "disk-full"]
TARGETS = ["video", "image", "stats"]
AS_ROOT = os.geteuid() == 0
# Root ignores permission bits: drop the capabilities that let it (the run then obeys them).
OBEY_PERMISSIONS = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
SETUP = {
    "read-only": 'mount -o remount,ro "$M"',
    "no-permission": 'chmod 0555 "$M"',
    "disk-full": 'dd if=/dev/zero of="$M/filler" bs=4k 2>/dev/null; true',
    "fills-up": "true",  # room at the start: the run itself fills the disk
}


def _unshare() -> list[str] | None:
    """A command prefix that runs in a private mount namespace where we may mount, or None."""
    prefix = ["unshare", "--mount", "--propagation", "private"] + ([] if AS_ROOT else ["--user", "--map-root-user"])
    if shutil.which("unshare") is None or shutil.which("setpriv") is None:
        return None
    probe = subprocess.run(prefix + ["sh", "-c", "mount -t tmpfs tmpfs /mnt 2>/dev/null || mount -t tmpfs tmpfs /tmp"],
                           capture_output=True)
    return prefix if probe.returncode == 0 else None


UNSHARE = _unshare()


def _run_on_small_tmpfs(mountpoint, condition: str, args: list) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run vidsr with ``mountpoint`` a fresh 256 KiB tmpfs under ``condition``; returns the run and
    what was left on the tmpfs afterwards (besides the filler of a full disk)."""
    script = (f'M="$1"; shift; mount -t tmpfs -o size=256k tmpfs "$M" || exit 99; {SETUP[condition]}\n'
              '"$@"; rc=$?\n'
              'echo "left:$(ls -A "$M" | grep -vx filler | tr "\\n" " ")" >&2\n'
              "exit $rc")
    command = UNSHARE + ["sh", "-c", script, "sh", str(mountpoint)] + OBEY_PERMISSIONS + vidsr_command() + [str(a) for a in args]
    r = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert r.returncode != 99, r.stderr  # the mount itself failed
    lines = r.stderr.splitlines()
    left = [line for line in lines if line.startswith("left:")]
    assert left, r.stderr
    r.stderr = "\n".join(line for line in lines if not line.startswith("left:"))
    return r, left[0][len("left:"):].split()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from .media import Spec, make_video

    root = tmp_path_factory.mktemp("write_inputs")
    video = make_video(root / "clip.mp4", Spec(width=64, height=48, frames=24))
    image = root / "shot.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(image)
    return {"video": video, "image": image}


def _arguments(target: str, inputs, place, elsewhere) -> list:
    """vidsr's arguments writing ``target`` into the folder ``place`` (other outputs go to ``elsewhere``)."""
    if target == "video":
        return [inputs["video"], "-o", place / "out.mkv", "--model", "lanczos", "--codec", "ffv1", "--quiet"]
    if target == "image":
        return [inputs["image"], "-o", place / "out.png", "--model", "lanczos", "--scale", "4", "--quiet"]
    return [inputs["video"], "-o", elsewhere / "out.mkv", "--stats", place / "stats.jsonl", "--model", "lanczos", "--quiet"]


def _assert_refused(code: int, err: str) -> None:
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("vidsr: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err


@pytest.mark.skipif(UNSHARE is None, reason="needs unshare and setpriv, and leave to mount a tmpfs in a private namespace")
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("condition", CONDITIONS)
def test_unwritable_output_is_one_line_and_leaves_nothing(inputs, tmp_path, condition, target):
    place, elsewhere = tmp_path / "mnt", tmp_path / "elsewhere"
    place.mkdir()
    elsewhere.mkdir()
    r, left = _run_on_small_tmpfs(place, condition, _arguments(target, inputs, place, elsewhere))
    _assert_refused(r.returncode, r.stderr)
    assert left == [], f"left behind: {left}"
    assert list(elsewhere.iterdir()) == []  # nor the other output of a --stats run


@pytest.mark.parametrize("target", TARGETS)
def test_missing_folder_is_one_line_and_leaves_nothing(cli, inputs, tmp_path, target):
    place, elsewhere = tmp_path / "no" / "such", tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = cli(*_arguments(target, inputs, place, elsewhere))
    _assert_refused(r.code, r.err)
    assert "folder does not exist" in r.err
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "no").exists()


def test_stats_naming_a_folder_is_refused(cli, inputs, tmp_path):
    r = cli(inputs["video"], "-o", tmp_path / "out.mkv", "--stats", tmp_path, "--model", "lanczos")
    _assert_refused(r.code, r.err)
    assert "is a directory" in r.err and not (tmp_path / "out.mkv").exists() and no_partial_files(tmp_path)


def test_stats_never_overwrites_the_input(cli, inputs, tmp_path):
    before = inputs["video"].read_bytes()
    r = cli(inputs["video"], "-o", tmp_path / "out.mkv", "--stats", inputs["video"], "-y", "--model", "lanczos")
    _assert_refused(r.code, r.err)
    assert "--stats would overwrite the input" in r.err and inputs["video"].read_bytes() == before


@pytest.mark.skipif(UNSHARE is None, reason="needs unshare and setpriv, and leave to mount a tmpfs in a private namespace")
def test_disk_filling_up_midway_is_one_line_and_leaves_nothing(inputs, tmp_path):
    """The disk has room at the start and runs out with frames already written (lossless 4x output
    is several times the 256 KiB tmpfs)."""
    place = tmp_path / "mnt"
    place.mkdir()
    r, left = _run_on_small_tmpfs(place, "fills-up", [inputs["video"], "-o", place / "out.mkv", "--scale", "4",
                                                      "--codec", "ffv1", "--model", "lanczos", "--quiet"])
    _assert_refused(r.returncode, r.stderr)
    assert "out.mkv: cannot write (No space left on device)" in r.stderr and left == []


def _clip_with_timestamps(path, pts_ms: list[int]):
    """An FFV1 Matroska clip whose frames are timed at ``pts_ms`` (milliseconds), as given."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt, s.time_base = 64, 48, "yuv420p", Fraction(1, 1000)
        for i, pts in enumerate(pts_ms):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 30 * i, np.uint8), "rgb24").reformat(format="yuv420p")
            f.pts, f.time_base = pts, s.time_base
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def test_a_repeated_timestamp_is_named_where_the_output_cannot_hold_it(tmp_path):
    import av

    from .conftest import run_vidsr

    src = _clip_with_timestamps(tmp_path / "dup.mkv", [0, 40, 80, 80, 120, 160])
    # MP4 refuses two frames at one time: one line that says which frame and what holds it, nothing left
    r = run_vidsr(src, "-o", tmp_path / "up.mp4", "--model", "bicubic")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "input frame 3 is timed at 0.080 s, not after the frame before it" in r.stderr  # counted from 0 and "-o NAME.mkv" in r.stderr
    assert not (tmp_path / "up.mp4").exists() and no_partial_files(tmp_path)
    # Matroska keeps them, every frame at its own time
    r = run_vidsr(src, "-o", tmp_path / "up.mkv", "--model", "bicubic", "--quiet")
    assert r.returncode == 0, r.stderr
    with av.open(str(tmp_path / "up.mkv")) as c:
        times = [round(float(f.pts * f.time_base), 3) for f in c.decode(video=0)]
    assert times == [0.0, 0.04, 0.08, 0.08, 0.12, 0.16]
