"""Regenerate samples/pan.mp4: a camera pan-and-zoom over a photograph, with a generated audio
track, encoded with PyAV. The photograph is one of the shared training images (plasma-EveningGlow,
from Debian's plasma-workspace-wallpapers, GPL-2+ / CC-BY-SA-4.0); the clip is small (480x270,
4 s, 30 fps) so the README's first command runs in seconds on a laptop.

    python samples/make_sample.py [--photo PATH] [--size 480x270] [--seconds 4] [-o samples/pan.mp4]
"""

from __future__ import annotations

import argparse
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
# the training photograph the sample pans over: ../shared/data beside the checkout, or $VIDSR_DATA
DEFAULT_PHOTO = (Path(os.environ["VIDSR_DATA"]) if os.environ.get("VIDSR_DATA") else HERE.parent.parent / "shared" / "data") \
    / "train" / "plasma-EveningGlow.jpg"


def camera_path(t: float) -> tuple[float, float, float]:
    """Centre (x, y as fractions of the photo) and zoom (fraction of the photo's width) at ``t`` in
    [0, 1]: a slow diagonal pan that zooms in, eased at both ends."""
    e = 0.5 - 0.5 * np.cos(np.pi * t)
    return 0.35 + 0.3 * e, 0.45 + 0.1 * e, 0.55 - 0.2 * e


def render(photo: Image.Image, size: tuple[int, int], seconds: float, fps: int):
    w, h = size
    n = int(round(seconds * fps))
    for i in range(n):
        cx, cy, zoom = camera_path(i / max(1, n - 1))
        cw = zoom * photo.width
        ch = cw * h / w
        box = (cx * photo.width - cw / 2, cy * photo.height - ch / 2, cx * photo.width + cw / 2, cy * photo.height + ch / 2)
        # Antialiased resampling of a sub-pixel box: smooth camera motion, no aliasing.
        yield np.asarray(photo.resize((w, h), Image.Resampling.LANCZOS, box=box, reducing_gap=None))


def audio_track(seconds: float, rate: int = 48000) -> np.ndarray:
    """A soft chord with a slow swell, stereo float32 (2, samples)."""
    t = np.arange(int(seconds * rate)) / rate
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63)) / 3
    env = 0.25 * (0.6 + 0.4 * np.sin(2 * np.pi * 0.25 * t))
    left = chord * env
    right = np.roll(left, 240)  # 5 ms delay: a little width
    return np.stack([left, right]).astype(np.float32)


def make(photo_path: Path, out: Path, size=(480, 270), seconds=4.0, fps=30, crf=20) -> Path:
    photo = Image.open(photo_path).convert("RGB")
    container = av.open(str(out), "w", options={"movflags": "faststart"})
    video = container.add_stream("libx264", rate=fps, options={"crf": str(crf), "preset": "slow"})
    video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
    cc = video.codec_context
    cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 6, 6, 6, 1  # BT.601, limited range
    audio = container.add_stream("aac", rate=48000, layout="stereo")
    container.metadata["title"] = "vidsr sample: pan over a lake at dusk"
    for i, rgb in enumerate(render(photo, size, seconds, fps)):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame = frame.reformat(format="yuv420p", dst_colorspace="ITU601", dst_color_range="MPEG")
        frame.pts, frame.time_base = i, Fraction(1, fps)
        for p in video.encode(frame):
            container.mux(p)
    for p in video.encode():
        container.mux(p)
    samples = audio_track(seconds)
    n = audio.codec_context.frame_size or 1024
    for start in range(0, samples.shape[1], n):
        chunk = np.ascontiguousarray(samples[:, start : start + n])
        af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
        af.sample_rate, af.pts = 48000, start
        for p in audio.encode(af):
            container.mux(p)
    for p in audio.encode():
        container.mux(p)
    container.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    ap.add_argument("--size", default="480x270")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("-o", "--output", type=Path, default=HERE / "pan.mp4")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    out = make(a.photo, a.output, (w, h), a.seconds, a.fps)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
