"""Recipes: how each shipped model is trained, as a file ``vidsr train --recipe`` runs.

A recipe (``recipes/NAME-xS.toml``) names the architecture, scale and configuration, the run it
starts from (``init``: another recipe, trained first if its run is missing, or a weights file), the
training settings every segment shares (``[train]``: any ``TrainConfig`` field), and one or more
``[[segments]]``: cosine schedules run one after another in the same run folder, the first from
scratch (or ``init``), each later one continuing where the last stopped (``--extend``). A segment
may stop before its schedule ends (``stop_at``); the last one's best validated state is exported.
``as_run`` says whether the segments are exactly what produced the shipped weights or one
schedule standing for a longer history that was not run end to end.

Every segment resumes from the run's checkpoint, so running the same recipe again after an
interruption (or ``--time-limit``) goes on where it stopped.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import fields
from importlib import resources
from pathlib import Path

from ..errors import SettingsError

DOWNSCALER = "learned-downscaler"  # a delivery downscaler's recipe (vidsr.delivery.training)
PROGRESS = "recipe-progress.json"  # in the run folder: how many segments are done
# TrainConfig fields a recipe may not set: the runner sets them (or the user, per invocation)
RUNNER_FIELDS = {"arch", "scale", "out", "init", "model_config", "extend", "time_limit", "threads", "device",
                 "train_dir", "val_dir"}


def find(name_or_path: str | Path) -> Path:
    """A recipe file from a path or a name in ``recipes/``."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    folder = recipes_dir()
    named = folder / f"{name_or_path}.toml"
    if named.is_file():
        return named
    known = ", ".join(sorted(p.stem for p in folder.glob("*.toml")))
    raise SettingsError(f"no recipe {str(name_or_path)!r}; give a .toml file or one of: {known}")


def recipes_dir() -> Path:
    """``recipes/`` of the checkout (installed as ``vidsr.recipe_files``)."""
    return Path(str(resources.files("vidsr.recipe_files")))


def load(path: Path) -> dict:
    """The recipe as a dict, checked: unknown keys and missing segments are errors that name them."""
    from .trainer import TrainConfig

    try:
        recipe = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SettingsError(f"recipe {path.name}: not valid TOML ({e})") from None
    top = {"name", "arch", "scale", "config", "init", "as_run", "ships", "note", "train", "segments", "upscaler"}
    unknown = set(recipe) - top
    if unknown:
        raise SettingsError(f"recipe {path.name}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(top))})")
    for key in ("arch", "scale", "segments"):
        if key not in recipe:
            raise SettingsError(f"recipe {path.name}: missing {key!r}")
    if recipe["arch"] == DOWNSCALER:
        return _check_downscaler(path, recipe)
    settable = {f.name for f in fields(TrainConfig)} - RUNNER_FIELDS
    for where, table in [("[train]", recipe.get("train", {}))] + [(f"segment {i + 1}", s) for i, s in enumerate(recipe["segments"])]:
        bad = set(table) - settable
        if bad:
            raise SettingsError(f"recipe {path.name}: {where} sets {', '.join(sorted(bad))}, which a recipe cannot set")
    for i, seg in enumerate(recipe["segments"]):
        if "iterations" not in seg:
            raise SettingsError(f"recipe {path.name}: segment {i + 1} needs iterations")
    return recipe


def _check_downscaler(path: Path, recipe: dict) -> dict:
    """A delivery downscaler's recipe: the upscaler it is for, one segment, DownscalerConfig fields."""
    from ..delivery.training import RESUME_FREE, config_fields

    if "upscaler" not in recipe:
        raise SettingsError(f"recipe {path.name}: a downscaler recipe names the upscaler it is for")
    if len(recipe["segments"]) != 1 or "init" in recipe:
        raise SettingsError(f"recipe {path.name}: a downscaler trains in one segment, from scratch")
    settable = config_fields() - RESUME_FREE - {"upscaler", "scale", "channels", "convs"}
    for where, table in (("[train]", recipe.get("train", {})), ("segment 1", recipe["segments"][0])):
        bad = set(table) - settable
        if bad:
            raise SettingsError(f"recipe {path.name}: {where} sets {', '.join(sorted(bad))}, which a recipe cannot set")
    if "iterations" not in recipe["segments"][0]:
        raise SettingsError(f"recipe {path.name}: segment 1 needs iterations")
    return recipe


def _train_downscaler(path: Path, recipe: dict, out: Path, threads, time_limit, progress, data) -> dict | None:
    from ..delivery.training import DownscalerConfig, DownscalerTrainer

    cfg = DownscalerConfig(upscaler=recipe["upscaler"], scale=recipe["scale"], out=out, threads=threads,
                           time_limit=time_limit, train_dir=None if data is None else data / "train",
                           val_dir=None if data is None else data / "val", **recipe.get("config", {}),
                           **recipe.get("train", {}), **recipe["segments"][0])
    return DownscalerTrainer(cfg, progress=progress).run()


def run_folder(path: Path, runs: Path) -> Path:
    return runs / path.stem


def train(name_or_path, runs: Path = Path("runs"), threads: int | None = None, time_limit: float | None = None,
          progress: bool = True, data: Path | None = None) -> dict | None:
    """Run a recipe (its ``init`` recipe first when needed) to its export; returns the manifest
    entry, or None when stopped early (time limit, Ctrl-C: run the same again to resume).
    ``data``: the folder holding ``train/`` and ``val/`` (default: the shared data)."""
    from .trainer import TrainConfig, Trainer

    path = find(name_or_path)
    recipe = load(path)
    out = run_folder(path, runs)
    if recipe["arch"] == DOWNSCALER:
        return _train_downscaler(path, recipe, out, threads, time_limit, progress, data)
    init = recipe.get("init")
    if init is not None:
        init_path = Path(init)
        if not init_path.suffix == ".safetensors":  # another recipe: its export is where this starts
            done = train(init, runs, threads, time_limit, progress, data)
            if done is None:
                return None
            init_path = run_folder(find(init), runs) / done["file"]
    else:
        init_path = None
    progress_file = out / PROGRESS
    done_segments = json.loads(progress_file.read_text())["done"] if progress_file.exists() else 0
    segments = recipe["segments"]
    entry = None
    for k, segment in enumerate(segments):
        settings = {**recipe.get("train", {}), **segment}
        cfg = TrainConfig(arch=recipe["arch"], scale=recipe["scale"], out=out, model_config=recipe.get("config", {}),
                          init=init_path, extend=k > 0, threads=threads, time_limit=time_limit,
                          train_dir=None if data is None else data / "train",
                          val_dir=None if data is None else data / "val", **settings)
        if k < done_segments:
            continue
        try:
            trainer = Trainer(cfg, progress=progress)
        except (FileNotFoundError, ValueError) as e:
            raise SettingsError(f"recipe {path.name}: {e}") from None
        entry = trainer.run()
        end = min(cfg.iterations, cfg.stop_at or cfg.iterations)
        if trainer.step < end:
            return None  # stopped early: the checkpoint resumes this segment
        progress_file.write_text(json.dumps({"done": k + 1}) + "\n")
        if k == len(segments) - 1 and entry is None:  # stopped before its schedule's end: export its best
            entry = trainer.finish()
    if entry is None:  # every segment was done already: the export is in the run folder
        from ..models import weights

        entry = weights.read_manifest(out)[0]
    return entry


def publish(name_or_path, runs: Path = Path("runs")) -> dict:
    """Copy a recipe's finished run into the shipped set under the recipe's model name."""
    from .trainer import publish as publish_run

    path = find(name_or_path)
    recipe = load(path)
    if not recipe.get("ships", True):
        raise SettingsError(f"recipe {path.name} is a stage of another model's training, not a shipped model")
    if recipe["arch"] == DOWNSCALER:
        from ..delivery.training import publish as publish_downscaler

        return publish_downscaler(run_folder(path, runs))
    name = recipe.get("name")
    return publish_run(run_folder(path, runs), name=name if name != recipe["arch"] else None)
