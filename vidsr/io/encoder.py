"""The video encoder's options, checked against what the encoder knows, and the encoder opened
before any frame is decoded, so a bad setting is one clear line instead of a failure mid-run.

Rules: ``--crf`` outside the encoder's scale is refused (x264/x265 would clamp it silently); an
``--encoder-opt`` the encoder does not know is refused (FFmpeg would ignore it silently), as is a
key of ``x264-params``/``x265-params``/``svtav1-params`` the library rejects (it only logs that);
HDR10 static metadata goes into the library's own parameters (``hdr``); a frame smaller than the
encoder can take safely (``MIN_SIDE``) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import av
import av.error
import av.logging

from ..errors import SettingsError
from .formats import subsampled
from .hdr import HdrMetadata

QUIET_OPTIONS = {"libx265": {"x265-params": "log-level=error"}}
# Options that hold "key=value:key=value" for the library, which parses them itself.
PARAMS_OPTION = {"libx264": "x264-params", "libx265": "x265-params", "libsvtav1": "svtav1-params"}
# x264 and x265 take any number for crf (their FFmpeg option has no bounds) and clamp it to 51.
CRF_SCALE = {"libx264": (0, 51), "libx265": (0, 51)}
# What the libraries log when they skip a parameter they cannot parse.
REJECTED_PARAM_LOGS = ("Error parsing option", "Unknown option", "Invalid value")
# The smallest side an encoder is given. The x265 in PyAV's wheels writes past its buffers on frames
# under 64 pixels a side (found at 48x40 and 40x72; glibc aborts, or the process goes on corrupted),
# so those sizes are refused rather than risked.
MIN_SIDE = {"libx265": 64}


@dataclass
class EncodeOptions:
    codec: str | None = None  # None: libx264, or the container's own encoder (sink.video_encoder_for)
    crf: int | None = None  # None: the encoder's default quality
    pix_fmt: str | None = None
    options: dict = field(default_factory=dict)  # --encoder-opt KEY=VALUE


def crf_scale(codec: av.Codec) -> tuple[float, float] | None:
    """The crf values an encoder uses, or None when it has no crf."""
    ctx = av.CodecContext.create(codec, "w")
    option = next((o for o in ctx.supported_options.private if o.name == "crf"), None)
    if option is None:
        return None
    return CRF_SCALE.get(codec.name, (max(option.min, 0), option.max))


def parse_params(text: str) -> dict[str, str]:
    items = (item.partition("=") for item in text.split(":") if item)
    return {k: v for k, _, v in items}


def build_options(codec: av.Codec, enc: EncodeOptions, hdr: HdrMetadata | None, warn) -> dict[str, str]:
    options = dict(QUIET_OPTIONS.get(codec.name, {}))
    if enc.crf is not None:
        scale = crf_scale(codec)
        if scale is None:
            warn(f"--crf does not apply to {codec.name}; ignored")
        elif not scale[0] <= enc.crf <= scale[1]:
            raise SettingsError(f"--crf {enc.crf} is outside {codec.name}'s scale {scale[0]:g}..{scale[1]:g}")
        else:
            options["crf"] = str(enc.crf)
    params_key = PARAMS_OPTION.get(codec.name)
    params = parse_params(options.pop(params_key, "")) if params_key else {}
    for key, value in enc.options.items():
        if key == params_key:
            params.update(parse_params(value))  # merged, so our quiet log level stays unless overridden
        else:
            options[key] = value
    if hdr is not None:
        extra = hdr.encoder_params(codec.name)
        if extra is None:
            warn(f"{codec.name} cannot carry the source's HDR10 mastering display / light level metadata "
                 "(x264, x265 and SVT-AV1 can); the output keeps the HDR transfer and primaries without it")
        else:
            for key, value in extra.items():
                params.setdefault(key, value)  # the user's own value wins
    if params:
        options[params_key] = ":".join(f"{k}={v}" for k, v in params.items())
    return options


def open_encoder(stream) -> None:
    """Open the video encoder now, turning every way it can refuse into a ``SettingsError``."""
    cc = stream.codec_context
    name = cc.codec.name
    if min(cc.width, cc.height) < MIN_SIDE.get(name, 0):
        raise SettingsError(f"{name} cannot encode {cc.width}x{cc.height} here: the x265 in this build corrupts memory "
                            f"on frames under {MIN_SIDE[name]} pixels a side; use libx264 or libsvtav1 for frames this small")
    level = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)  # so the capture sees the libraries' warnings
    try:
        with av.logging.Capture() as logs:
            try:
                cc.open(strict=False)
            except av.error.FFmpegError as e:
                raise SettingsError(_why_not_opened(name, cc, e, logs)) from None
    finally:
        av.logging.set_level(level)
    if cc.options:  # what avcodec_open2 did not take: options neither FFmpeg nor the encoder has
        unknown = ", ".join(sorted(cc.options))
        own = sorted(o.name for o in cc.supported_options.private)
        listed = ", ".join(own[:20]) + (", ..." if len(own) > 20 else "")
        raise SettingsError(f"{name} has no option {unknown} (--encoder-opt); its own options: {listed or 'none'}")
    rejected = [msg.strip() for _, _, msg in logs if msg.startswith(REJECTED_PARAM_LOGS)]
    if rejected:
        raise SettingsError(f"{name} rejected {PARAMS_OPTION.get(name, 'an option')}: {rejected[0]}")


def _why_not_opened(name: str, cc, error, logs) -> str:
    """The reason an encoder gave up on opening, in words (a failed open leaves no codec on ``cc``)."""
    w, h, fmt = cc.width, cc.height, cc.pix_fmt
    if subsampled(fmt) and (w % 2 or (fmt.startswith("yuv420p") and h % 2)):
        need = "even width and height" if fmt.startswith("yuv420p") else "an even width"
        return (f"{name} cannot encode {w}x{h} in {fmt}: its chroma subsampling needs {need}; "
                f"use --pix-fmt {'yuv444p' + fmt[7:]} (or a size that is even)")
    said = [msg.strip() for lvl, _, msg in logs if lvl <= av.logging.ERROR and msg.strip()]
    # the first line gives the reason; what follows may be a list it introduces (DNxHD lists every
    # valid profile, and its last entry read as if it were the output's settings)
    return f"{name} refused its settings: {said[0].rstrip(':') if said else error}"
