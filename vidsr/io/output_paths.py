"""Where a run writes: the output's name and container, and the hidden partial file beside it
(``.NAME.vidsr-partial-PID.EXT``) that is renamed when complete."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import OutputError


def temp_path_for(final: Path) -> Path:
    """A hidden file beside the output (same folder, so the final rename is atomic), keeping the
    extension FFmpeg uses to pick the muxer."""
    return final.with_name(f".{final.stem}.vidsr-partial-{os.getpid()}{final.suffix}")


def cannot_write(path: Path, error: Exception) -> OutputError:
    """The one line for an OS or FFmpeg error while writing ``path`` ("No space left on device")."""
    return OutputError(f"{path}: cannot write ({getattr(error, 'strerror', None) or error})")


def default_output(src: Path, scale: int, suffix: str) -> Path:
    """INPUT_x<scale><suffix>, beside the input."""
    return src.with_name(f"{src.stem}_x{scale}{suffix}")


def video_output(src: Path, asked: Path | None, scale: int, codec: str | None, container: str | None) -> Path:
    """The video output path. One asked for must be a container that holds the codec (a named codec
    that does not fit is refused, naming those that do). Otherwise INPUT_x<scale> in the preset's
    container, or else the first of .mp4, the input's own and .mkv that holds the codec and carries
    every stream as it is."""
    from .sink import DEFAULT_ENCODER, container_format_for, encoder_named, video_encoder_for
    from .source import open_source
    from .streams import holds_all, muxer

    if asked is not None:
        video_encoder_for(container_format_for(asked), codec)
        return asked
    if container:
        dst = default_output(src, scale, f".{container}")
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
        suffix = next((s for s in (".mp4", src.suffix, ".mkv") if s and fits(s, info.other_streams)), ".mkv")
    return default_output(src, scale, suffix)
