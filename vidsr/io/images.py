"""Still images (PNG, JPEG, WebP, BMP, TIFF) in, PNG out, through the same engine as video.

RGB is split into BT.601 studio-range Y'CbCr (the luma the networks were trained on); Y goes
through the engine, Cb/Cr and any alpha through Lanczos, then back to RGB. EXIF orientation is
applied on the way in and the ICC profile is kept. 16-bit PNG stays 16-bit: grey through Pillow,
colour and grey+alpha (which Pillow narrows to 8 bits) through FFmpeg's PNG decoder and encoder.
"""

from __future__ import annotations

import os
from pathlib import Path

from fractions import Fraction

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError, OutputError
from .output_paths import cannot_write, temp_path_for
from .source import MAX_INPUT_PIXELS, MAX_OUTPUT_PIXELS

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
# PNG sample layouts Pillow loads as 8-bit (its raw mode says what the file holds), and the FFmpeg
# pixel format of each: channels interleaved, big-endian, as PNG stores them.
WIDE_PNG = {"RGB;16B": "rgb48be", "RGBA;16B": "rgba64be", "LA;16B": "ya16be"}
WIDE_CHANNELS = {"rgb48be": 3, "rgba64be": 4, "ya16be": 2}


IMAGE_FORMATS = {"PNG", "JPEG", "WEBP", "BMP", "TIFF"}  # what Pillow calls the formats above


def is_image(path: Path) -> bool:
    """A still image vidsr writes as PNG: by its name where that says so, else by its content (a
    file named otherwise, as a batch finds them). Animated pictures (GIF, APNG, animated WebP) are
    videos: FFmpeg decodes every frame with its time, where an image reader sees only the first."""
    try:
        with Image.open(path) as im:
            if getattr(im, "is_animated", False):
                return False
            named = path.suffix.lower() in IMAGE_SUFFIXES
            return named or im.format in IMAGE_FORMATS
    except (UnidentifiedImageError, OSError, ValueError):
        return path.suffix.lower() in IMAGE_SUFFIXES  # named so: reading it says what is wrong


def read_image(path: Path) -> tuple[np.ndarray, dict]:
    """(H, W, C) float32 in [0, 1] with C = 1 (grey), 2 (grey+alpha), 3 or 4, and save info."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    Image.MAX_IMAGE_PIXELS = MAX_INPUT_PIXELS
    try:
        with Image.open(path) as im:
            wide = WIDE_PNG.get(im.tile[0].args) if im.format == "PNG" and im.tile else None  # before load clears it
            im.load()
            if wide:
                return _read_wide_png(path, im)
            im = ImageOps.exif_transpose(im)
            info = {"icc_profile": im.info.get("icc_profile")}
            if im.width * im.height > MAX_INPUT_PIXELS:
                raise InputError(f"{path}: image size {im.width}x{im.height} is over the limit")
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32)[..., None] / 65535.0
                info["bits"] = 16
                return arr, info
            if im.mode == "F":  # 32-bit float grey (TIFF): black is 0 and white 1, the usual convention
                arr = np.asarray(im, dtype=np.float32)[..., None]
                low, high = float(np.nanmin(arr)), float(np.nanmax(arr))
                if not (np.isfinite(arr).all() and low >= -1e-3 and high <= 1 + 1e-3):
                    raise InputError(f"{path}: a float image must hold values from 0 (black) to 1 (white); "
                                     f"this one holds {low:g} to {high:g}")
                info["bits"] = 16
                return np.clip(arr, 0, 1), info
            mode = {"L": "L", "LA": "LA", "RGBA": "RGBA", "PA": "RGBA"}.get(im.mode, "RGBA" if "transparency" in im.info else "RGB")
            arr = np.asarray(im.convert(mode), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise InputError(f"{path}: not a readable image ({str(e).splitlines()[0]})") from None
    info["bits"] = 8
    if arr.ndim == 2:
        arr = arr[..., None]
    return arr, info


def _read_wide_png(path: Path, im: Image.Image) -> tuple[np.ndarray, dict]:
    """A 16-bit colour or grey+alpha PNG, decoded by FFmpeg; the decoded frame is kept to write the
    output from (it carries the ICC profile and colour tags)."""
    if im.width * im.height > MAX_INPUT_PIXELS:
        raise InputError(f"{path}: image size {im.width}x{im.height} is over the limit")
    try:
        with av.open(str(path)) as c:
            frame = list(c.decode(video=0))[0]
    except (av.error.FFmpegError, IndexError) as e:
        raise InputError(f"{path}: not a readable image ({e})") from None
    channels = WIDE_CHANNELS[frame.format.name]
    rows = np.frombuffer(frame.planes[0], np.uint8).reshape(frame.height, -1)  # lines may be padded
    arr = np.ascontiguousarray(rows[:, : frame.width * channels * 2]).view(">u2").reshape(frame.height, frame.width, channels).astype(np.float32) / 65535.0
    return _exif_oriented(arr, im), {"bits": 16, "frame": frame}


def _exif_oriented(arr: np.ndarray, im: Image.Image) -> np.ndarray:
    """``arr`` turned as Pillow's exif_transpose turns ``im``: applied to a map of pixel indices."""
    h, w = arr.shape[:2]
    index = Image.fromarray(np.arange(h * w, dtype=np.int32).reshape(h, w))
    index.info["exif"] = im.getexif().tobytes()
    return arr.reshape(h * w, -1)[np.asarray(ImageOps.exif_transpose(index))]


def _encode_wide_png(arr: np.ndarray, frame: av.VideoFrame) -> bytes:
    """16-bit PNG bytes from FFmpeg's encoder. The frame to encode is the source's own, reformatted
    (which copies its properties: the ICC profile, colour tags), with our samples written in."""
    h, w, channels = arr.shape
    fmt = next(f for f, n in WIDE_CHANNELS.items() if n == channels)
    samples = np.ascontiguousarray(np.round(np.clip(arr, 0, 1) * 65535), dtype=">u2").view(np.uint8).reshape(h, w * channels * 2)
    out = frame.reformat(width=w, height=h, format=fmt, interpolation="POINT")
    np.frombuffer(out.planes[0], np.uint8).reshape(h, -1)[:, : w * channels * 2] = samples
    encoder = av.CodecContext.create("png", "w")
    encoder.width, encoder.height, encoder.pix_fmt, encoder.time_base = w, h, fmt, Fraction(1, 1)
    return b"".join(bytes(p) for p in encoder.encode(out) + encoder.encode(None))


def _with_text(png: bytes, text: dict[str, str]) -> bytes:
    """PNG bytes with tEXt chunks added after the header chunk (FFmpeg's encoder writes none)."""
    import struct
    import zlib

    chunks = b""
    for k, v in text.items():
        body = b"tEXt" + k.encode("latin-1") + b"\0" + v.encode("latin-1")
        chunks += struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    ihdr_end = 8 + 8 + 13 + 4  # signature, IHDR length + type, IHDR data, CRC
    return png[:ihdr_end] + chunks + png[ihdr_end:]


def write_png(path: Path, arr: np.ndarray, info: dict, text: dict[str, str] | None = None) -> None:
    """Write atomically: a temporary file beside ``path``, renamed when complete. ``text``: PNG
    text chunks (the delivery tag)."""
    wide = info.get("bits") == 16 and arr.shape[-1] != 1
    if info.get("bits") == 16 and arr.shape[-1] == 1:
        im = Image.fromarray(np.round(arr[..., 0] * 65535).astype(np.uint16))
    elif not wide:
        data = np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)
        im = Image.fromarray(data[..., 0] if data.shape[-1] == 1 else data)
    tmp = temp_path_for(path)
    try:
        if wide:
            data = _encode_wide_png(arr, info["frame"])
            tmp.write_bytes(_with_text(data, text) if text else data)
        else:
            chunks = None
            if text:
                from PIL.PngImagePlugin import PngInfo

                chunks = PngInfo()
                for k, v in text.items():
                    chunks.add_text(k, v)
            im.save(tmp, format="PNG", icc_profile=info.get("icc_profile"), pnginfo=chunks)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # a folder we could not write to holds no partial file
        if isinstance(e, OSError):
            raise cannot_write(path, e) from None
        raise


def upscale_image(engine, src: Path, dst: Path, budget, delivery=None, warn=None):
    """Upscale one image file with ``engine`` under ``budget`` and write a PNG; returns the
    engine's stats. ``delivery``: the file's delivery tag, when upscaled at its scale (the output
    is cropped to the source's size)."""
    import torch

    from ..colour import upscale_colour

    if dst.suffix.lower() != ".png":
        raise OutputError(f"{dst}: images are written as PNG; name the output .png")
    arr, info = read_image(src)
    s = engine.scale
    h, w = arr.shape[:2]
    if h * w * s * s > MAX_OUTPUT_PIXELS:
        raise InputError(f"{src}: output would be {w * s}x{h * s}, over the limit")
    device, dtype = engine.upscaler.device, engine.upscaler.dtype
    t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None].to(device, dtype)  # (1, C, H, W)
    out, stats = upscale_colour(lambda y: engine.upscale(y, budget), t, s, rgb=t.shape[1] >= 3)
    crop = delivery.crop(w * s, h * s, warn) if delivery is not None else None
    if crop is not None:
        out = out[..., : crop[1], : crop[0]]
    write_png(dst, out[0].clamp(0, 1).permute(1, 2, 0).float().cpu().numpy(), info)
    return stats
