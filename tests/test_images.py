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
