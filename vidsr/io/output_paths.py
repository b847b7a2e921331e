"""Where a run writes, checked before any work: the output file (video or PNG) and the ``--stats``
file. Every problem is one ``OutputError`` line; nothing is left behind.

Files are written under a hidden partial name beside their target (``.NAME.vidsr-partial-PID.EXT``)
and renamed when complete. A run killed outright (SIGKILL, power loss) cannot remove its partial
file, so each run first removes the partial files in its folders whose process is gone.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..errors import OutputError

PARTIAL_NAME = re.compile(r"^\..*\.vidsr-partial-(\d+)(\.[^.]*)?$")


def temp_path_for(final: Path) -> Path:
    """A hidden file beside the output (same folder, so the final rename is atomic), keeping the
    extension FFmpeg uses to pick the muxer."""
    return final.with_name(f".{final.stem}.vidsr-partial-{os.getpid()}{final.suffix}")


def cannot_write(path: Path, error: Exception) -> OutputError:
    """The one line for an OS or FFmpeg error while writing ``path`` ("No space left on device")."""
    return OutputError(f"{path}: cannot write ({getattr(error, 'strerror', None) or error})")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_partials(folder: Path) -> list[Path]:
    """Remove partial files of ours in ``folder`` whose process no longer exists; returns them."""
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for path in entries:
        match = PARTIAL_NAME.match(path.name)
        if match and int(match.group(1)) != os.getpid() and not _process_alive(int(match.group(1))):
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                pass  # not ours to remove after all (read-only folder, say): leave it
    return removed


def check_writable(target: Path) -> None:
    """Create and remove the target's partial file: a read-only filesystem or a folder without
    write permission fails here, before any work, rather than at the first frame."""
    probe = temp_path_for(target)
    try:
        try:
            os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        finally:  # also when Ctrl-C lands right after the file was made
            probe.unlink(missing_ok=True)
    except OSError as e:
        raise OutputError(f"{target.parent}: cannot write here ({e.strerror or e})") from None


def check_target(path: Path, overwrite: bool, what: str = "output") -> None:
    """A file we are about to write: not a folder, in a folder that exists, not silently replaced."""
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; the {what} must name a file")
    if not path.parent.is_dir():
        if path.parent.exists():
            raise OutputError(f"{path.parent}: is a file, not a folder, so the {what} cannot go inside it")
        raise OutputError(f"{path.parent}: {what} folder does not exist")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists (use -y to overwrite)")


def prepare_outputs(src: Path, dst: Path, stats: Path | None, overwrite: bool) -> None:
    """Every check on the output and ``--stats`` paths, then the clean-up of stale partial files."""
    if dst.resolve() == src.resolve() or (dst.exists() and os.path.samefile(dst, src)):
        raise OutputError(f"{dst}: output is the input file; choose another -o")
    check_target(dst, overwrite)
    if stats is not None:
        if stats.resolve() in (src.resolve(), dst.resolve()):
            raise OutputError(f"{stats}: --stats would overwrite the {'input' if stats.resolve() == src.resolve() else 'output'}")
        check_target(stats, overwrite, "--stats")
    for target in [dst] + ([stats] if stats is not None else []):
        remove_stale_partials(target.parent)
        check_writable(target)


class StatsFile:
    """``--stats``: one JSON line per frame, written under a partial name and renamed when the run
    succeeds; a failed run leaves nothing."""

    def __init__(self, path: Path):
        self.path = path
        self.tmp = temp_path_for(path)
        try:
            self.file = open(self.tmp, "w", buffering=1)
        except OSError as e:
            raise cannot_write(path, e) from None

    def write(self, record: dict) -> None:
        try:
            self.file.write(json.dumps(record) + "\n")
        except OSError as e:
            raise cannot_write(self.path, e) from None

    def commit(self) -> None:
        try:
            self.file.close()
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.discard()
            raise cannot_write(self.path, e) from None

    def discard(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass  # the data it could not flush is being thrown away
        try:
            self.tmp.unlink(missing_ok=True)
        except OSError:
            pass


def default_output(src: Path, scale: int, suffix: str, label: str = "x") -> Path:
    """INPUT_x<scale><suffix> (``label`` "down": INPUT_down<scale>), beside the input."""
    return src.with_name(f"{src.stem}_{label}{scale}{suffix}")


def video_output(src: Path, asked: Path | None, scale: int, codec: str | None, container: str | None,
                 prefer_own: bool = False, label: str = "x") -> Path:
    """The video output path. One asked for must be a container that holds the codec (a named codec
    that does not fit is refused, naming those that do). Otherwise INPUT_x<scale> in the preset's
    container, or else the first of .mp4, the input's own and .mkv that holds the codec and carries
    every stream as it is (``prefer_own``: the input's own first, as a mirrored tree wants it)."""
    from .sink import DEFAULT_ENCODER, container_format_for, encoder_named, video_encoder_for
    from .source import open_source
    from .streams import holds_all, muxer

    if asked is not None:
        video_encoder_for(container_format_for(asked), codec)
        return asked
    if container:
        dst = default_output(src, scale, f".{container}", label)
        video_encoder_for(container_format_for(dst), codec)
        return dst
    encoder = encoder_named(codec or DEFAULT_ENCODER).name

    def fits(suffix: str, streams) -> bool:
        try:
            fmt = container_format_for(Path(f"x{suffix}"))
        except OutputError:
            return False
        return muxer(fmt).holds(encoder) and holds_all(fmt, streams)

    source, info = open_source(src)  # early, clear errors for bad input
    with source:
        order = (src.suffix, ".mp4", ".mkv") if prefer_own else (".mp4", src.suffix, ".mkv")
        suffix = next((s for s in order if s and fits(s, info.other_streams)), ".mkv")
    return default_output(src, scale, suffix, label)
