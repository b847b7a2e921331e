"""The sharpened Lanczos base (``vidsr.models.sharpen``): its fit, what it does to a plane, how it
corrects a router's table, and that a video's interpolated tiles take it."""

from __future__ import annotations

import shutil

import av
import numpy as np
import pytest
import torch

from vidsr.budget import MacBudget
from vidsr.errors import WeightsError
from vidsr.metrics import psnr
from vidsr.models import registry, weights
from vidsr.models.interpolation import downscale, upscale
from vidsr.models.sharpen import TAPS, SharpBase
from vidsr.routing.edge import EdgePSNRTable
from vidsr.train.data import make_pair
from vidsr.train.sharpen import fit_taps, gain_table, sharp_output

from .synthetic import synthetic_arm
from vidsr.engine import Engine
from vidsr.routing import build_router


def textured(seed: int, size: int = 192) -> torch.Tensor:
    """A (size, size) luma plane in [0, 1] with detail at every scale (smoothed noise octaves)."""
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(1, 1, size, size)
    for octave in (4, 8, 16, 32, 64):
        n = torch.rand(1, 1, octave, octave, generator=g)
        out += torch.nn.functional.interpolate(n, size=(size, size), mode="bicubic", align_corners=False) / 5
    return out[0, 0].clamp(0, 1)


def base_with(taps, gain_db: float = 1.0) -> SharpBase:
    edges = torch.tensor([0.0, 10.0, 20.0, float("inf")])
    rows = torch.tensor([[40.0, 35.0, 30.0], [40.0 + gain_db, 35.0 + gain_db, 30.0 + gain_db]])
    return SharpBase(2, torch.tensor(taps, dtype=torch.float32), EdgePSNRTable(edges, rows, ("bicubic", "sharp")))


def test_the_fitted_prefilter_beats_lanczos_on_images_it_was_not_fitted_on():
    train = [make_pair(f"t{i}", textured(i), 2) for i in range(4)]
    held_out = make_pair("v", textured(99), 2)
    taps, singular = fit_taps(train, 2)
    assert taps.shape == (TAPS,) and abs(float(taps.sum()) - 1) < 1e-5
    assert float(taps[TAPS // 2]) > 1  # a sharpening filter: the centre above one, negative lobes beside it
    lanczos = psnr(upscale(held_out.lr[None, None], 2, "lanczos")[0, 0].clamp(0, 1), held_out.hr, 2)
    sharp = psnr(sharp_output(held_out.lr, 2, taps), held_out.hr, 2)
    assert sharp > lanczos + 0.2


def test_an_identity_prefilter_leaves_swscale_lanczos_and_a_flat_plane_keeps_its_level():
    plane = (np.random.default_rng(0).random((36, 52)) * 200 + 20).astype(np.uint8)
    identity = base_with([0, 0, 0, 1, 0, 0, 0])
    expected = av.VideoFrame.from_ndarray(plane, format="gray").reformat(width=104, height=72, interpolation="LANCZOS")
    assert np.array_equal(identity.upscale(plane, 8, 104, 72), expected.to_ndarray())
    sharp = base_with([-0.03, 0.1, -0.2, 1.26, -0.2, 0.1, -0.03])
    flat = np.full((20, 30), 700, dtype=np.uint16)
    out = sharp.upscale(flat, 10, 60, 40)
    assert out.dtype == np.uint16 and out.shape == (40, 60) and np.all(np.abs(out.astype(int) - 700) <= 1)
    # overshoot at a hard edge is clamped to the plane's bits, not wrapped
    edge = np.zeros((20, 30), dtype=np.uint16)
    edge[:, 15:] = 1023
    pre = sharp.prefilter(edge, 10)
    assert pre.max() == 1023 and pre.min() == 0


def test_the_folded_swscale_pass_agrees_with_prefilter_then_lanczos_to_rounding():
    """One swscale pass with the taps in its coefficients against the torch prefilter, rounded, then
    swscale's Lanczos: they differ only by that rounding (and by the prefiltered plane's clamp)."""
    sharp = base_with([-0.03, 0.1, -0.2, 1.26, -0.2, 0.1, -0.03])
    if sharp.folded is None:
        pytest.skip("PyAV here ships no libswscale of its own")
    rng = np.random.default_rng(1)
    for bits, dtype in ((8, np.uint8), (10, np.uint16), (11, np.uint16), (12, np.uint16)):
        peak = (1 << bits) - 1
        plane = (textured(3, 96).numpy() * (peak * 0.8) + peak * 0.1).astype(dtype)[:, :75]  # odd width, a strided view
        folded, two_pass = sharp.upscale(plane, bits, 150, 192), sharp.two_pass_upscale(plane, bits, 150, 192)
        assert folded.dtype == dtype and folded.shape == (192, 150)
        diff = np.abs(folded.astype(int) - two_pass)
        assert diff.mean() < 0.5 * (1 << (bits - 8)) and np.quantile(diff, 0.999) <= 2 * (1 << (bits - 8))
        # hard edges at the extremes: overshoot is clamped to the plane's bits
        edges = (rng.random((30, 40)) > 0.5).astype(dtype) * peak
        out = sharp.upscale(edges, bits, 80, 60)
        assert out.max() == peak and out.min() == 0


def test_without_a_folded_scaler_the_base_takes_the_two_passes(monkeypatch):
    sharp = base_with([-0.03, 0.1, -0.2, 1.26, -0.2, 0.1, -0.03])
    monkeypatch.setattr(type(sharp), "folded", None)
    plane = (textured(4, 64).numpy() * 200 + 20).astype(np.uint8)
    assert np.array_equal(sharp.upscale(plane, 8, 128, 128), sharp.two_pass_upscale(plane, 8, 128, 128))


def test_the_corrected_table_raises_only_the_interpolation_row_by_the_gain_at_each_bin():
    base = base_with([0, 0, 0, 1, 0, 0, 0], gain_db=1.5)
    edges = torch.tensor([0.0, 8.0, 16.0, 24.0, float("inf")])
    table = EdgePSNRTable(edges, torch.tensor([[40.0, 36.0, 32.0, 28.0], [45.0, 41.0, 37.0, 33.0]]), ("bicubic", "w8"))
    corrected = base.corrected_table(table)
    assert torch.allclose(corrected.psnr[0], table.psnr[0] + 1.5)
    assert torch.equal(corrected.psnr[1], table.psnr[1])
    assert torch.equal(table.psnr[0], torch.tensor([40.0, 36.0, 32.0, 28.0]))  # the model's own is left alone


def test_the_gain_table_measures_the_base_against_bicubic_per_edge_bin():
    pairs = [make_pair("v", textured(7, 256), 2)]
    taps, _ = fit_taps([make_pair(f"t{i}", textured(i), 2) for i in range(3)], 2)
    table = gain_table(pairs, 2, taps, patch=32)
    assert table.routes == ("bicubic", "sharp")
    assert float((table.psnr[1] - table.psnr[0]).mean()) > 0


def test_every_shipped_scale_has_a_base_that_loads_and_a_tampered_one_is_refused(tmp_path):
    for scale in registry.SCALES:
        base = registry.load_sharp_base(scale)
        assert base is not None and base.scale == scale and abs(float(base.taps.sum()) - 1) < 1e-4
    entry = next(e for e in weights.read_manifest(registry.SHIPPED_DIR, "bases") if e["scale"] == 2)
    shutil.copyfile(registry.SHIPPED_DIR / entry["file"], tmp_path / entry["file"])
    weights.write_manifest(tmp_path, [entry], "bases")
    assert registry.load_sharp_base(2, tmp_path) is not None
    data = bytearray((tmp_path / entry["file"]).read_bytes())
    data[-3] ^= 0x01
    (tmp_path / entry["file"]).write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="does not match its manifest"):
        registry.load_sharp_base(2, tmp_path)


def _arm_engine():
    up = synthetic_arm(randomized=True)
    return Engine(up, router=build_router(up, "auto"))


def test_a_video_planes_interpolated_tiles_take_the_sharp_base_made_from_the_plane():
    plane = (downscale(textured(3, 256)[None, None], 2)[0, 0] * 219 + 16).round().to(torch.uint8).numpy()
    swscale_base = np.full((256, 256), 128, dtype=np.uint8)  # what the pipeline's swscale made
    engine = _arm_engine()
    out, _ = engine.upscale_plane(plane, 8, budget=MacBudget(0.0), base=swscale_base)
    assert np.array_equal(out, swscale_base)  # no sharp base: the caller's
    base = base_with([-0.03, 0.1, -0.2, 1.26, -0.2, 0.1, -0.03])
    engine.use_sharp_base(base)
    out, _ = engine.upscale_plane(plane, 8, budget=MacBudget(0.0), base=swscale_base)
    assert np.array_equal(out, base.upscale(plane, 8, 256, 256))
    # another output depth than the input's: the sharp base (made at the input's) is not used
    out16, _ = engine.upscale_plane(plane, 8, budget=MacBudget(0.0), base=swscale_base.astype(np.uint16) * 4, out_bits=10)
    assert np.array_equal(out16, swscale_base.astype(np.uint16) * 4)


def test_a_base_the_table_says_is_better_than_every_network_route_buys_no_network_tile():
    plane = (downscale(textured(5, 256)[None, None], 2)[0, 0] * 219 + 16).round().to(torch.uint8).numpy()
    engine = _arm_engine()
    _, stats = engine.upscale_plane(plane, 8, budget=MacBudget(0.5), base=np.zeros((256, 256), np.uint8))
    assert stats.route_shares["bicubic"] < 1  # bicubic as the table has it: the networks gain
    engine.use_sharp_base(base_with([0, 0, 0, 1, 0, 0, 0], gain_db=40.0))
    _, stats = engine.upscale_plane(plane, 8, budget=MacBudget(0.5), base=np.zeros((256, 256), np.uint8))
    assert stats.route_shares == {"sharp": 1.0, "w8": 0.0, "w16": 0.0}  # named as what the tiles show
    # the float path (images, VapourSynth) has no sharp base and keeps the model's own table
    x = torch.from_numpy(plane).float()[None, None] / 255
    _, stats = engine.upscale(x, MacBudget(0.5))
    assert stats.route_shares["bicubic"] < 1


def test_a_sharp_base_needs_a_router_that_leaves_tiles_to_the_callers_base():
    up = synthetic_arm()
    with pytest.raises(ValueError, match="fills from the base"):
        Engine(up).use_sharp_base(base_with([0, 0, 0, 1, 0, 0, 0]))


def test_a_routed_video_shows_the_sharp_base_where_no_network_runs_and_no_sharpen_gives_lanczos(cli, tmp_path):
    from vidsr.io.formats import plane_view

    from .media import Spec, make_video, video_frames

    src = make_video(tmp_path / "in.mp4", Spec(width=96, height=64, frames=4))
    base = registry.load_sharp_base(2)
    inputs = video_frames(src)
    for flags, expected in (((), lambda f: base.upscale(plane_view(f, 0), 8, 192, 128)),
                            (("--no-sharpen",), lambda f: plane_view(
                                f.reformat(width=192, height=128, interpolation="LANCZOS"), 0))):
        dst = tmp_path / f"out{len(flags)}.mkv"  # lossless, so the planes compare exactly
        r = cli(src, "-o", dst, "--model", "arm-plain", "--budget", 0, "--codec", "ffv1", *flags)
        assert r.code == 0, r.err
        outs = video_frames(dst)
        assert len(outs) == len(inputs)
        for f_in, f_out in zip(inputs, outs):
            assert np.array_equal(plane_view(f_out, 0), expected(f_in))
