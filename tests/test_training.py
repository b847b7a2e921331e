"""Training on generated images: the loss goes down, runs resume exactly, exports are loadable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vidsr.errors import SettingsError, WeightsError
from vidsr.models import registry, weights
from vidsr.train.trainer import TrainConfig, Trainer


def blocks_image(seed: int) -> np.ndarray:
    """Grey rectangles on grey: sharp edges that bicubic blurs and a network can learn to restore."""
    rng = np.random.default_rng(seed)
    img = np.full((96, 128), 128, np.uint8)
    for _ in range(25):
        y, x = rng.integers(0, 90), rng.integers(0, 120)
        h, w = rng.integers(3, 30, 2)
        img[y : y + h, x : x + w] = rng.integers(0, 256)
    return np.stack([img] * 3, axis=-1)


@pytest.fixture(scope="module")
def image_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for kind, n in (("train", 6), ("val", 2)):
        (root / kind).mkdir()
        for i in range(n):
            Image.fromarray(blocks_image(i + (kind == "val") * 50)).save(root / kind / f"{i}.png")
    return root / "train", root / "val"


def config(image_dirs, out: Path, **kw) -> TrainConfig:
    train, val = image_dirs
    base = dict(arch="plain", scale=2, out=out, iterations=40, batch=4, patch=16, lr=1e-3, seed=3,
                train_dir=train, val_dir=val, predownscale=1, val_every=1000, checkpoint_every=1000,
                threads=1, model_config={"channels": 8, "convs": 2})
    base.update(kw)
    return TrainConfig(**base)


def fixed_batch_loss(trainer: Trainer) -> float:
    lr, hr = trainer.sampler.__class__(trainer.sampler.pairs, 2, 16, seed=99).batch(8)
    trainer.model.eval()
    with torch.no_grad():
        return (trainer.model(lr) - hr).abs().mean().item()


def test_a_few_steps_lower_the_loss(image_dirs, tmp_path):
    t = Trainer(config(image_dirs, tmp_path / "run", iterations=300), progress=False)
    before = fixed_batch_loss(t)
    t.model.train()
    t.run()
    assert fixed_batch_loss(t) < before * 0.98  # 300 tiny steps: about 4% lower, seeded


def test_l2_loss_trains_on_the_squared_error(image_dirs, tmp_path):
    l1 = Trainer(config(image_dirs, tmp_path / "l1"), progress=False)
    l2 = Trainer(config(image_dirs, tmp_path / "l2", loss="l2"), progress=False)
    lr, hr = l1.sampler.batch(4)
    with torch.no_grad():
        out = l2.model(lr)
        assert l2.loss(lr, hr).item() == pytest.approx((out - hr).square().mean().item(), rel=1e-6)
        assert l1.loss(lr, hr).item() == pytest.approx((l1.model(lr) - hr).abs().mean().item(), rel=1e-6)
    before = l2.loss(lr, hr).item()
    l2.cfg.iterations = 200
    l2.run()
    with torch.no_grad():
        assert l2.loss(lr, hr).item() < before
    with pytest.raises(ValueError, match="--loss"):
        Trainer(config(image_dirs, tmp_path / "bad", loss="huber"), progress=False)


def test_resume_continues_exactly_where_it_stopped(image_dirs, tmp_path):
    straight = Trainer(config(image_dirs, tmp_path / "a", iterations=12), progress=False)
    straight.run()
    first = Trainer(config(image_dirs, tmp_path / "b", iterations=12, time_limit=0.0), progress=False)
    assert first.run() is None  # stopped by the time limit after one step, checkpoint written
    assert first.step == 1 and (tmp_path / "b" / "checkpoint.pt").exists()
    resumed = Trainer(config(image_dirs, tmp_path / "b", iterations=12), progress=False)
    assert resumed.step == 1
    entry = resumed.run()
    assert entry is not None and resumed.step == 12
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), k


def cli_train_args(image_dirs, out: Path, iterations: int) -> list:
    """``vidsr train`` arguments for a tiny plain net on the generated images."""
    train, val = image_dirs
    return ["train", "--arch", "plain", "--scale", 2, "--iterations", iterations, "--batch", 2, "--patch", 16,
            "--train-dir", train, "--val-dir", val, "--predownscale", 1, "--out", out, "--threads", 1,
            "--config", json.dumps({"channels": 8, "convs": 1}), "--quiet"]


def test_cli_train_resumes_and_exports(image_dirs, tmp_path, cli):
    out = tmp_path / "run"
    args = cli_train_args(image_dirs, out, 6)
    r = cli(*args, "--time-limit", 0)
    assert r.code == 0 and "rerun the same command to resume" in r.out
    r = cli(*args)
    assert r.code == 0 and "done:" in r.out, r.out + r.err
    entry = weights.read_manifest(out)[0]
    assert entry["training"]["iterations"] == 6
    assert weights.sha256_of(out / entry["file"]) == entry["sha256"]
    up = registry.load(str(out / entry["file"]), 2)
    assert up.descriptor.architecture == "plain"


def test_cli_finish_exports_a_run_cut_short(image_dirs, tmp_path, cli):
    out = tmp_path / "run"
    args = cli_train_args(image_dirs, out, 50)
    assert cli(*args, "--time-limit", 0).code == 0  # stopped after its first step
    assert not (out / "manifest.json").exists()
    r = cli(*args, "--finish")
    assert r.code == 0 and "done:" in r.out, r.out + r.err
    entry = weights.read_manifest(out)[0]
    assert entry["training"]["iterations"] == 1  # never validated: the checkpoint's own weights
    assert registry.load(str(out / entry["file"]), 2).descriptor.architecture == "plain"


def test_cli_finish_refuses_a_run_that_never_started(image_dirs, tmp_path, cli):
    out = tmp_path / "none"
    r = cli(*cli_train_args(image_dirs, out, 50), "--finish")
    assert r.code != 0 and "no checkpoint" in r.err and "Traceback" not in r.err
    assert not out.exists()  # nothing left behind


def test_arm_training_samples_by_cost_squared_and_exports_a_table(image_dirs, tmp_path):
    t = Trainer(config(image_dirs, tmp_path / "arm", arch="arm-wdsr", iterations=6,
                       model_config={"widths": [4, 8, 16], "blocks": 1}), progress=False)
    costs = np.array([registry.describe("arm-wdsr", "arm-wdsr", 2, {"widths": [4, 8, 16], "blocks": 1}).route(n).macs_per_pixel
                      for n in t.width_names])
    assert np.allclose(t.width_probs.numpy(), costs**2 / (costs**2).sum())
    entry = t.run()
    state, extras = weights.load_checked({**entry, "folder": str(tmp_path / "arm")})
    assert extras["arm.psnr"].shape == (4, 30)  # bicubic + three widths, 30 edge bins
    assert set(entry["validation"]["routes"]) == {"bicubic", "w4", "w8", "w16"}
    # the router's own quality at the reference cost, measured at export, is what reloading the file gives
    from vidsr.train.data import load_pairs
    from vidsr.train.evaluate import ROUTED_MACS_PER_INPUT_PIXEL, evaluate_routed

    routed = entry["validation"]["routed"]
    full_macs = entry["validation"]["routes"]["w16"]["macs_per_pixel"]
    assert routed["macs_per_pixel"] == ROUTED_MACS_PER_INPUT_PIXEL / 4
    assert routed["budget"] == pytest.approx(min(1.0, ROUTED_MACS_PER_INPUT_PIXEL / 4 / full_macs), abs=1e-3)
    again, tile = evaluate_routed(registry.load(str(tmp_path / "arm" / entry["file"]), 2), load_pairs(image_dirs[1], 2),
                                  routed["budget"])
    assert abs(routed["psnr_y"] - again) < 1e-3 and routed["tile"] == tile == 64  # the engine's ARM default
    assert entry["validation"]["routes"]["bicubic"]["psnr_y"] - 0.5 < routed["psnr_y"]
    val = [row for row in map(json.loads, (tmp_path / "arm" / "log.jsonl").read_text().splitlines()) if "step" in row]
    assert set(val[-1]["val_gain_db_by_width"]) == {"w4", "w8"}  # the narrower widths, beside the full one


def test_arm_espcn_trains_exports_a_table_and_routes(image_dirs, tmp_path):
    """The real-time model: ESPCN under the ARM router (two routes: bicubic or the net per tile)."""
    from vidsr.budget import MacBudget
    from vidsr.engine import Engine
    from vidsr.routing import build_router

    out = tmp_path / "espcn"
    entry = Trainer(config(image_dirs, out, arch="arm-espcn", iterations=4, model_config={"channels": 4}), progress=False).run()
    _, extras = weights.load_checked({**entry, "folder": str(out)})
    assert extras["arm.psnr"].shape == (2, 30)
    up = registry.load(str(out / entry["file"]), 2)
    assert [r.name for r in up.descriptor.routes] == ["bicubic", "full"] and up.descriptor.router == "arm"
    x = torch.rand(1, 1, 64, 96, generator=torch.Generator().manual_seed(0))
    router = build_router(up)
    router.table.psnr[1] = router.table.psnr[0] + 1  # four steps teach little: say the net gains 1 dB
    y, stats = Engine(up, router=router).upscale(x, MacBudget(0.6))  # one of its two tiles, with its context
    assert y.shape == (1, 1, 128, 192)
    assert 0.3 < stats.route_shares["full"] < 0.7 and stats.macs_per_pixel < up.descriptor.full_route.macs_per_pixel


def test_arm_width_power_sets_the_sampling(image_dirs, tmp_path, cli):
    cfg = dict(arch="arm-wdsr", iterations=6, model_config={"widths": [4, 8, 16], "blocks": 1})
    t = Trainer(config(image_dirs, tmp_path / "arm", width_power=1.0, **cfg), progress=False)
    costs = np.array([registry.describe("arm-wdsr", "arm-wdsr", 2, cfg["model_config"]).route(n).macs_per_pixel
                      for n in t.width_names])
    assert np.allclose(t.width_probs.numpy(), costs / costs.sum())
    assert t.run()["training"]["width_power"] == 1.0  # the manifest says how widths were sampled
    args = cli_train_args(image_dirs, tmp_path / "plain", 2)
    r = cli(*args, "--width-power", 1)
    assert r.code != 0 and "ARM" in r.err and "Traceback" not in r.err
    arm_args = [a if a != "plain" else "arm-wdsr" for a in args]
    r = cli(*arm_args, "--width-power", -1)
    assert r.code != 0 and "between 0 and 4" in r.err



def test_a_fresh_supernet_trains_its_full_width_alone_first(image_dirs, tmp_path, cli):
    # a deep plain ReLU stack trained from scratch on all widths at once stayed at bicubic (its last
    # hidden layer died); the first steps train the full width alone, then widths are drawn
    cfg = dict(arch="arm-plain", iterations=12, model_config={"widths": [4, 8], "convs": 2})
    t = Trainer(config(image_dirs, tmp_path / "a", full_width_steps=6, width_power=0.0, **cfg), progress=False)
    routes = []
    forward = t.model.forward

    def spy(x, route=None):
        if t.model.training:
            routes.append(route)
        return forward(x, route)

    t.model.forward = spy
    assert t.run()["training"]["full_width_steps"] == 6
    assert routes[:6] == ["w8"] * 6 and len(routes) == 12
    assert "w4" in routes[6:]  # equal odds for six draws, seeded: the narrow width does come up
    # the default: a tenth of the iterations from scratch, none over weights that are already trained
    assert Trainer(config(image_dirs, tmp_path / "b", **cfg), progress=False).full_width_steps == 1
    given = tmp_path / "plain" / Trainer(config(image_dirs, tmp_path / "plain", iterations=2), progress=False).run()["file"]
    assert Trainer(config(image_dirs, tmp_path / "c", init=given, **cfg), progress=False).full_width_steps == 0
    r = cli(*cli_train_args(image_dirs, tmp_path / "d", 2), "--full-width-steps", 5)
    assert r.code != 0 and "ARM" in r.err and "Traceback" not in r.err

def test_pcsr_trains_in_two_stages(image_dirs, tmp_path):
    cfg = config(image_dirs, tmp_path / "pcsr", arch="pcsr-wdsr", iterations=8,
                 model_config={"channels": 8, "blocks": 1, "upsamplers": [[4], [8, 8]], "classifier": [4]})
    t = Trainer(cfg, progress=False)
    t.run()
    assert t.stage == 1
    # one more stage-1 step changes only the light upsampler and the classifier
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    t.model.train()
    lr, hr = t.sampler.batch(4)
    loss = t.loss(lr, hr)
    t.opt.zero_grad()
    loss.backward()
    t.opt.step()
    after = t.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("upsamplers.0", "classifier")) for k in changed), changed


def test_pcsr_light_head_retrains_over_an_initialised_backbone(image_dirs, tmp_path):
    # a finished PCSR run's weights start a new run with a different light head; with the whole run
    # in stage 1 only the light head and the classifier train, so backbone and heavy stay as given
    small = {"channels": 8, "blocks": 1, "upsamplers": [[4], [8, 8]], "classifier": [4]}
    first = Trainer(config(image_dirs, tmp_path / "a", arch="pcsr-wdsr", iterations=4, model_config=small), progress=False)
    entry = first.run()
    given = {k: v.clone() for k, v in first.model.state_dict().items()}
    wider = {**small, "upsamplers": [[6, 6], [8, 8]], "unfold": [True, True]}
    cfg = config(image_dirs, tmp_path / "b", arch="pcsr-wdsr", iterations=6, model_config=wider,
                 init=tmp_path / "a" / entry["file"], stage1_fraction=1.0)
    cfg.time_limit = 0.0  # stop after the first step and resume: the export must still name its start
    assert Trainer(cfg, progress=False).run() is None
    cfg.time_limit = None
    second = Trainer(cfg, progress=False)
    assert second.step == 1
    out = second.run()
    state = second.model.state_dict()
    for k, v in state.items():
        if k.startswith(("backbone", "upsamplers.1")):
            assert torch.equal(v, given[k]), k
    assert state["upsamplers.0.project.weight"].shape != given["upsamplers.0.project.weight"].shape
    assert not torch.equal(state["classifier.layers.0.weight"], given["classifier.layers.0.weight"])
    init = out["training"]["init"]
    assert init["file"] == entry["file"] and init["sha256"] == entry["sha256"]
    assert any(k.startswith("upsamplers.0") for k in init["fresh_tensors"])
    assert not any(k.startswith(("backbone", "upsamplers.1")) for k in init["fresh_tensors"])


def test_a_trained_plain_net_starts_the_plain_supernet_at_full_width(image_dirs, tmp_path):
    # arm-plain's full width has the plain net's layout: --init from a plain run makes the full
    # route that net from step 0; an architecture sharing no tensor is refused
    entry = Trainer(config(image_dirs, tmp_path / "plain", iterations=3), progress=False).run()
    given = tmp_path / "plain" / entry["file"]
    slim = Trainer(config(image_dirs, tmp_path / "slim", arch="arm-plain", iterations=2, init=given,
                          model_config={"widths": [4, 8], "convs": 2}), progress=False)
    plain = registry.load(str(given), 2)
    x = torch.rand(1, 1, 12, 12)
    slim.model.eval()
    with torch.no_grad():
        assert torch.allclose(slim.model(x, "w8"), plain.module(x), atol=1e-6)
    assert slim.init_info["architecture"] == "plain" and slim.init_info["fresh_tensors"] == []
    with pytest.raises(ValueError, match="shares no tensor"):
        Trainer(config(image_dirs, tmp_path / "wdsr", arch="wdsr", init=given,
                       model_config={"channels": 8, "blocks": 1}), progress=False)


def test_sort_channels_keeps_the_full_width_and_starts_the_narrow_width_from_the_units_it_uses(image_dirs, tmp_path):
    # a plain net whose first hidden channels are dead starts arm-plain with a dead w4; sorted by
    # importance, the full width computes the same and w4 is made of live units
    entry = Trainer(config(image_dirs, tmp_path / "plain", iterations=3), progress=False).run()
    given = tmp_path / "plain" / entry["file"]
    state = registry.load(str(given), 2).module.state_dict()
    state["body.0.bias"][:4] = -100.0  # the first conv's first four units never fire
    from safetensors.torch import save_file

    dead = tmp_path / "dead" / "plain-x2.safetensors"
    dead.parent.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(dead))
    manifest = json.loads((given.parent / "manifest.json").read_text())
    manifest["models"][0].update(file=dead.name, sha256=weights.sha256_of(dead), bytes=dead.stat().st_size)
    (dead.parent / "manifest.json").write_text(json.dumps(manifest))

    def start(out, **kw):
        t = Trainer(config(image_dirs, tmp_path / out, arch="arm-plain", iterations=2, init=dead,
                           model_config={"widths": [4, 8], "convs": 2}, **kw), progress=False)
        t.model.eval()
        return t

    plain, as_is, ordered = registry.load(str(dead), 2).module, start("as-is"), start("sorted", sort_channels=True)
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(ordered.model(x, "w8"), plain(x), atol=1e-5)  # the full width as given
        assert float(as_is.model.body[0](x)[:, :4].amax()) < 0  # w4's first layer: dead as given
        assert float(ordered.model.body[0](x)[:, :4].amax()) > 0  # live once sorted
    assert ordered.init_info["sorted_channels"] > 0 and "sorted_channels" not in as_is.init_info
    with pytest.raises(ValueError, match="sort-channels"):
        Trainer(config(image_dirs, tmp_path / "wdsr", arch="arm-wdsr", init=dead, sort_channels=True,
                       model_config={"widths": [4, 8], "blocks": 1}), progress=False)


def test_cli_sort_channels_needs_init(image_dirs, tmp_path, cli):
    r = cli(*cli_train_args(image_dirs, tmp_path / "run", 2), "--sort-channels")
    assert r.code != 0 and "--sort-channels goes with --init" in r.err and not (tmp_path / "run").exists()


def test_an_x2_run_starts_an_x4_run_with_its_body(tmp_path):
    # the body's convolutions do not depend on the scale, the upsampling tail does: --init from an
    # x2 net copies the former and starts the latter fresh
    image_dirs = tmp_path / "train", tmp_path / "val"
    for folder, seeds in zip(image_dirs, ((1, 2), (60,))):
        folder.mkdir()
        for i in seeds:  # 192 px tall: one 32-px LR tile at x4 for the Edge-to-PSNR table
            Image.fromarray(np.concatenate([blocks_image(i), blocks_image(i + 1)])).save(folder / f"{i}.png")
    cfg = dict(arch="arm-plain", model_config={"widths": [4, 8], "convs": 2})
    entry = Trainer(config(image_dirs, tmp_path / "x2", iterations=3, **cfg), progress=False).run()
    given = registry.load(str(tmp_path / "x2" / entry["file"]), 2).module.state_dict()
    t = Trainer(config(image_dirs, tmp_path / "x4", scale=4, iterations=2, init=tmp_path / "x2" / entry["file"],
                       **cfg), progress=False)
    own = t.model.state_dict()
    copied = [k for k in own if k not in t.init_info["fresh_tensors"]]
    assert copied and t.init_info["fresh_tensors"] and t.init_info["scale"] == 2
    for k in copied:
        assert torch.equal(own[k], given[k]), k
    for k in t.init_info["fresh_tensors"]:
        assert own[k].shape != given[k].shape, k
    assert t.run()["scale"] == 4
    # a weights file for inference is still checked against the scale asked for
    with pytest.raises(SettingsError, match="x2 model"):
        registry.load(str(tmp_path / "x2" / entry["file"]), 4)
    # validation images too small for one table tile at x4 get a clear error, not a crash in torch
    small = tmp_path / "small"
    small.mkdir()
    Image.fromarray(blocks_image(3)).save(small / "0.png")
    with pytest.raises(ValueError, match="no validation image has a 32x32 LR tile at x4"):
        Trainer(config(image_dirs, tmp_path / "x4s", scale=4, iterations=1, val_dir=small, **cfg), progress=False).run()


def test_supernet_runs_keep_the_state_best_over_all_widths(image_dirs, tmp_path):
    # every width of a supernet ships, so the best state is the best mean over widths: a later
    # validation with a slightly worse full width but better narrow ones replaces the earlier best
    t = Trainer(config(image_dirs, tmp_path / "r", arch="arm-plain", model_config={"widths": [4, 8], "convs": 2}),
                progress=False)
    rows = [{"val_psnr_y": 30.0, "val_gain_db": 3.0, "val_gain_db_by_width": {"w4": 1.0}},
            {"val_psnr_y": 29.9, "val_gain_db": 2.9, "val_gain_db_by_width": {"w4": 1.5}}]
    for step, row in zip((10, 20), rows):
        t.step = step
        t.keep_best_or_roll_back(t.selection_score(row), 0.0)
    assert t.best["step"] == 20 and t.best["metric"] == "mean_gain_db_over_widths"
    # --select full: a supernet shipped mainly as a full network keeps the state best at full width
    f = Trainer(config(image_dirs, tmp_path / "f", arch="arm-plain", model_config={"widths": [4, 8], "convs": 2},
                       select="full"), progress=False)
    for step, row in zip((10, 20), rows):
        f.step = step
        f.keep_best_or_roll_back(f.selection_score(row), 0.0)
    assert f.best["step"] == 10 and f.best["metric"] == "psnr_y"
    with pytest.raises(ValueError, match="--select must be"):
        Trainer(config(image_dirs, tmp_path / "g", select="best"), progress=False)
    # a plain net is chosen by its PSNR alone
    p = Trainer(config(image_dirs, tmp_path / "p"), progress=False)
    assert p.selection_score({"val_psnr_y": 31.0, "val_gain_db": 4.0}) == 31.0


def test_init_refuses_weights_without_a_matching_manifest(image_dirs, tmp_path):
    bogus = tmp_path / "w.safetensors"
    bogus.write_bytes(b"not weights")
    with pytest.raises(WeightsError):
        Trainer(config(image_dirs, tmp_path / "r", init=bogus), progress=False)


def test_extend_continues_a_finished_run_with_a_warm_restart(image_dirs, tmp_path):
    first = Trainer(config(image_dirs, tmp_path / "r", iterations=6), progress=False)
    first.run()
    weights_before = {k: v.clone() for k, v in first.model.state_dict().items()}
    with pytest.raises(ValueError, match="--extend"):
        Trainer(config(image_dirs, tmp_path / "r", iterations=10), progress=False)
    more = Trainer(config(image_dirs, tmp_path / "r", iterations=10, lr=5e-4, extend=True), progress=False)
    assert more.step == 6 and more.lr_at(6) == pytest.approx(5e-4)
    assert more.lr_at(10) == pytest.approx(5e-6)
    entry = more.run()
    assert more.step == 10
    # the export holds the better validated of steps 6 and 10; the run itself went on to 10
    assert entry["training"]["iterations"] in (6, 10) and entry["training"].get("run_iterations", 10) == 10
    final = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=False)
    assert final["step"] == 10 and any(not torch.equal(weights_before[k], v) for k, v in final["model"].items())


def test_extend_keeps_the_full_width_steps_the_run_started_with(image_dirs, tmp_path):
    # a supernet's first tenth trains the full width alone; extending the run to more iterations
    # must neither redo that nor record a tenth of the new length as what happened
    cfg = dict(arch="arm-plain", model_config={"widths": [4, 8], "convs": 2})
    assert Trainer(config(image_dirs, tmp_path / "r", iterations=20, **cfg), progress=False).run()[
        "training"]["full_width_steps"] == 2
    more = Trainer(config(image_dirs, tmp_path / "r", iterations=40, extend=True, **cfg), progress=False)
    assert more.full_width_steps == 2
    assert more.run()["training"]["full_width_steps"] == 2
    # a checkpoint saved before the value was kept: a tenth of the first segment's length
    state = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=False)
    del state["full_width_steps"]
    torch.save(state, tmp_path / "r" / "checkpoint.pt")
    assert Trainer(config(image_dirs, tmp_path / "r", iterations=60, extend=True, **cfg), progress=False).full_width_steps == 2


def test_publish_ships_a_run_under_its_own_or_another_name(image_dirs, tmp_path):
    from vidsr.errors import SettingsError
    from vidsr.train.trainer import publish

    cfg = dict(arch="arm-plain", model_config={"widths": [4, 8], "convs": 2})
    run = tmp_path / "run"
    Trainer(config(image_dirs, run, iterations=2, **cfg), progress=False).run()
    shipped = tmp_path / "shipped"
    publish(run, shipped)
    wide = publish(run, shipped, name="arm-plain-wide")
    entries = {e["name"]: e for e in weights.read_manifest(shipped)}
    assert set(entries) == {"arm-plain", "arm-plain-wide"}  # beside the default one, not over it
    assert wide["file"] == "arm-plain-wide-x2.safetensors" and (shipped / wide["file"]).is_file()
    assert entries["arm-plain-wide"]["sha256"] == entries["arm-plain"]["sha256"] == weights.sha256_of(shipped / wide["file"])
    up = registry.load(str(shipped / wide["file"]), 2)
    assert up.descriptor.name == "arm-plain-wide" and up.descriptor.architecture == "arm-plain"
    for bad in ("plain", "Wide Net", "../x"):
        with pytest.raises(SettingsError, match="--name"):
            publish(run, shipped, name=bad)


def test_gradients_are_clipped_and_their_largest_norm_is_logged(image_dirs, tmp_path):
    t = Trainer(config(image_dirs, tmp_path / "clip", iterations=5, val_every=5, clip=1e-3), progress=False)
    t.run()
    row = next(json.loads(line) for line in (tmp_path / "clip" / "log.jsonl").read_text().splitlines())
    assert row["grad_norm_max"] > 1e-3  # the norm before clipping
    clipped = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in t.model.parameters() if p.grad is not None]))
    assert clipped <= 1e-3 * 1.001


def test_divergence_rolls_back_to_the_best_state_with_half_the_peak_lr(image_dirs, tmp_path):
    t = Trainer(config(image_dirs, tmp_path / "div", iterations=5), progress=False)
    t.run()
    t.keep_best_or_roll_back(30.0, spent=1.0)  # best so far: saved with the whole state
    best = {k: v.clone() for k, v in t.model.state_dict().items()}
    t.cfg.iterations, t.step = 20, 9  # pretend it trained on and the weights blew up
    with torch.no_grad():
        for p in t.model.parameters():
            p.add_(1.0)
    t.keep_best_or_roll_back(29.5, spent=2.0)  # within DIVERGED_DB: nothing happens
    assert t.step == 9
    t.keep_best_or_roll_back(28.5, spent=3.0)
    assert t.step == 5
    assert all(torch.equal(best[k], v) for k, v in t.model.state_dict().items())
    assert t.schedule[-1] == (5, 20, pytest.approx(5e-4))  # the run's peak was 1e-3
    rows = [json.loads(line) for line in (tmp_path / "div" / "log.jsonl").read_text().splitlines()]
    assert {"step": 9, "diverged": 28.5, "best": 30.0, "back_to_step": 5}.items() <= rows[-1].items()
    assert torch.load(tmp_path / "div" / "checkpoint.pt", weights_only=False)["step"] == 5  # resumable from there


def test_export_takes_the_best_validated_weights_when_the_run_ends_below_them(image_dirs, tmp_path, monkeypatch):
    vals = iter([31.0, 30.6, 30.4])  # best at the first validation; later ones lower, not diverged
    monkeypatch.setattr(Trainer, "validate", lambda self: {"val_psnr_y": next(vals), "val_gain_db": 0.0})
    monkeypatch.setattr(Trainer, "export", lambda self: {"weights_step": self.weights_step,
                                                         "model": {k: v.clone() for k, v in self.model.state_dict().items()}})
    t = Trainer(config(image_dirs, tmp_path / "b", iterations=6, val_every=2), progress=False)
    got = t.run()
    best = torch.load(tmp_path / "b" / "best.pt", weights_only=False)
    assert best["step"] == 2 and got["weights_step"] == 2
    assert all(torch.equal(best["model"][k], v) for k, v in got["model"].items())
    final = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert final["step"] == 6  # the checkpoint keeps the final state, for --extend
    assert not all(torch.equal(final["model"][k], v) for k, v in got["model"].items())


def test_a_moving_average_is_validated_exported_and_resumed(image_dirs, tmp_path):
    decay = 0.8
    straight = Trainer(config(image_dirs, tmp_path / "a", iterations=8, ema=decay), progress=False)
    raw_steps = []
    update = straight.ema.update_parameters
    straight.ema.update_parameters = lambda m: (raw_steps.append({k: v.clone() for k, v in m.state_dict().items()}),
                                                update(m))
    entry = straight.run()
    # the average of the raw weights after each step: the first copied, then decay * avg + (1 - decay) * w
    expect = raw_steps[0]
    for w in raw_steps[1:]:
        expect = {k: decay * expect[k] + (1 - decay) * w[k] for k in w}
    shipped = registry.load(str(tmp_path / "a" / entry["file"]), 2).module.state_dict()
    for k, v in shipped.items():
        assert torch.allclose(v, expect[k], atol=1e-6), k
        assert not torch.allclose(v, straight.model.state_dict()[k]), k  # not the raw weights
    assert entry["training"]["ema"] == decay
    from vidsr.train.evaluate import evaluate
    averaged = evaluate(lambda x: straight.ema.module(x), straight.val_pairs, 2)["psnr_y"]
    raw = evaluate(lambda x: straight.model(x), straight.val_pairs, 2)["psnr_y"]
    assert averaged != raw and straight.validate()["val_psnr_y"] == round(averaged, 4)  # validation sees the average
    # stopped after one step and resumed: the same average as the straight run
    first = Trainer(config(image_dirs, tmp_path / "b", iterations=8, ema=decay, time_limit=0.0), progress=False)
    assert first.run() is None
    resumed = Trainer(config(image_dirs, tmp_path / "b", iterations=8, ema=decay), progress=False)
    resumed.run()
    for k, v in resumed.ema.module.state_dict().items():
        assert torch.allclose(v, straight.ema.module.state_dict()[k], atol=1e-6), k


def test_a_moving_average_added_on_a_resume_starts_from_the_weights(image_dirs, tmp_path, cli):
    first = Trainer(config(image_dirs, tmp_path / "r", iterations=4), progress=False)
    first.run()
    more = Trainer(config(image_dirs, tmp_path / "r", iterations=6, extend=True, ema=0.999), progress=False)
    assert more.ema is not None and int(more.ema.n_averaged) == 0  # its first update copies the weights
    more.run()
    state = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=False)
    assert state["ema"] is not None and int(state["ema"]["n_averaged"]) == 2
    r = cli(*cli_train_args(image_dirs, tmp_path / "x", 2), "--ema", "1.5")
    assert r.code != 0 and "--ema must be a decay" in r.err and "Traceback" not in r.err


def assert_starts_as_the_narrower(model, given, atol: float) -> torch.Tensor:
    """A widths-[4, 8, 12] supernet started from ``given`` (widths [4, 8]): its old widths compute what
    they did and its new top width what the old top did. Returns the input it checked."""
    x = torch.rand(2, 1, 12, 12)
    model.eval()
    with torch.no_grad():
        for w in ("w4", "w8"):
            assert torch.allclose(model(x, w), given(x, w), atol=atol), w
        assert torch.allclose(model(x, "w12"), given(x, "w8"), atol=atol)
    model.train()
    return x


def test_a_deeper_plain_stack_started_from_a_shallower_one_keeps_every_width(image_dirs, tmp_path):
    # --init from a supernet with fewer hidden convs (and a narrower top width): the new convs start
    # as identities before the tail, so every old width computes what it did; then they train
    old = dict(arch="arm-plain", model_config={"widths": [4, 8], "convs": 2})
    entry = Trainer(config(image_dirs, tmp_path / "c2", iterations=3, **old), progress=False).run()
    loaded = registry.load(str(tmp_path / "c2" / entry["file"]), 2)
    given = loaded.module
    with torch.no_grad():  # a non-zero tail and biases, so a wrong mapping cannot hide behind zeros
        for p in given.parameters():
            p.add_(0.05 * torch.randn_like(p))
    weights.save(tmp_path / "c2" / entry["file"], given.state_dict(), loaded.extras)
    entries = json.loads((tmp_path / "c2" / "manifest.json").read_text())["models"]
    entries[0]["sha256"] = weights.sha256_of(tmp_path / "c2" / entry["file"])
    weights.write_manifest(tmp_path / "c2", entries)
    t = Trainer(config(image_dirs, tmp_path / "c4", arch="arm-plain", iterations=4, init=tmp_path / "c2" / entry["file"],
                       model_config={"widths": [4, 8, 12], "convs": 4}), progress=False)
    assert t.init_info["identity_layers"] == ["body.6", "body.8"] and t.init_info["fresh_tensors"] == []
    x = assert_starts_as_the_narrower(t.model, given, atol=1e-5)
    t.run()  # and the identities train
    t.model.eval()
    with torch.no_grad():
        assert not torch.allclose(t.model(x, "w8"), given(x, "w8"), atol=1e-4)
    # a leaky ReLU after an identity conv would scale negatives twice: refused, not approximated
    with pytest.raises(ValueError, match="only relu stacks can be deepened"):
        Trainer(config(image_dirs, tmp_path / "l4", arch="arm-plain", iterations=4, init=tmp_path / "c2" / entry["file"],
                       model_config={"widths": [4, 8], "convs": 4, "act": "lrelu"}), progress=False)


def test_a_supernet_widened_from_a_narrower_one_keeps_every_old_width(image_dirs, tmp_path):
    # --init from a supernet of the same scale with a smaller top width: each old width is the
    # leading slice of the new tensors, and the new top width starts as the old top width
    old = dict(arch="arm-plain", model_config={"widths": [4, 8], "convs": 2})
    entry = Trainer(config(image_dirs, tmp_path / "w8", iterations=3, **old), progress=False).run()
    given = registry.load(str(tmp_path / "w8" / entry["file"]), 2).module
    t = Trainer(config(image_dirs, tmp_path / "w12", arch="arm-plain", iterations=4, init=tmp_path / "w8" / entry["file"],
                       model_config={"widths": [4, 8, 12], "convs": 2}), progress=False)
    assert t.init_info["grown_tensors"] and t.init_info["fresh_tensors"] == []
    x = assert_starts_as_the_narrower(t.model, given, atol=1e-6)
    t.run()  # and it trains: the new channels come into use
    t.model.eval()
    with torch.no_grad():
        assert not torch.allclose(t.model(x, "w12"), t.model(x, "w8"), atol=1e-4)


def test_settings_changed_on_a_resume_are_logged_and_exported(image_dirs, tmp_path):
    cfg = dict(arch="arm-plain", model_config={"widths": [4, 8], "convs": 2})
    first = Trainer(config(image_dirs, tmp_path / "r", iterations=6, time_limit=0.0, **cfg), progress=False)
    assert first.run() is None and first.step == 1
    same = Trainer(config(image_dirs, tmp_path / "r", iterations=6, time_limit=0.0, threads=2, **cfg), progress=False)
    assert same.changes == []  # threads and time limits change nothing the run learns
    same.run()
    more = Trainer(config(image_dirs, tmp_path / "r", iterations=6, width_power=1.0, ema=0.9, **cfg), progress=False)
    assert more.changes == [{"step": 2, "width_power": [2.0, 1.0], "ema": [0.0, 0.9]}]
    entry = more.run()
    assert entry["training"]["changed_on_resume"] == more.changes
    rows = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert {"step": 2, "resumed_with": {"width_power": [2.0, 1.0], "ema": [0.0, 0.9]}}.items() <= rows[0].items()


def test_an_export_from_before_a_resume_reports_the_settings_its_weights_were_trained_with(image_dirs, tmp_path, monkeypatch):
    """A best state from before an --extend at a lower lr (and another width power) was trained with
    the old values; the manifest must say so, not the last invocation's."""
    vals = iter([31.0] + [30.0] * 20)  # the first validation stays the best
    monkeypatch.setattr(Trainer, "validate", lambda self: {"val_psnr_y": next(vals), "val_gain_db": 0.0})
    cfg = dict(arch="arm-plain", model_config={"widths": [4, 8], "convs": 2}, val_every=2, select="full")
    Trainer(config(image_dirs, tmp_path / "r", iterations=4, lr=1e-3, **cfg), progress=False).run()
    more = Trainer(config(image_dirs, tmp_path / "r", iterations=8, lr=2e-4, width_power=1.0, extend=True, **cfg),
                   progress=False)
    assert more.changes == [{"step": 4, "lr": [1e-3, 2e-4], "width_power": [2.0, 1.0]}]
    training = more.run()["training"]
    assert training["iterations"] == 2 and training["run_iterations"] == 8
    assert training["lr"] == 1e-3 and training["width_power"] == 2.0
    assert "changed_on_resume" not in training  # the change came after the exported step


@pytest.mark.parametrize("flag, value", [("--width-power", "1"), ("--select", "full"), ("--full-width-steps", "5")])
def test_arm_only_training_flags_are_refused_for_other_architectures(image_dirs, tmp_path, cli, flag, value):
    out = tmp_path / "run"
    r = cli(*cli_train_args(image_dirs, out, 2), flag, value)
    assert r.code != 0 and f"{flag} applies to ARM supernets, not plain" in r.err and "Traceback" not in r.err
    assert not out.exists()


@pytest.mark.parametrize("flags, needle", [
    (["--batch", "0"], "--batch: must be at least 1"),
    (["--val-every", "0"], "--val-every: must be at least 1"),
    (["--iterations", "0"], "--iterations: must be at least 1"),
    (["--seed", "-1"], "--seed: must be at least 0"),
    (["--clip", "-1"], "--clip must be 0"),
    (["--device", "bogus"], "unknown --device"),
    (["--config", '{"bogus": 1}'], "does not fit plain"),
])
def test_nonsense_training_flags_are_one_line(image_dirs, tmp_path, cli, flags, needle):
    out = tmp_path / "run"
    r = cli(*cli_train_args(image_dirs, out, 2), *flags)
    assert r.code == 2 and needle in r.err and "Traceback" not in r.err


def test_a_damaged_checkpoint_is_named_not_a_traceback(image_dirs, tmp_path, cli):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"PK\x03\x04 not a whole checkpoint")
    r = cli(*cli_train_args(image_dirs, out, 2))
    assert r.code == 2 and "cannot resume from this checkpoint" in r.err and "Traceback" not in r.err


def test_data_names_the_folder_of_train_and_val(image_dirs, tmp_path, cli):
    train, _ = image_dirs
    r = cli("train", "--arch", "plain", "--data", tmp_path / "nowhere", "--iterations", "2", "--out", tmp_path / "run")
    assert r.code == 2 and str(tmp_path / "nowhere" / "train") in r.err
