"""The delivery tag: what a downscaled file says about the upscaler it was made for.

One container metadata entry (``vidsr_delivery``; MP4/MOV store it with ``use_metadata_tags``,
Matroska as a tag) or PNG text chunk, ``upscaler=NAME scale=S downscaler=SHA256 mode=MODE``, so that
``vidsr FILE`` with no ``--model`` and no ``--scale`` upscales it with the model and scale it was
made for. An upscaled output does not keep the tag: it is no longer a delivery file.
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

    def text(self) -> str:
        return f"upscaler={self.upscaler} scale={self.scale} downscaler={self.downscaler} mode={self.mode}"

    @classmethod
    def parse(cls, text: str) -> "DeliveryTag | None":
        fields = dict(part.partition("=")[::2] for part in text.split())
        try:
            return cls(fields["upscaler"], int(fields["scale"]), fields["downscaler"], fields.get("mode", "fast"))
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
