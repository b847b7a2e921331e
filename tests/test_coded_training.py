"""Training for decoded video: LR that went through a real encoder (``vidsr.train.coded``), the
delivery upscaler it trains (never an automatic choice), and the delivery downscaler trained with
the real encoder in its forward pass."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from vidsr.delivery.training import DownscalerConfig, DownscalerTrainer
from vidsr.models import registry
from vidsr.models.downscaler import bicubic_downscale
from vidsr.train.coded import coded_pairs, encode_planes
from vidsr.train.data import make_pair
from vidsr.train.trainer import Trainer

from .test_training import blocks_image, config, image_dirs  # noqa: F401  (the fixture)


def _pair(seed: int = 0):
    hr = torch.from_numpy(blocks_image(seed)[..., 0].astype(np.float32) / 255)
    return make_pair("blocks", hr, 2)


def _mae(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean())


def test_encode_planes_gives_back_every_frame_and_loses_more_at_a_higher_crf():
    rng = np.random.default_rng(0)
    planes = [rng.integers(0, 256, (32, 48), dtype=np.uint8) for _ in range(3)]
    low, high = encode_planes(planes, "libx264", 5), encode_planes(planes, "libx264", 45)
    assert len(low) == len(high) == 3
    err = lambda dec: np.mean([np.abs(d.astype(int) - p).mean() for d, p in zip(dec, planes)])  # noqa: E731
    assert err(low) < 3 < err(high)


X265_STRESS = """
import numpy as np
from vidsr.train.coded import encode_planes
rng = np.random.default_rng(0)
for h, w in [(48, 42)] * 12 + [(16, 40)] * 12 + [(72, 40)] * 12 + [(256, 256)] * 12:
    planes = [rng.integers(0, 256, (h, w), dtype=np.uint8) for _ in range(2)]
    decoded = encode_planes(planes, "libx265", 20)
    assert [d.shape for d in decoded] == [(h, w)] * 2, (h, w)
    errors = [[np.abs(d.astype(int) - p).mean() for p in planes] for d in decoded]
    assert errors[0][0] < errors[0][1] and errors[1][1] < errors[1][0], (h, w, errors)  # in order
print("ok")
"""


def test_x265_codes_small_frames_and_two_frame_clips_without_corrupting_memory():
    """The wheel's x265 writes past its buffers on frames under 64 pixels a side, and gives a clip
    shorter than its B-frame delay decode times from memory it never wrote (a muxer refuses them).
    glibc's heap checks (MALLOC_CHECK_=3) turn a corruption into an abort, in a child process."""
    r = subprocess.run([sys.executable, "-c", X265_STRESS], env={**os.environ, "MALLOC_CHECK_": "3"},
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_coded_pairs_are_decoded_clips_aligned_with_their_hr_crops():
    pair = _pair()
    out = coded_pairs([pair], 2, crfs=(10, 40), frames=4, seed=1)
    assert len(out) == 2 * 4
    for p in out:
        assert p.hr.shape == (p.lr.shape[0] * 2, p.lr.shape[1] * 2)
        clean = bicubic_downscale(p.hr[None, None], 2)[0, 0]
        # aligned: the decoded LR is far closer to its own HR crop's downscale than to a shifted one
        shifted = torch.roll(clean, shifts=(1, 1), dims=(0, 1))
        if "crf10" in p.name:
            assert _mae(p.lr, clean) < 0.5 * _mae(p.lr, shifted)
    low = np.mean([_mae(p.lr, bicubic_downscale(p.hr[None, None], 2)[0, 0]) for p in out if "crf10" in p.name])
    high = np.mean([_mae(p.lr, bicubic_downscale(p.hr[None, None], 2)[0, 0]) for p in out if "crf40" in p.name])
    assert low < high  # the codec really ran, and harder at the higher CRF
    assert len(coded_pairs([pair], 2, crfs=(10, 40), frames=4, keep="last")) == 2


def test_a_model_trained_on_coded_pairs_is_marked_for_decoded_input(image_dirs, tmp_path):  # noqa: F811
    trainer = Trainer(config(image_dirs, tmp_path / "run", iterations=4, codec_crfs=[20, 30]), progress=False)
    assert all("@libx264-crf" in p.name for p in trainer.sampler.pairs + trainer.val_pairs)
    entry = trainer.run()
    assert entry["input"] == "coded"
    assert entry["training"]["codec"] == {"encoder": "libx264", "crfs": [20, 30]}
    assert not registry.for_clean_input(entry)
    clean = Trainer(config(image_dirs, tmp_path / "clean", iterations=4), progress=False).run()
    assert registry.for_clean_input(clean) and "input" not in clean


def test_a_model_trained_on_hcd_lr_refines_its_pairs_before_coding_and_says_so(image_dirs, tmp_path):  # noqa: F811
    # the refinement runs before the codec: the coded pairs' LR is HCD's LR coded, not the bicubic's
    cfg = config(image_dirs, tmp_path / "run", iterations=2, codec_crfs=[10], hcd_against="arm-plain", hcd_qp=26.0)
    trainer = Trainer(cfg, progress=False)
    plain = Trainer(config(image_dirs, tmp_path / "plain", iterations=2, codec_crfs=[10]), progress=False)
    assert (tmp_path / "run" / "hcd_lr.pt").exists()
    assert [p.name for p in trainer.sampler.pairs] == [p.name for p in plain.sampler.pairs]
    differ = [_mae(a.lr, b.lr) for a, b in zip(trainer.sampler.pairs + trainer.val_pairs, plain.sampler.pairs + plain.val_pairs)]
    assert min(differ) > 0
    entry = trainer.run()
    assert entry["training"]["lr_from"] == {"hcd_against": "arm-plain", "qp": 26.0}


def test_a_model_for_decoded_input_is_never_an_automatic_choice(monkeypatch):
    """Even with the best validation figures of its scale, a delivery upscaler is not the default,
    not the routed default and not what a frame-rate target switches to."""
    real = registry.shipped_models()
    best = max((e for e in real if e["scale"] == 2 and registry.architecture(e["architecture"]).router == "arm"),
               key=lambda e: e["validation"]["psnr_y"])
    coded = {**best, "name": "coded-test", "input": "coded",
             "validation": {**best["validation"], "psnr_y": 99.0, "routed": {"psnr_y": 99.0}}}
    monkeypatch.setattr(registry, "shipped_models", lambda: real + [coded])
    assert "coded-test" not in {e["name"] for e in registry.general_models()}
    assert registry.default_model(2) != "coded-test"
    assert registry.best_routed(2) != "coded-test"
    assert all("coded-test" not in registry.dearer_routed(2, e["name"]) for e in real if e["scale"] == 2)
    assert registry.manifest_entry("coded-test", 2)["input"] == "coded"  # by name it is there


def test_downscale_defaults_to_the_delivery_upscaler_where_one_ships():
    from vidsr.delivery.downscale import default_upscaler

    for scale in {e["scale"] for e in registry.shipped_downscalers()}:
        for_delivery = [e["upscaler"] for e in registry.shipped_downscalers() if e["scale"] == scale
                        and not registry.for_clean_input(registry.manifest_entry(e["upscaler"], scale))]
        if for_delivery:
            assert default_upscaler(scale) == for_delivery[0]


@pytest.mark.parametrize("encoder", ["libx264", "libx265"])
def test_the_real_encoder_forward_trains_every_downscaler_parameter(image_dirs, tmp_path, encoder):  # noqa: F811
    """With ``codec_forward`` a real encoder, the upscaler sees the decoded patches (an untrained
    downscaler is the bicubic one, so its error equals the bicubic reference's through the same
    encode) and the gradient still reaches every parameter through the stand-in."""
    train, val = image_dirs
    cfg = DownscalerConfig(upscaler="arm-plain", scale=2, out=tmp_path / "down", iterations=2, batch=4, patch=16,
                           train_dir=train, val_dir=val, predownscale=1, codec_forward=encoder, qp_min=30, qp_max=30,
                           threads=1)
    trainer = DownscalerTrainer(cfg, progress=False)
    _, big = trainer.sampler.batch(4)
    q = torch.full((4,), 10.0)
    loss, parts = trainer.loss(big, q, crf=30)
    assert parts["err"] == pytest.approx(1.0, abs=1e-6)
    # the real encoder changed the patches: the stand-in's forward differs from it
    hr = big[..., 2:-2, 2:-2]
    lr = bicubic_downscale(hr, 2)
    real = trainer._real_codec(lr, bicubic_downscale(big[..., :-4, :-4], 2), 30)
    assert 0 < _mae(real, lr) < 0.1
    torch.nn.init.normal_(trainer.net.body[-1].weight, std=0.01)  # past the zero start, every layer has a gradient
    loss, _ = trainer.loss(big, q, crf=30)
    loss.backward()
    for name, p in trainer.net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    with pytest.raises(Exception, match="codec_forward"):
        DownscalerTrainer(DownscalerConfig(upscaler="arm-plain", scale=2, out=tmp_path / "bad", codec_forward="mpeg2",
                                           train_dir=train, val_dir=val, predownscale=1), progress=False)


def test_an_encoder_without_crfs_to_train_at_is_refused_in_one_line():
    from .conftest import run_vidsr

    r = run_vidsr("train", "--arch", "plain", "--codec", "libx265")
    assert r.returncode == 2
    assert "--codec goes with --codec-crfs" in r.stderr.strip().splitlines()[-1] and "Traceback" not in r.stderr


@pytest.mark.parametrize("args,message", [
    (("--hcd-qp", "30"), "--hcd-qp goes with --hcd-against"),
    (("--hcd-against", "no-such-model"), "--hcd-against: unknown model 'no-such-model'"),
    (("--hcd-against", "bicubic"), "--hcd-against bicubic: an interpolation"),
    (("--hcd-against", "arm-plain", "--hcd-qp", "60"), "--hcd-qp must be between 0 and 51"),
])
def test_hcd_training_flags_a_run_cannot_use_are_refused_in_one_line(args, message, tmp_path):
    from .conftest import run_vidsr

    r = run_vidsr("train", "--arch", "plain", "--out", str(tmp_path / "run"), *args)
    assert r.returncode == 2
    assert message in r.stderr.strip().splitlines()[-1] and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()
