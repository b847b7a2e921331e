"""Recipes (``vidsr train --recipe``): every shipped model has one that matches what ships, and a
recipe runs its init first, then its segments, resuming where it stopped."""

from __future__ import annotations

import json

import pytest
import torch

from vidsr.errors import SettingsError
from vidsr.models import registry
from vidsr.train import recipes

from .test_training import image_dirs  # noqa: F401  (the fixture)


def test_every_shipped_model_has_a_recipe_that_builds_it():
    """Name, scale, architecture and configuration of each recipe's export match the shipped
    entry, and each init chain leads to recipes that exist."""
    shipped = {(e["name"], e["scale"]): e for e in registry.shipped_models()}
    by_model, downscalers = {}, {}
    for path in sorted(recipes.recipes_dir().glob("*.toml")):
        r = recipes.load(path)
        if r.get("init") and not r["init"].endswith(".safetensors"):
            recipes.find(r["init"])
        if r["arch"] == recipes.DOWNSCALER:
            downscalers[r["upscaler"], r["scale"]] = r
        elif r.get("ships", True):
            by_model[r["name"], r["scale"]] = r
    assert set(by_model) == set(shipped)
    shipped_down = {(e["upscaler"], e["scale"]): e for e in registry.shipped_downscalers()}
    assert set(downscalers) == set(shipped_down)
    for key, r in downscalers.items():
        assert r["config"] == shipped_down[key]["config"], key
    for key, r in by_model.items():
        e = shipped[key]
        assert r["arch"] == e["architecture"], key
        arch = registry.architecture(r["arch"])
        assert {**arch.defaults, **r.get("config", {})} == {**arch.defaults, **e.get("config", {})}, key


@pytest.mark.parametrize("text,needle", [
    ("arch = 'plain'\nscale = 2\n", "missing 'segments'"),
    ("arch = 'plain'\nscale = 2\nspeed = 3\n[[segments]]\niterations = 5\n", "unknown key(s) speed"),
    ("arch = 'plain'\nscale = 2\n[train]\nout = 'x'\n[[segments]]\niterations = 5\n", "[train] sets out"),
    ("arch = 'plain'\nscale = 2\n[[segments]]\nlr = 1e-3\n", "segment 1 needs iterations"),
])
def test_a_bad_recipe_is_refused_with_what_is_wrong(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SettingsError) as e:
        recipes.load(path)
    assert needle in str(e.value)


def _write(folder, name, text):
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def test_a_recipe_trains_its_init_then_its_segments_and_resumes(image_dirs, tmp_path):  # noqa: F811
    train_dir, _ = image_dirs
    data = train_dir.parent
    folder = tmp_path / "recipes"
    folder.mkdir()
    common = "[train]\nbatch = 4\npatch = 16\npredownscale = 1\nval_every = 10\ncheckpoint_every = 5\nseed = 1\n"
    base = _write(folder, "base-x2", "arch = 'plain'\nscale = 2\nconfig = { channels = 8, convs = 2 }\n"
                  + common + "[[segments]]\niterations = 10\n")
    wide = _write(folder, "wide-x2", f"name = 'wide'\narch = 'arm-plain'\nscale = 2\ninit = '{base}'\n"
                  "config = { widths = [4, 8], convs = 2 }\n" + common + "width_power = 1\n"
                  "[[segments]]\niterations = 20\nlr = 1e-3\nstop_at = 12\n"
                  "[[segments]]\niterations = 30\nlr = 5e-4\n")
    runs = tmp_path / "runs"
    # a time limit of 0 stops the run at its first step: nothing is lost, a rerun goes on
    assert recipes.train(wide, runs, threads=1, time_limit=0, progress=False, data=data) is None
    entry = recipes.train(wide, runs, threads=1, progress=False, data=data)
    assert (runs / "base-x2" / "manifest.json").exists()  # the init recipe ran first
    state = torch.load(runs / "wide-x2" / "checkpoint.pt", weights_only=False)
    assert state["step"] == 30
    # the second segment continued at the first one's stop with its own peak
    assert [tuple(s) for s in state["schedule"]] == [(12, 30, 5e-4)]
    assert json.loads((runs / "wide-x2" / recipes.PROGRESS).read_text()) == {"done": 2}
    assert entry["architecture"] == "arm-plain" and entry["training"]["init"]["architecture"] == "plain"
    # run again: nothing left to train, the same export
    again = recipes.train(wide, runs, threads=1, progress=False, data=data)
    assert again["sha256"] == entry["sha256"]
