"""The delivery tag: what a downscaled file says about the upscaler it was made for.

One container metadata entry (``vidsr_delivery``; MP4/MOV store it with ``use_metadata_tags``,
Matroska as a tag) or PNG text chunk, ``upscaler=NAME scale=S downscaler=SHA256 mode=MODE
size=WxH``, so that ``vidsr FILE`` with no ``--model`` and no ``--scale`` upscales it with the model
and scale it was made for. ``size`` is the source's: a side that is not a multiple of the scale (or,
in video, of twice it, for 4:2:0 chroma) was padded, and the upscaler crops back to it. An upscaled
output does not keep the tag: it is no longer a delivery file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

KEY = "vidsr_delivery"
# containers whose muxer stores an arbitrary metadata key (and the muxer option that makes it)
TAGGING_MUXERS = {"mp4": {"movflags": "use_metadata_tags"}, "mov": {"movflags": "use_metadata_tags"},
                  "matroska": {}, "webm": {}}


@dataclass(frozen=True)
class DeliveryTag:
    upscaler: str
    scale: int
    downscaler: str  # sha256 of the downscaler's weights
    mode: str
    size: tuple[int, int] | None = None  # the source's (width, height); None in files tagged before it was

    def text(self) -> str:
        text = f"upscaler={self.upscaler} scale={self.scale} downscaler={self.downscaler} mode={self.mode}"
        return text + (f" size={self.size[0]}x{self.size[1]}" if self.size else "")

    def with_size(self, width: int, height: int) -> "DeliveryTag":
        return DeliveryTag(self.upscaler, self.scale, self.downscaler, self.mode, (width, height))

    def crop(self, width: int, height: int, warn=None) -> tuple[int, int] | None:
        """The (width, height) to crop an upscaled ``width`` x ``height`` frame of this file to: the
        source's, when padding explains the difference (each side short of it by less than two LR
        pixels); None when there is nothing to crop or the file's size does not fit the tag's, which
        ``warn`` is told."""
        if self.size is None or (width, height) == self.size:
            return None
        if all(0 <= up - src < 2 * self.scale for up, src in zip((width, height), self.size)):
            return self.size
        if warn is not None:
            warn(f"the delivery tag names a {self.size[0]}x{self.size[1]} source, which a {width // self.scale}x"
                 f"{height // self.scale} file at x{self.scale} cannot have come from; keeping {width}x{height}")
        return None

    @classmethod
    def parse(cls, text: str) -> "DeliveryTag | None":
        fields = dict(part.partition("=")[::2] for part in text.split())
        try:
            size = None
            if "size" in fields:
                w, _, h = fields["size"].partition("x")
                size = (int(w), int(h))
                if min(size) < 1:
                    return None
            return cls(fields["upscaler"], int(fields["scale"]), fields["downscaler"], fields.get("mode", "fast"), size)
        except (KeyError, ValueError):
            return None


def is_key(key: str) -> bool:
    return key.lower() == KEY


def from_metadata(metadata: dict) -> DeliveryTag | None:
    for k, v in metadata.items():
        if is_key(k):
            return DeliveryTag.parse(v)
    return None


def read(path: Path) -> DeliveryTag | None:
    """The tag of a video or PNG file, or None (no tag, or a file that cannot be read: the caller's
    own open reports that)."""
    from ..io.images import is_image

    try:
        if is_image(path):
            from PIL import Image

            with Image.open(path) as im:
                return from_metadata(dict(getattr(im, "text", {}) or {}))
        import av

        with av.open(str(path)) as c:
            return from_metadata(dict(c.metadata))
    except Exception:  # noqa: BLE001 - unreadable here means untagged; opening it for real says why
        return None
