"""Finding the media under a folder by what the files are, not what they are called."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import av


@dataclass(frozen=True)
class Found:
    path: Path  # absolute
    rel: str  # relative to the folder searched, with forward slashes
    kind: str  # "video", "image" or "other"
    reason: str = ""  # for "other": why it is not media vidsr takes


def probe(path: Path) -> tuple[str, str]:
    """("image" | "video" | "other", why not media). Images first, by content as the upscaler
    decides it: FFmpeg opens still images too, as one-frame videos, and vidsr writes those as PNG."""
    from ..io.images import is_image

    if is_image(path):
        return "image", ""
    try:
        with av.open(str(path)) as c:
            videos = [s for s in c.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
            if not videos:
                return "other", "no video stream"
            return "video", ""
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError) as e:
        # FFmpeg's reason without PyAV's "[Errno N]" prefix and file name (the row names the file)
        reason = getattr(e, "strerror", None) or (str(e).splitlines()[0] if str(e) else type(e).__name__)
        return "other", f"not a readable media file ({reason})"


def discover(src: Path, skip: Path | None = None) -> list[Found]:
    """Every regular file under ``src`` (sorted, hidden files and folders left out), probed.
    ``skip``: a folder inside ``src`` not to descend into (the batch's own DST)."""
    src = Path(src).resolve()
    skip = Path(skip).resolve() if skip is not None else None
    found = []
    for root, dirs, files in os.walk(src):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (skip is None or (here / d).resolve() != skip))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = here / name
            if not path.is_file():
                continue
            kind, reason = probe(path)
            found.append(Found(path, path.relative_to(src).as_posix(), kind, reason))
    return found
