"""Still images: PNG/JPEG/WebP in, PNG out, through the same engine."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from .conftest import no_partial_files
from .media import pattern


@pytest.mark.parametrize("suffix,mode", [(".png", "RGB"), (".jpg", "RGB"), (".webp", "RGB"), (".png", "RGBA"), (".png", "L")])
def test_image_in_png_out(cli, tmp_path, suffix, mode):
    rgb = pattern(3, 30, 41)
    im = Image.fromarray(rgb)
    if mode == "RGBA":
        im = im.convert("RGBA")
        im.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, 41, dtype=np.uint8), (30, 1))))
    elif mode == "L":
        im = im.convert("L")
    src = tmp_path / f"photo{suffix}"
    im.save(src)
    dst = tmp_path / "big.png"
    r = cli(src, "--scale", 2, "-o", dst, "--model", "lanczos")
    assert r.code == 0, r.err
    out = Image.open(dst)
    assert out.size == (82, 60)
    assert out.mode == mode
    # Lanczos upscaling of the same image, done by PIL, is close (colour round trip, kernels)
    ref = np.asarray(Image.open(src).convert(mode).resize((82, 60), Image.Resampling.LANCZOS), dtype=np.float32)
    diff = np.abs(np.asarray(out, dtype=np.float32) - ref)[4:-4, 4:-4]
    if mode == "RGBA":  # PIL resamples premultiplied, we keep colour and alpha apart: compare opaque parts
        diff = diff[:, 40:]
    assert diff.mean() < 1.0


def test_default_image_output_name(cli, tmp_path):
    src = tmp_path / "shot.png"
    Image.fromarray(pattern(0, 20, 20)).save(src)
    assert cli(src, "--model", "bicubic", "--scale", 3, "--quiet").code == 0
    assert Image.open(tmp_path / "shot_x3.png").size == (60, 60)
    assert no_partial_files(tmp_path)


def test_image_output_must_be_png(cli, tmp_path):
    src = tmp_path / "shot.png"
    Image.fromarray(pattern(0, 20, 20)).save(src)
    r = cli(src, "-o", tmp_path / "x.jpg", "--model", "bicubic")
    assert r.code == 2 and "PNG" in r.error_lines[0]
    assert not (tmp_path / "x.jpg").exists()


def test_broken_image_is_refused(cli, tmp_path):
    src = tmp_path / "broken.png"
    src.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    r = cli(src, "-o", tmp_path / "o.png", "--model", "bicubic")
    assert r.code == 2 and "not a readable image" in r.error_lines[0]
    assert not (tmp_path / "o.png").exists()


def test_default_image_and_video_runs_use_the_shipped_network(cli, tmp_path, media):
    from vidsr.models import registry

    name = registry.default_model(2)
    if name == "lanczos":
        pytest.skip("no network ships for x2")
    src = tmp_path / "shot.png"
    Image.fromarray(pattern(5, 40, 48)).save(src)
    assert cli(src, "-o", tmp_path / "net.png", "--quiet").code == 0
    assert cli(src, "-o", tmp_path / "lz.png", "--model", "lanczos", "--quiet").code == 0
    net = np.asarray(Image.open(tmp_path / "net.png"), dtype=np.float32)
    lz = np.asarray(Image.open(tmp_path / "lz.png"), dtype=np.float32)
    assert np.abs(net - lz).mean() > 0.5  # the network, not interpolation, made this
    stats = tmp_path / "s.jsonl"
    r = cli(media["cfr.mp4"], "-o", tmp_path / "v.mp4", "--stats", stats)
    assert r.code == 0, r.err
    import json

    record = json.loads(stats.read_text().splitlines()[0])
    assert record["macs_per_pixel"] == pytest.approx(registry.load(name, 2).descriptor.macs_per_pixel, rel=1e-3)


@pytest.mark.parametrize("channels,rawmode", [(3, "RGB;16B"), (4, "RGBA;16B"), (2, "LA;16B")])
def test_sixteen_bit_colour_png_stays_sixteen_bit(cli, tmp_path, channels, rawmode):
    """Pillow loads 16-bit colour and grey+alpha PNG as 8-bit; the output must keep all 16 bits."""
    from .media import png16, read_png16

    yy, xx = np.mgrid[0:24, 0:32]
    ramp = (xx * 2000 + yy * 37).astype(np.uint16)  # smooth, and most values not multiples of 257
    alpha = np.full_like(ramp, 50000)
    src_array = np.stack({2: [ramp, alpha], 3: [ramp, ramp[::-1], ramp[:, ::-1]], 4: [ramp, ramp[::-1], ramp[:, ::-1], alpha]}[channels], -1)
    src = tmp_path / "deep.png"
    src.write_bytes(png16(src_array))
    dst = tmp_path / "deep_x2.png"
    r = cli(src, "-o", dst, "--model", "lanczos", "--quiet")
    assert r.code == 0, r.err
    assert Image.open(dst).tile[0].args == rawmode  # 16 bits per sample in the file
    out = read_png16(dst)
    assert out.shape == (48, 64, channels)
    assert (out % 257 != 0).mean() > 0.5  # real 16-bit values, not 8-bit ones widened
    # each 2x2 block of the output averages to its source pixel (Lanczos x2 reproduces smooth ramps)
    blocks = out.reshape(24, 2, 32, 2, channels).mean(axis=(1, 3))
    assert np.abs(blocks - src_array)[4:-4, 4:-4].mean() < 150


def test_sixteen_bit_png_keeps_icc_profile_and_exif_orientation(cli, tmp_path):
    from PIL import ImageCms

    from .media import png16, read_png16, with_png_chunk

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: shown turned 90 degrees clockwise
    data = np.zeros((16, 40, 3), np.uint16)
    data[:, :20] = 60000  # the left half bright
    import zlib

    png = with_png_chunk(png16(data), b"iCCP", b"sRGB\0\0" + zlib.compress(icc))
    png = with_png_chunk(png, b"eXIf", exif.tobytes()[6:])  # the TIFF data, without JPEG's "Exif\0\0"
    src = tmp_path / "turned.png"
    src.write_bytes(png)
    assert Image.open(src).info.get("icc_profile") == icc
    dst = tmp_path / "turned_x2.png"
    assert cli(src, "-o", dst, "--model", "lanczos", "--quiet").code == 0
    out = read_png16(dst)
    assert out.shape == (80, 32, 3)  # turned upright
    assert out[:30].mean() > 50000 and out[50:].mean() < 5000  # the bright half is now on top
    assert Image.open(dst).info.get("icc_profile") == icc


@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_an_animated_picture_is_a_video_every_frame_kept(cli, tmp_path, suffix):
    import av

    pictures = [Image.fromarray(pattern(i, 24, 32)) for i in range(3)]
    src = tmp_path / f"anim{suffix}"
    pictures[0].save(src, save_all=True, append_images=pictures[1:], duration=100, loop=0)
    r = cli(src, "-o", tmp_path / "anim.mkv", "--model", "bicubic", "--quiet")
    assert r.code == 0, r.err
    with av.open(str(tmp_path / "anim.mkv")) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == 3 and (frames[0].width, frames[0].height) == (64, 48)
    assert [round(float(f.pts * f.time_base), 3) for f in frames] == [0.0, 0.1, 0.2]
    # written back as the same kind of picture: an animated one, every frame in it
    r = cli(src, "-o", tmp_path / f"big{suffix}", "--model", "bicubic", "--quiet")
    assert r.code == 0, r.err
    with Image.open(tmp_path / f"big{suffix}") as im:
        assert im.n_frames == 3 and im.size == (64, 48)


def test_a_float_image_is_read_from_black_at_0_to_white_at_1(cli, tmp_path):
    ramp = np.tile(np.linspace(0, 1, 40, dtype=np.float32), (20, 1))
    Image.fromarray(ramp).save(tmp_path / "ramp.tif")
    r = cli(tmp_path / "ramp.tif", "-o", tmp_path / "big.png", "--model", "bicubic")
    assert r.code == 0, r.err
    out = np.asarray(Image.open(tmp_path / "big.png"), dtype=np.float64) / 65535
    assert out.shape == (40, 80)
    assert np.abs(out[:, 4:-4] - np.repeat(ramp, 2, 1)[:20].repeat(2, 0)[:, 4:-4]).mean() < 0.01  # the ramp, not black
    # values on another scale are not guessed at
    Image.fromarray(ramp * 255).save(tmp_path / "scaled.tif")
    r = cli(tmp_path / "scaled.tif", "-o", tmp_path / "no.png", "--model", "bicubic")
    assert r.code == 2 and "from 0 (black) to 1 (white)" in r.err and not (tmp_path / "no.png").exists()
