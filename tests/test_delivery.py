"""Delivery: the codec stand-in, the learned downscaler and HCD against the shipped upscalers, the
tag that makes `vidsr OUTPUT` pick the model, and the `vidsr downscale` front end's refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vidsr.delivery import codec_proxy, tags
from vidsr.delivery.downscale import FrameDownscaler, default_upscaler
from vidsr.delivery.hcd import HCDRefiner, HCDSettings
from vidsr.errors import WeightsError
from vidsr.models import registry, weights
from vidsr.models.downscaler import LearnedDownscaler, bicubic_downscale, lr_size

from .conftest import run_vidsr
from .media import Spec, make_video, video_frames

SHIPPED = registry.shipped_downscalers()


def textured(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(1, 1, h, w) luma with edges and texture, in the studio range."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    base = 0.5 + 0.25 * torch.sin(x / 3.0) * torch.cos(y / 5.0) + 0.1 * (x > w // 2)
    return (base + 0.05 * torch.rand(h, w, generator=g)).clamp(16 / 255, 235 / 255)[None, None]


# -- codec stand-in ---------------------------------------------------------------------------

def test_codec_rounds_alone_at_qstep_zero_and_loses_more_with_larger_steps():
    x = textured(40, 56)
    assert (codec_proxy.codec(x, 0.0) * 255 - torch.round(x * 255)).abs().max() < 1e-3
    errors = [float((codec_proxy.codec(x, q) - x).square().mean()) for q in (2.0, 8.0, 32.0)]
    assert errors[0] < errors[1] < errors[2]


def test_codec_passes_gradients_straight_through():
    x = textured(24, 24).requires_grad_(True)
    codec_proxy.codec(x, torch.tensor([12.0])).sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x), atol=1e-4)


def test_rate_grows_with_detail_and_falls_with_the_step():
    flat, busy = torch.full((1, 1, 32, 32), 0.5), textured(32, 32)
    assert float(codec_proxy.rate(busy, 8.0)) > float(codec_proxy.rate(flat, 8.0))
    assert float(codec_proxy.rate(busy, 4.0)) > float(codec_proxy.rate(busy, 16.0))


# -- the downscaler ---------------------------------------------------------------------------

@pytest.mark.parametrize("h,w,s", [(37, 50, 2), (33, 19, 4), (32, 48, 2)])
def test_downscaled_size_keeps_every_source_pixel(h, w, s):
    x = torch.rand(1, 1, h, w)
    out = LearnedDownscaler(s)(x)
    assert tuple(out.shape[-2:]) == lr_size(h, w, s) == (-(-h // s), -(-w // s))
    # the last row and column of an odd size are the source's edge, replicated
    assert torch.allclose(out, bicubic_downscale(x, s))


def test_an_untrained_downscaler_is_the_bicubic_one():
    x = torch.rand(1, 1, 24, 32)
    assert torch.allclose(LearnedDownscaler(2)(x), bicubic_downscale(x, 2))


@pytest.mark.skipif(not SHIPPED, reason="no downscaler ships")
@pytest.mark.parametrize("entry", SHIPPED, ids=lambda e: f"{e['upscaler']}-x{e['scale']}")
def test_gradients_reach_every_downscaler_parameter_through_the_upscaler(entry):
    net = registry.load_downscaler(entry).train()
    up = registry.load(entry["upscaler"], entry["scale"])
    hr = textured(64, 64)
    loss = (up.differentiable(codec_proxy.codec(net(hr), 10.0)) - hr).square().mean()
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0 and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("entry", registry.shipped_models(), ids=lambda e: f"{e['name']}-x{e['scale']}")
def test_every_shipped_upscaler_has_a_differentiable_full_path(entry):
    up = registry.load(entry["name"], entry["scale"])
    x = (torch.rand(1, 1, 24, 24) * 0.5 + 0.25).requires_grad_(True)
    up.differentiable(x).square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    on_path = [p for p in up.module.parameters() if p.grad is not None]
    assert on_path and all(torch.isfinite(p.grad).all() for p in on_path)


@pytest.mark.skipif(not SHIPPED, reason="no downscaler ships")
def test_a_tampered_downscaler_file_is_refused(tmp_path):
    entry = dict(SHIPPED[0])
    shutil.copy(Path(entry["folder"]) / entry["file"], tmp_path / entry["file"])
    weights.write_manifest(tmp_path, [entry], "downscalers")
    data = bytearray((tmp_path / entry["file"]).read_bytes())
    data[-5] ^= 0x40
    (tmp_path / entry["file"]).write_bytes(bytes(data))
    loaded = registry.downscaler_entry(entry["upscaler"], entry["scale"], tmp_path)
    with pytest.raises(WeightsError, match="does not match its manifest"):
        registry.load_downscaler(loaded)


def test_manifest_sections_are_kept_apart(tmp_path):
    weights.write_manifest(tmp_path, [{"name": "m", "scale": 2, "file": "m.safetensors"}])
    weights.write_manifest(tmp_path, [{"upscaler": "m", "scale": 2, "file": "d.safetensors"}], "downscalers")
    weights.write_manifest(tmp_path, [{"name": "n", "scale": 4, "file": "n.safetensors"}])
    assert [e["name"] for e in weights.read_manifest(tmp_path)] == ["n"]
    assert [e["file"] for e in weights.read_manifest(tmp_path, "downscalers")] == ["d.safetensors"]


# -- HCD --------------------------------------------------------------------------------------

def _small_refiner(settings=HCDSettings()):
    """HCD against the shipped arm-plain x2 with a fixed untrained (bicubic) downscaler."""
    up = registry.load("arm-plain", 2)
    return HCDRefiner(LearnedDownscaler(2).eval(), up.differentiable, settings, qstep=0.0), up


def test_hcd_steps_are_constant_by_default_and_shrink_to_the_last_step_when_asked():
    from vidsr.delivery.hcd import _lengths

    assert _lengths(15, 0.08, HCDSettings().last_step) == [0.08] * 15  # the published schedule
    shrinking = _lengths(6, 1.0, 0.1)
    assert shrinking[0] == pytest.approx(1.0) and shrinking[-1] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(shrinking, shrinking[1:]))
    # the schedule reaches the refinement: it ends on another frame than the constant steps
    hr = textured(48, 48)
    refiner, _ = _small_refiner(HCDSettings(hr_steps=0, lr_steps=4, last_step=0.1))
    assert not torch.equal(refiner.refine(hr), _small_refiner(HCDSettings(hr_steps=0, lr_steps=4))[0].refine(hr))


def test_hcd_improves_the_upscaled_frame_over_its_start():
    refiner, up = _small_refiner()
    hr = textured(64, 64)
    with torch.no_grad():
        start = codec_proxy.quantise_levels(refiner.down(hr))
        before = float((up.differentiable(start) - hr).square().mean())
    y = refiner.refine(hr)
    with torch.no_grad():
        after = float((up.differentiable(y) - hr).square().mean())
    assert after < before * 0.97  # a clear gain, not rounding noise
    assert torch.equal(y, torch.round(y * 255) / 255)  # integer levels


def test_hcd_keeps_a_static_region_still_from_frame_to_frame():
    """Two frames: the right half changes, the left half only by sub-level noise (as a real
    source's static background does). Refined as a stream, the left half's LR changes less than
    when each frame is refined alone (the warm start and the temporal term), and by one level at most."""
    a = textured(64, 64, seed=1)
    b = a.clone()
    b[..., 32:] = textured(64, 32, seed=2)
    b[..., :32] += (torch.rand(64, 32, generator=torch.Generator().manual_seed(5)) - 0.5) / 255
    stream, _ = _small_refiner()
    ya, yb = stream.refine(a), stream.refine(b)
    alone_a, alone_b = _small_refiner()[0].refine(a), _small_refiner()[0].refine(b)
    left = slice(0, 14)  # LR columns whose HR source is in the static half, beyond the upscaler's reach
    in_stream = (yb - ya)[..., left].abs() * 255
    alone = (alone_b - alone_a)[..., left].abs() * 255
    assert float(in_stream.max()) <= 1.0 + 1e-4
    assert float(in_stream.mean()) < 0.6 * float(alone.mean())


def test_hcd_study_knobs_fewer_steps_after_the_first_frame_and_held_static_pixels():
    """``warm_steps``: a frame that starts from the last one's perturbations takes fewer upscaler
    passes. ``hold_static``: an LR pixel whose source did not move keeps the last value exactly."""
    a = textured(64, 64, seed=1)
    b = a.clone()
    b[..., 32:] = textured(64, 32, seed=2)
    calls = []

    def counting(settings):
        refiner, _ = _small_refiner(settings)
        up = refiner.up
        refiner.up = lambda x: (calls.append(1), up(x))[1]
        return refiner

    refiner = counting(HCDSettings(hr_steps=3, lr_steps=3, warm_steps=1))
    refiner.refine(a)
    first, calls[:] = len(calls), []
    refiner.refine(b)
    assert (first, len(calls)) == (6, 2)

    held = counting(HCDSettings(hr_steps=2, lr_steps=2, hold_static=True))
    ya, yb = held.refine(a), held.refine(b)
    left = slice(0, 13)  # LR columns whose source is still, beyond the 2-pixel margin
    assert torch.equal(yb[..., left], ya[..., left])
    assert not torch.equal(yb[..., 20:], ya[..., 20:])
    free = counting(HCDSettings(hr_steps=2, lr_steps=2))
    assert not torch.equal(free.refine(b)[..., left], free.refine(a)[..., left])  # it is the knob that holds them


def test_hcd_training_pairs_take_the_refined_lr_and_keep_it_for_a_resume(tmp_path, monkeypatch):
    from vidsr.delivery import downscale
    from vidsr.train.coded import hcd_pairs
    from vidsr.train.data import make_pair

    pairs = {"train": [make_pair("a", textured(48, 64, seed=1)[0, 0], 2)], "val": [make_pair("b", textured(32, 32)[0, 0], 2)]}
    cache = tmp_path / "hcd_lr.pt"
    train, val = hcd_pairs(pairs, "arm-plain", 2, 26.0, cache, progress=False)
    for before, after in ((pairs["train"][0], train[0]), (pairs["val"][0], val[0])):
        assert after.lr.shape == before.lr.shape and torch.equal(after.hr, before.hr)
        assert torch.equal(after.lr, torch.round(after.lr * 255) / 255)  # integer levels
        assert float((after.lr - before.lr).abs().max()) >= 1 / 255  # refined, not the bicubic LR
    # what `vidsr downscale --mode hcd` gives the same image
    fd = FrameDownscaler("arm-plain", 2, "hcd", qp=26.0)
    assert torch.equal(train[0].lr, fd.luma(pairs["train"][0].hr[None, None])[0, 0])

    # a resume reads the cache instead of refining again; other pairs or another QP refine again
    monkeypatch.setattr(downscale.FrameDownscaler, "luma", lambda self, x: (_ for _ in ()).throw(AssertionError("refined")))
    again, _ = hcd_pairs(pairs, "arm-plain", 2, 26.0, cache, progress=False)
    assert torch.equal(again[0].lr, train[0].lr)
    with pytest.raises(AssertionError, match="refined"):
        hcd_pairs(pairs, "arm-plain", 2, 30.0, cache, progress=False)


# -- the tag and the front end -----------------------------------------------------------------

def test_tag_text_round_trips():
    tag = tags.DeliveryTag("arm-plain", 4, "ab" * 32, "hcd")
    assert tags.DeliveryTag.parse(tag.text()) == tag
    assert tags.from_metadata({"VIDSR_DELIVERY": tag.text()}) == tag
    assert tags.DeliveryTag.parse("upscaler=x") is None
    sized = tag.with_size(97, 55)
    assert "size=97x55" in sized.text() and tags.DeliveryTag.parse(sized.text()) == sized
    for bad in ("97", "97x", "0x55", "axb"):
        assert tags.DeliveryTag.parse(tag.text() + f" size={bad}") is None


def test_tag_crops_only_what_padding_explains():
    tag = tags.DeliveryTag("arm-plain", 2, "bicubic", "bicubic", (97, 55))
    assert tag.crop(100, 56) == (97, 55)  # 50x28 low resolution: padded to even sides
    assert tag.crop(97, 55) is None  # nothing to crop
    assert tag.crop(200, 112) is None  # not a file this source made at x2
    assert tag.crop(96, 56) is None  # narrower than the source: not from it
    assert tags.DeliveryTag("arm-plain", 2, "bicubic", "bicubic").crop(100, 56) is None  # no size named


@pytest.mark.parametrize("fmt", ["yuv420p", "yuv444p"])
def test_resized_frame_cuts_and_pads_every_plane_in_place(fmt):
    from vidsr.io.formats import plane_view, resized_frame

    frame = av.VideoFrame.from_ndarray(
        (np.random.default_rng(0).random((30, 42, 3)) * 255).astype(np.uint8), "rgb24").reformat(format=fmt)
    padded = resized_frame(frame, 47, 33)
    assert (padded.width, padded.height, padded.format.name) == (47, 33, fmt)
    for i in range(3):
        src, out = plane_view(frame, i), plane_view(padded, i)
        h, w = src.shape
        assert np.array_equal(out[:h, :w], src)  # the picture stays where it was: no resampling
        assert np.array_equal(out[h:, :w], np.repeat(src[-1:], out.shape[0] - h, 0))  # the edges repeat
        assert np.array_equal(out[:, w:], np.repeat(out[:, w - 1: w], out.shape[1] - w, 1))
    cut = resized_frame(padded, 42, 30)
    assert all(np.array_equal(plane_view(cut, i), plane_view(frame, i)) for i in range(3))


@pytest.mark.skipif(not SHIPPED, reason="no downscaler ships")
@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_downscale_tags_the_output_and_vidsr_follows_the_tag(tmp_path, suffix):
    src = make_video(tmp_path / "src.mp4", Spec(width=96, height=64, frames=5, audio="aac"))
    lr = tmp_path / f"lr{suffix}"
    r = run_vidsr("downscale", src, "-o", lr, "--quiet")
    assert r.returncode == 0, r.stderr
    frames = video_frames(lr)
    assert len(frames) == 5 and (frames[0].width, frames[0].height) == (48, 32)
    tag = tags.read(lr)
    upscaler = default_upscaler(2)  # the delivery upscaler, where one ships
    assert tag == tags.DeliveryTag(upscaler, 2, "bicubic", "bicubic", (96, 64))
    with av.open(str(lr)) as c:
        assert len(c.streams.audio) == 1
    up = tmp_path / "up.mp4"
    r = run_vidsr(lr, "-o", up)
    assert r.returncode == 0, r.stderr
    assert f"downscaled for {upscaler} x2" in r.stderr
    out = video_frames(up)
    assert (out[0].width, out[0].height) == (96, 64)
    assert tags.read(up) is None  # an upscaled file is no longer a delivery file
    # a scale asked for wins over the tag
    r = run_vidsr(lr, "-o", tmp_path / "up4.mp4", "--scale", "4", "--quiet")
    assert r.returncode == 0 and video_frames(tmp_path / "up4.mp4")[0].width == 192
    # a model asked for wins too, and the run says what the file was made for
    r = run_vidsr(lr, "-o", tmp_path / "up_espcn.mp4", "--model", "arm-espcn")
    assert r.returncode == 0 and f"downscaled for {upscaler} x2" in r.stderr and "arm-espcn x2 as asked" in r.stderr
    # a preset's model does not: a preset is for general video, the file was made for its model
    r = run_vidsr(lr, "-o", tmp_path / "up_rt.mp4", "--preset", "realtime")
    assert r.returncode == 0 and "instead of the preset's model" in r.stderr
    # the tag's own scale asked for still takes the tag's model; a router it does not use takes another
    r = run_vidsr(lr, "-o", tmp_path / "up_s2.mp4", "--scale", "2")
    assert r.returncode == 0 and "upscaling with it" in r.stderr
    r = run_vidsr(lr, "-o", tmp_path / "up_pcsr.mp4", "--router", "pcsr")
    assert r.returncode == 0 and "--router pcsr takes another model" in r.stderr
    # downscaling a delivery file again says what the client will restore
    r = run_vidsr("downscale", lr, "-o", tmp_path / f"lr2{suffix}")
    assert r.returncode == 0 and "is already a delivery file" in r.stderr


@pytest.mark.parametrize("width,height,pix_fmt,codec,scale,lr", [
    (110, 62, "yuv420p", "libx264", 2, (56, 32)),  # 55x31 would force 4:4:4 on a 4:2:0 file
    (97, 55, "yuv444p", "ffv1", 2, (50, 28)),
    (106, 62, "yuv420p", "libx264", 4, (28, 16)),
])
def test_a_size_the_scale_does_not_divide_comes_back_exactly(tmp_path, width, height, pix_fmt, codec, scale, lr):
    src = make_video(tmp_path / "src.mkv", Spec(width=width, height=height, frames=4, pix_fmt=pix_fmt, codec=codec))
    down, up = tmp_path / "lr.mkv", tmp_path / "up.mkv"
    r = run_vidsr("downscale", src, "-o", down, "--scale", scale, "--mode", "bicubic", "--quiet")
    assert r.returncode == 0, r.stderr
    frames = video_frames(down)
    assert (frames[0].width, frames[0].height) == lr and frames[0].format.name == pix_fmt  # even sides: no 4:4:4
    assert tags.read(down).size == (width, height)
    r = run_vidsr(down, "-o", up, "--model", "bicubic", "--scale", scale, "--quiet")
    assert r.returncode == 0, r.stderr
    out, ref = video_frames(up), video_frames(src)
    assert len(out) == 4 and (out[0].width, out[0].height) == (width, height)
    for a, b in zip(out, ref):  # cropped, not stretched: the round trip stays close to the source everywhere
        diff = np.abs(a.to_ndarray(format="rgb24").astype(int) - b.to_ndarray(format="rgb24").astype(int))
        assert diff[:, -3:].mean() < 2.5 * diff.mean() + 1 and diff.mean() < 12 * scale
    # at another scale there is nothing to crop to
    r = run_vidsr(down, "-o", tmp_path / "other.mkv", "--scale", 3, "--model", "bicubic", "--quiet")
    assert r.returncode == 0 and video_frames(tmp_path / "other.mkv")[0].width == lr[0] * 3


def test_a_model_or_router_asked_for_keeps_the_files_scale(tmp_path):
    # only --scale changes the scale: an x4 file upscaled with another model still comes back whole
    src = make_video(tmp_path / "src.mp4", Spec(width=100, height=60, frames=2))
    lr = tmp_path / "lr.mp4"
    assert run_vidsr("downscale", src, "-o", lr, "--scale", 4, "--mode", "bicubic", "--quiet").returncode == 0
    r = run_vidsr(lr, "-o", tmp_path / "up.mp4", "--model", "arm-espcn")
    assert r.returncode == 0 and "using arm-espcn x4 as asked (--model arm-espcn)" in r.stderr, r.stderr
    assert video_frames(tmp_path / "up.mp4")[0].width == 100
    r = run_vidsr(lr, "-o", tmp_path / "up_pcsr.mp4", "--router", "pcsr")
    assert r.returncode == 0 and "takes another model (at x4)" in r.stderr, r.stderr
    assert video_frames(tmp_path / "up_pcsr.mp4")[0].width == 100
    r = run_vidsr(lr, "-o", tmp_path / "up_x2.mp4", "--model", "arm-espcn", "--scale", 2)
    assert r.returncode == 0 and "x2 as asked (--model arm-espcn and --scale 2)" in r.stderr, r.stderr
    assert video_frames(tmp_path / "up_x2.mp4")[0].width == 52


def test_a_tag_naming_a_size_the_file_cannot_come_from_is_said_and_not_cropped(tmp_path):
    src = make_video(tmp_path / "src.mkv", Spec(width=64, height=48, frames=2))
    lr = tmp_path / "lr.mkv"
    with av.open(str(src)) as i, av.open(str(lr), "w") as o:  # remuxed with a tag from another source
        o.metadata[tags.KEY] = tags.DeliveryTag("bicubic", 2, "bicubic", "bicubic", (300, 200)).text()
        ins = i.streams.video[0]
        out = o.add_stream_from_template(ins)
        for packet in i.demux(ins):
            if packet.size:  # not the demuxer's closing empty packet
                packet.stream = out
                o.mux(packet)
    r = run_vidsr(lr, "-o", tmp_path / "up.mkv", "--model", "bicubic")
    assert r.returncode == 0, r.stderr
    assert "names a 300x200 source" in r.stderr and video_frames(tmp_path / "up.mkv")[0].width == 128


@pytest.mark.skipif(not SHIPPED, reason="no downscaler ships")
def test_downscale_image_is_tagged_and_followed(tmp_path):
    from PIL import Image

    rgb = (np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "in.png")
    r = run_vidsr("downscale", tmp_path / "in.png", "--quiet")
    assert r.returncode == 0, r.stderr
    lr = tmp_path / "in_down2.png"
    with Image.open(lr) as im:
        assert im.size == (25, 20)
    assert tags.read(lr) is not None
    r = run_vidsr(lr, "-o", tmp_path / "up.png")
    assert r.returncode == 0 and "downscaled for" in r.stderr
    with Image.open(tmp_path / "up.png") as im:
        assert im.size == (50, 40)
    # odd sides: padded down, cropped back up
    Image.fromarray(rgb[:39, :49]).save(tmp_path / "odd.png")
    assert run_vidsr("downscale", tmp_path / "odd.png", "-o", tmp_path / "odd_lr.png", "--quiet").returncode == 0
    with Image.open(tmp_path / "odd_lr.png") as im:
        assert im.size == (25, 20)
    assert run_vidsr(tmp_path / "odd_lr.png", "-o", tmp_path / "odd_up.png", "--quiet").returncode == 0
    with Image.open(tmp_path / "odd_up.png") as im:
        assert im.size == (49, 39)


@pytest.mark.skipif(not SHIPPED, reason="no downscaler ships")
def test_fast_mode_tags_the_learned_downscaler_it_ran(tmp_path):
    src = make_video(tmp_path / "src.mp4", Spec(width=64, height=48, frames=3))
    r = run_vidsr("downscale", src, "-o", tmp_path / "lr.mkv", "--mode", "fast", "--quiet")
    assert r.returncode == 0, r.stderr
    upscaler = default_upscaler(2, "fast")
    assert registry.downscaler_entry(upscaler, 2) is not None
    assert tags.read(tmp_path / "lr.mkv") == tags.DeliveryTag(upscaler, 2, registry.downscaler_entry(upscaler, 2)["sha256"],
                                                              "fast", (64, 48))


def test_bicubic_mode_is_the_antialiased_bicubic_downscale():
    fd = FrameDownscaler(default_upscaler(2), 2, "bicubic")
    x = textured(37, 50)
    assert torch.equal(fd.luma(x), bicubic_downscale(x, 2).clamp(0, 1))
    assert fd.tag.downscaler == "bicubic"


def test_hcd_mode_starts_from_the_bicubic_downscale_for_any_shipped_upscaler():
    """No learned downscaler is needed: with no steps, HCD gives the bicubic downscale rounded to
    8-bit levels, and the tag names no downscaler weights."""
    fd = FrameDownscaler("arm-espcn", 2, "hcd", hcd=HCDSettings(hr_steps=0, lr_steps=0))
    x = textured(40, 48)
    assert torch.equal(fd.luma(x), torch.round(bicubic_downscale(x, 2).clamp(0, 1) * 255) / 255)
    assert (fd.tag.downscaler, fd.tag.mode) == ("bicubic", "hcd")


def test_hcd_mode_runs_from_the_command_line(tmp_path):
    src = make_video(tmp_path / "src.mp4", Spec(width=64, height=48, frames=3))
    r = run_vidsr("downscale", src, "-o", tmp_path / "lr.mkv", "--mode", "hcd", "--crf", "20", "--quiet")
    assert r.returncode == 0, r.stderr
    assert tags.read(tmp_path / "lr.mkv").mode == "hcd"
    assert len(video_frames(tmp_path / "lr.mkv")) == 3


@pytest.mark.parametrize("args,message", [
    (["missing.mp4"], "no such file"),
    (["{src}", "--scale", "3"], "invalid choice"),
    (["{src}", "--mode", "slow"], "invalid choice"),
    (["{src}", "--mode", "fast", "--model", "espcn"], "no delivery downscaler ships for espcn x2"),
    (["{src}", "--model", "nosuch"], "nosuch"),
    (["{src}", "--crf", "-4"], "crf"),
    (["{src}", "-o", "{src}"], "output is the input"),
    (["{src}", "-o", "{tmp}/nowhere/lr.mp4"], "folder does not exist"),
])
def test_downscale_refuses_bad_input_in_one_line(tmp_path, args, message):
    src = make_video(tmp_path / "src.mp4", Spec(width=64, height=48, frames=3))
    before = sorted(p.name for p in tmp_path.iterdir())
    r = run_vidsr("downscale", *[a.format(src=src, tmp=tmp_path) for a in args])
    assert r.returncode == 2, r.stderr
    lines = [l for l in r.stderr.strip().splitlines() if l]
    assert message in lines[-1] and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing left behind


def test_downscale_refuses_a_non_media_file(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    r = run_vidsr("downscale", bad)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mp4"]


def test_inter_rate_is_small_for_a_frame_its_predecessor_predicts():
    prev = textured(48, 48)
    moved = codec_proxy.shift(prev, 0.5, -1.0)
    right = codec_proxy.inter_rate(moved, prev, [0.5], [-1.0], 8.0)
    wrong = codec_proxy.inter_rate(moved, prev, [0.0], [0.0], 8.0)
    assert float(right) < 0.01 < float(wrong)


# -- the benchmark's arithmetic ----------------------------------------------------------------

def test_bd_rate_of_a_curve_needing_ten_percent_fewer_bits_is_minus_ten():
    from vidsr.bench.rd import bd_rate, crossover

    a = [(100, 30.0), (200, 33.0), (400, 36.0), (800, 39.0)]
    b = [(r * 0.9, p) for r, p in a]
    assert bd_rate(a, b) == pytest.approx(-10.0, abs=1e-6)
    assert bd_rate(a, a) == pytest.approx(0.0, abs=1e-9)
    # against the hull of a and a worse curve: a alone counts
    worse = [(r * 1.5, p) for r, p in a]
    assert bd_rate(worse, b, hull_with=a) == pytest.approx(-10.0, abs=1e-6)
    assert bd_rate(a, [(10, 50.0), (20, 52.0)]) is None  # no PSNR in common
    low_better = [(50, 31.0), (100, 33.0), (200, 35.0), (400, 36.5)]
    assert crossover(low_better, a)["everywhere"] and crossover(a, low_better) == {"never": True}
    cross = crossover([(100, 31.0), (800, 38.0)], a)
    assert 100 < cross["below_kbps"] < 800


def test_bench_delivery_refines_d_hcd_for_the_crf_it_encodes(tmp_path, monkeypatch):
    """D-hcd is what vidsr downscale --mode hcd --crf N makes: refined at each CRF's own QP, that
    LR encoded at that CRF; with hcd_qp set, one refinement at that QP serves every CRF."""
    from PIL import Image

    import vidsr.bench.delivery as bd

    for i in range(3):
        rgb = np.stack([textured(96, 128, seed=i + c)[0, 0].numpy() for c in range(3)], -1)
        Image.fromarray((rgb * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
    monkeypatch.setattr(bd, "SOURCE", (64, 48))
    monkeypatch.setattr(bd, "CODECS", {"libx264": (bd.CODECS["libx264"][0], (20, 32))})
    seen, encoded = {}, []
    make_lrs, encode = bd.make_lrs, bd.encode

    def spy_make(*a):
        lrs, seconds = make_lrs(*a)
        seen.update(lrs)
        return lrs, seconds

    def spy_encode(frames, codec, crf):
        encoded.append((crf, frames))
        return encode(frames, codec, crf)

    monkeypatch.setattr(bd, "make_lrs", spy_make)
    monkeypatch.setattr(bd, "encode", spy_encode)

    def run(hcd_qp=None):
        seen.clear(), encoded.clear()
        bd.run_clip("static", tmp_path, 2, (2,), ["libx264"], {2: "arm-plain-delivery"}, "arm-plain", lambda m: None,
                    hcd_qp)
        return {crf: [k for k, v in seen.items() if k.startswith("hcd@") and any(f is v for c, f in encoded if c == crf)]
                for crf in (20, 32)}

    assert run() == {20: ["hcd@qp20"], 32: ["hcd@qp32"]}
    # B-again: Lanczos LR encoded once more at each CRF, its own bitstream (the encoder's noise)
    assert [c for c, f in encoded if f is seen["lanczos"]] == [20, 20, 32, 32]
    lumas = {k: np.stack([bd.luma(f) for f in seen[k]]) for k in ("hcd@qp20", "hcd@qp32")}
    assert not np.array_equal(lumas["hcd@qp20"], lumas["hcd@qp32"])  # a coarser QP refines differently
    assert seen["hcd"] is seen["hcd@qp26"]  # the LR figures' refinement
    assert run(hcd_qp=26) == {20: ["hcd@qp26"], 32: ["hcd@qp26"]}


def test_the_delivery_report_gives_each_lr_before_the_codec_against_b():
    """The bench's ceiling: each pipeline's 8-bit LR upscaled without a codec, against B's, as a
    mean over clips and a per-clip range."""
    from vidsr.bench.delivery import report

    def clip(b, fast):
        modes = {m: {"psnr_vs_lanczos": 45.0, "flicker": 1.0} for m in ("bicubic", "fast", "hcd", "lanczos")}
        return {"2": {"no_codec": {"B": b, "C": b - 1, "D-bicubic": b + 0.5, "D-fast": fast, "D-hcd": b + 1},
                      "lr": modes, "seconds_per_frame": {"fast": 0.01, "hcd": 1.0}, "upscale_seconds_per_frame": 0.03,
                      "curves": {}}}

    res = {"scales": [2], "codecs": [], "frames": 2, "source": "64x36", "upscalers": {"2": "arm-plain-delivery"},
           "baseline": "arm-plain", "data": "val",
           "clips": {"a": clip(30.0, 29.0), "b": clip(40.0, 40.4)}}
    text = report(res)
    assert "| x2 | D-fast | 34.70 | -0.30 | -1.00 .. +0.40 |" in text
    assert "| x2 | D-hcd | 36.00 | +1.00 | +1.00 .. +1.00 |" in text


def test_list_names_each_upscaler_a_file_can_be_made_for_with_its_modes():
    from vidsr.delivery.downscale import delivery_upscalers

    r = run_vidsr("downscale", "--list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for e in SHIPPED:
        assert any(line.startswith(f"{e['upscaler']} x{e['scale']}: --mode bicubic, fast, hcd") for line in lines)
    # an upscaler without a learned downscaler still has hcd (it refines the bicubic downscale)
    assert all(line.split(": --mode ")[1].startswith(("bicubic, fast, hcd", "bicubic, hcd")) for line in lines)
    for scale in (2, 4):
        for name in delivery_upscalers(scale):
            assert any(line.startswith(f"{name} x{scale}:") and "delivery upscaler" in line for line in lines)
