"""The model family: shapes, weight sharing, gathered vs dense PCSR, costs, checked weights."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from vidsr.errors import SettingsError, WeightsError
from vidsr.models import registry, weights
from vidsr.models.pcsr import PCSR
from vidsr.models.plain import PlainSR, SlimPlain
from vidsr.models.wdsr import WDSR, SlimWDSR

from .synthetic import randomize

SCALES = (2, 3, 4)


@pytest.mark.parametrize("arch", [a for a in registry.ARCHITECTURES])
@pytest.mark.parametrize("scale", SCALES)
def test_every_architecture_and_route_gives_the_right_shape(arch, scale):
    a = registry.architecture(arch)
    m = randomize(registry.build_module(arch, scale))
    x = torch.rand(2, 1, 20, 24)
    for route in a.routes(m):
        with torch.no_grad():
            y = m(x, route)
        assert y.shape == (2, 1, 40 * scale // 2, 48 * scale // 2), (arch, route)
        assert torch.isfinite(y).all()


# Each ARM supernet with the plain network it slims: (supernet, plain net of width w)
SUPERNETS = {
    "wdsr": (lambda s, widths: SlimWDSR(s, widths=widths, blocks=3), lambda s, w: WDSR(s, channels=w, blocks=3)),
    "plain": (lambda s, widths: SlimPlain(s, widths=widths, convs=3), lambda s, w: PlainSR(s, channels=w, convs=3)),
    "plain-lrelu": (lambda s, widths: SlimPlain(s, widths=widths, convs=3, act="lrelu"),
                    lambda s, w: PlainSR(s, channels=w, convs=3, act="lrelu")),
}


@pytest.mark.parametrize("body", SUPERNETS)
@pytest.mark.parametrize("scale", SCALES)
def test_supernet_at_full_width_equals_plain_backbone(body, scale):
    make_slim, make_plain = SUPERNETS[body]
    slim = randomize(make_slim(scale, (8, 16, 32)))
    plain = make_plain(scale, 32).eval()
    plain.load_state_dict(slim.state_dict())
    x = torch.rand(1, 1, 17, 19)
    with torch.no_grad():
        assert torch.allclose(slim(x), plain(x), atol=1e-6)
        assert torch.allclose(slim(x, "w32"), plain(x), atol=1e-6)


@pytest.mark.parametrize("body", SUPERNETS)
def test_subnets_share_weights_and_differ(body):
    make_slim, make_plain = SUPERNETS[body]
    slim = randomize(make_slim(2, (8, 16, 32)))
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        outs = {w: slim(x, w) for w in ("w8", "w16", "w32")}
        narrow = make_plain(2, 8).eval()
        # the narrow subnet is exactly a plain net built from the first 8 channels of each layer
        state = {}
        for k, v in slim.state_dict().items():
            t = narrow.state_dict()[k]
            state[k] = v[tuple(slice(0, n) for n in t.shape)]
        narrow.load_state_dict(state)
        assert torch.allclose(outs["w8"], narrow(x), atol=1e-6)
        # what inference runs: the materialised subnet, for every width
        for w, out in outs.items():
            assert torch.allclose(slim.subnet(w)(x), out, atol=1e-6), w
    assert not torch.allclose(outs["w8"], outs["w32"])
    assert not torch.allclose(outs["w16"], outs["w32"])
    assert sum(p.numel() for p in slim.parameters()) == sum(p.numel() for p in make_plain(2, 32).parameters())


def test_plain_activation_is_used_and_checked():
    # a leaky stack passes negative pre-activations on, so the two activations give different nets
    relu, leaky = PlainSR(2, channels=8, convs=2), PlainSR(2, channels=8, convs=2, act="lrelu")
    leaky.load_state_dict(randomize(relu).state_dict())
    x = torch.rand(1, 1, 12, 12)
    with torch.no_grad():
        assert not torch.allclose(relu(x), leaky(x))
        h = leaky.body[1](leaky.body[0](x).clone())  # the first layer's activation alone
        pre = leaky.body[0](x)
        assert torch.allclose(h, torch.where(pre > 0, pre, 0.1 * pre))
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        PlainSR(2, act="gelu")


@pytest.mark.parametrize("scale", SCALES)
def test_pcsr_gathered_inference_equals_dense(scale):
    m = randomize(PCSR(scale, channels=16, blocks=2, backbone="wdsr"))
    x = torch.rand(2, 1, 13, 11)
    with torch.no_grad():
        feats = m.backbone(x)
        dense = [m(x, name) for name in m.route_names]
        choice = torch.randint(0, 2, (2, 13 * scale, 11 * scale), generator=torch.Generator().manual_seed(1))
        gathered = m.render(x, feats, choice)
    expected = torch.where(choice[:, None] == 1, dense[1], dense[0])
    assert torch.allclose(gathered, expected, atol=1e-5)
    # all-heavy through the gathered path is the dense heavy network
    with torch.no_grad():
        assert torch.allclose(m.render(x, feats, torch.ones_like(choice)), dense[1], atol=1e-5)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("light", [(8,), ()])
def test_pcsr_rendering_whole_lr_pixels_equals_rendering_their_hr_pixels(scale, light):
    """``render_rows`` (one route per LR pixel, each head gathering LR rows) must give what
    ``render`` gives for the same choice spelled out per HR pixel, for an MLP light head and for a
    sub-pixel-convolution one (empty hidden sizes); a sub-pixel head everywhere is its dense pass."""
    m = randomize(PCSR(scale, channels=16, blocks=2, backbone="wdsr", upsamplers=(light, (16, 16))))
    assert type(m.upsamplers[0]).__name__ == ("SubPixelHead" if not light else "PixelMLP")
    x = torch.rand(2, 1, 13, 11)
    lr_choice = torch.randint(-1, 2, (2, 13, 11), generator=torch.Generator().manual_seed(4)).to(torch.int8)
    hr_choice = lr_choice.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    with torch.no_grad():
        feats = m.backbone(x)
        assert torch.allclose(m.render_rows(x, feats, lr_choice), m.render(x, feats, hr_choice), atol=1e-5)
        light_everywhere = m.render_rows(x, feats, torch.zeros_like(lr_choice))
        assert torch.allclose(light_everywhere, m(x, "light"), atol=1e-5)
        assert torch.allclose(m.render(x, feats, torch.zeros_like(hr_choice)), m(x, "light"), atol=1e-5)


@pytest.mark.parametrize("scale", SCALES)
def test_pcsr_heavy_score_is_the_largest_corner_logit(scale):
    """The per-LR-pixel score the budget router ranks by: the heavy-minus-light logit at the four
    corner sub-pixel phases of each LR pixel, maximised (the classifier's own per-HR-pixel
    probabilities, read at those phases)."""
    m = randomize(PCSR(scale, channels=16, blocks=1, backbone="wdsr"))
    with torch.no_grad():  # a decisive classifier, so the logits spread
        for p in m.classifier.parameters():
            p.mul_(3)
    x = torch.rand(2, 1, 9, 7)
    with torch.no_grad():
        feats = m.backbone(x)
        logit = torch.logit(m.heavy_probability(feats).double()).reshape(2, 9, scale, 7, scale)
        corners = torch.stack([logit[:, :, dy, :, dx] for dy in (0, scale - 1) for dx in (0, scale - 1)])
        got = m.heavy_score(feats)
    assert got.shape == (2, 9, 7)
    assert torch.allclose(got.double(), corners.amax(dim=0), atol=1e-4)
    assert got.std() > 0.1


@pytest.mark.parametrize("upsamplers", [((8,), (16, 16)), ((8,), (12,), (16, 16))])
def test_pcsr_heavy_probability_is_the_softmax_heavy_share(upsamplers):
    # the router's folded two-class classifier (one logit difference, a sigmoid) must give the
    # probabilities the softmax gives, for any number of upsamplers
    m = randomize(PCSR(2, channels=16, blocks=1, backbone="wdsr", upsamplers=upsamplers,
                       unfold=(False,) * len(upsamplers)))
    with torch.no_grad():  # a decisive classifier, so probabilities spread across (0, 1)
        for p in m.classifier.parameters():
            p.mul_(3)
    x = torch.rand(2, 1, 9, 7)
    with torch.no_grad():
        feats = m.backbone(x)
        expected = m.probabilities(feats)[:, -1]
        got = m.heavy_probability(feats)
    assert got.shape == expected.shape == (2, 18, 14)
    assert torch.allclose(got, expected, atol=1e-6)
    assert expected.std() > 0.01  # the classifier really separates pixels


def test_pcsr_inference_in_chunks_equals_one_pass(monkeypatch):
    # inference runs the MLPs' hidden layers over a few thousand pixels at a time (bounded memory);
    # a chunk size that divides nothing evenly must still give the one-pass (training) result
    m = randomize(PCSR(3, channels=16, blocks=1, backbone="wdsr"))
    x = torch.rand(2, 1, 9, 7)
    choice = torch.randint(0, 2, (2, 27, 21), generator=torch.Generator().manual_seed(2))
    with torch.enable_grad():  # one pass
        feats = m.backbone(x)
        one_pass = [m(x, "heavy"), m.probabilities(feats), m.render(x, feats, choice)]
    monkeypatch.setattr("vidsr.models.pcsr.CHUNK_PIXELS", 23)
    with torch.no_grad():
        feats = m.backbone(x)
        chunked = [m(x, "heavy"), m.probabilities(feats), m.render(x, feats, choice)]
    for a, b in zip(chunked, one_pass):
        assert torch.allclose(a, b.detach(), atol=1e-6)


def test_pcsr_runs_each_upsampler_only_on_its_pixels():
    m = randomize(PCSR(2, channels=16, blocks=1, backbone="wdsr"))
    x = torch.rand(1, 1, 10, 10)
    rows = {}
    hooks = [u.layers[-1].register_forward_hook(lambda mod, i, o, j=j: rows.__setitem__(j, rows.get(j, 0) + o.shape[0]))
             for j, u in enumerate(m.upsamplers)]
    choice = torch.zeros(1, 20, 20, dtype=torch.long)
    choice[0, :5] = 1  # 100 heavy pixels, 300 light
    with torch.no_grad():
        m.render(x, m.backbone(x), choice)
    for h in hooks:
        h.remove()
    assert rows == {0: 300, 1: 100}


@pytest.mark.parametrize("arch", ["arm-wdsr", "pcsr-wdsr"])
def test_route_costs_increase_and_are_counted(arch):
    for scale in (2, 4):
        d = registry.describe(arch, arch, scale)
        costs = [r.macs_per_pixel for r in d.routes]
        assert costs == sorted(costs) and len(set(costs)) == len(costs)
        assert d.routes[0].name == "bicubic" and costs[0] < 20
    # a hand count for the narrowest ARM subnet at x2 (head, 8 blocks, tail, per LR pixel, /4)
    w = 8
    per_lr = 9 * w + 8 * (w * 6 * w + 6 * w * (4 * w // 5) + 9 * (4 * w // 5) * w) + 9 * w * 4
    expected = per_lr / 4 + registry.describe("bicubic", "bicubic", 2).macs_per_pixel
    assert registry.describe("arm-wdsr", "arm-wdsr", 2).route("w8").macs_per_pixel == pytest.approx(expected, rel=0.01)


# -- weights -------------------------------------------------------------------------------------


@pytest.fixture
def saved_model(tmp_path):
    """A tiny trained-looking model saved with its manifest, the way `vidsr train` writes them."""
    m = randomize(registry.build_module("espcn", 2, {"channels": 8}))
    sha = weights.save(tmp_path / "tiny.safetensors", m.state_dict(), {"note": torch.tensor([1.0])})
    entry = {"name": "tiny", "scale": 2, "architecture": "espcn", "config": {"channels": 8},
             "file": "tiny.safetensors", "sha256": sha}
    weights.write_manifest(tmp_path, [entry])
    return tmp_path / "tiny.safetensors", m


def test_weights_load_through_manifest(saved_model):
    path, m = saved_model
    up = registry.load(str(path), 2)
    x = torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(up(x), m(x), atol=1e-6)  # NHWC on CPU: same maths, other rounding
    assert up.extras["note"].item() == 1.0
    assert up.descriptor.architecture == "espcn" and up.descriptor.scale == 2


def test_tampered_weights_are_refused(saved_model):
    path, _ = saved_model
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # flip bits inside a tensor
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="does not match its manifest"):
        registry.load(str(path), 2)


def test_a_listed_file_that_is_not_safetensors_is_refused(saved_model):
    """A manifest entry whose checksum matches a file that is not safetensors (written by mistake):
    one clear error, not a parser's traceback."""
    path, _ = saved_model
    path.write_bytes(b"not safetensors at all")
    manifest = path.parent / "manifest.json"
    data = json.loads(manifest.read_text())
    data["models"][0]["sha256"] = weights.sha256_of(path)
    manifest.write_text(json.dumps(data))
    with pytest.raises(WeightsError, match="not a valid safetensors file"):
        registry.load(str(path), 2)


def test_weights_without_manifest_entry_are_refused(saved_model, tmp_path):
    path, _ = saved_model
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(path, other / path.name)
    with pytest.raises(WeightsError, match="not listed"):
        registry.load(str(other / path.name), 2)


@pytest.mark.parametrize(("change", "message"), [
    ({"architecture": None}, "has no architecture"),
    ({"sha256": None}, "has no sha256"),
    ({"scale": "two"}, "has scale 'two'"),
    ({"architecture": "nonsense"}, "unknown architecture 'nonsense'"),
    ({"architecture": "arm-plain"}, "config .* does not fit architecture arm-plain"),  # espcn's options, another net
])
def test_a_manifest_entry_that_cannot_describe_its_file_is_refused_in_one_line(saved_model, change, message):
    path, _ = saved_model
    manifest = path.parent / "manifest.json"
    data = json.loads(manifest.read_text())
    entry = data["models"][0]
    for key, value in change.items():
        if value is None:
            del entry[key]
        else:
            entry[key] = value
    manifest.write_text(json.dumps(data))
    with pytest.raises(WeightsError, match=message):
        registry.load(str(path), 2)


def test_weights_that_do_not_fit_the_architecture_are_refused(saved_model):
    path, _ = saved_model
    manifest = path.parent / "manifest.json"
    data = json.loads(manifest.read_text())
    data["models"][0]["config"] = {"channels": 16}
    manifest.write_text(json.dumps(data))
    with pytest.raises(WeightsError, match="do not fit"):
        registry.load(str(path), 2)


def test_wrong_scale_and_unknown_names(saved_model):
    path, _ = saved_model
    with pytest.raises(SettingsError, match="x2 model"):
        registry.load(str(path), 4)
    with pytest.raises(SettingsError, match="unknown model"):
        registry.load("nope", 2)
    with pytest.raises(SettingsError, match="scale 5"):
        registry.load("lanczos", 5)


def test_shipped_manifest_matches_files_and_costs():
    """Every shipped entry's file exists, has the listed hash, loads, and its recorded route costs
    are what the code counts today."""
    for entry in registry.shipped_models():
        path = registry.SHIPPED_DIR / entry["file"]
        assert weights.sha256_of(path) == entry["sha256"]
        up = registry.load(entry["name"], entry["scale"])
        for name, rec in entry["validation"]["routes"].items():
            assert up.descriptor.route(name).macs_per_pixel == pytest.approx(rec["macs_per_pixel"], rel=1e-3, abs=0.05)  # recorded to 0.1
    total = sum(p.stat().st_size for p in registry.SHIPPED_DIR.glob("*.safetensors"))
    assert total <= 20 * 1024 * 1024
