"""Presets: named operating points in TOML (``presets/*.toml``), validated before any work.

A preset may set any of the keys below; flags on the command line override it. Unknown keys, wrong
types and out-of-range values are errors that name the preset, the key and what is allowed.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .errors import SettingsError
from .routing import PCSR_MODES, ROUTER_CHOICES
MIN_TILE = 8  # smallest LR tile side any front end accepts (presets, vidsr / vidsr bench --tile, vsvidsr)


def _number(lo=None, hi=None, integer=False, lo_open=False):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            return "an integer" if integer else "a number"
        if not math.isfinite(v):  # TOML has nan and inf, and nan passes every comparison below
            return "a finite number"
        if lo is not None and (v <= lo if lo_open else v < lo):
            return f"{'>' if lo_open else '>='} {lo}"
        if hi is not None and v > hi:
            return f"<= {hi}"
        return None

    return check


def _choice(options):
    # of the options' own type: 2.0 == 2 (and true == 1), but a float scale fails deep in the model
    return lambda v: None if any(type(v) is type(o) and v == o for o in options) else f"one of {', '.join(map(str, options))}"


def _string(v):
    return None if isinstance(v, str) and v else "a non-empty string"


TOP_KEYS = {
    "description": _string,
    "model": _string,
    "scale": _choice((2, 3, 4)),
    "router": _choice(ROUTER_CHOICES),
    "budget": _number(0.0, 1.0),
    "fps_target": _number(0.0, 1000.0, lo_open=True),
    "tile": _number(MIN_TILE, 4096, integer=True),
    "overlap": _number(0, 256, integer=True),
    "pcsr_mode": _choice(PCSR_MODES),
    "pcsr_k": _number(0.0, 100.0),
    "container": _choice(("mkv", "mp4", "mov", "webm", "ts", "avi", "nut")),  # output suffix when no -o is given
}
ENCODER_KEYS = {
    "codec": _string,
    "crf": _number(0, 63, integer=True),
    "pix_fmt": _string,
}


@dataclass
class Preset:
    name: str
    values: dict = field(default_factory=dict)  # flat: top keys + codec/crf/pix_fmt
    encoder_options: dict = field(default_factory=dict)

    def get(self, key, default=None):
        return self.values.get(key, default)


def preset_dir() -> Path:
    return Path(str(resources.files("vidsr.preset_files")))


def available() -> dict[str, Path]:
    return {p.stem: p for p in sorted(preset_dir().glob("*.toml"))}


def load(name_or_path: str) -> Preset:
    path = Path(name_or_path)
    if not (name_or_path.endswith(".toml") or path.is_file()):
        presets = available()
        if name_or_path not in presets:
            raise SettingsError(f"unknown preset {name_or_path!r}; choose from {', '.join(presets)} or give a .toml file")
        path = presets[name_or_path]
    if not path.is_file():
        raise SettingsError(f"preset file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SettingsError(f"preset {path.name}: not valid TOML ({e})") from None
    return validate(path.stem, data)


def validate(name: str, data: dict) -> Preset:
    preset = Preset(name)
    for key, value in data.items():
        if key == "encoder":
            if not isinstance(value, dict):
                raise SettingsError(f"preset {name}: [encoder] must be a table")
            for ekey, evalue in value.items():
                if ekey == "options":
                    if not isinstance(evalue, dict) or not all(isinstance(v, (str, int, float)) for v in evalue.values()):
                        raise SettingsError(f"preset {name}: [encoder.options] must map names to values")
                    preset.encoder_options = {k: str(v) for k, v in evalue.items()}
                    continue
                _check(name, f"encoder.{ekey}", ENCODER_KEYS, ekey, evalue)
                preset.values[ekey] = evalue
            continue
        _check(name, key, TOP_KEYS, key, value)
        preset.values[key] = value
    if "budget" in preset.values and "fps_target" in preset.values:  # two ways of saying one thing, as the flags
        raise SettingsError(f"preset {name}: give budget or fps_target, not both")
    return preset


def _check(name, shown, table, key, value):
    if key not in table:
        known = ", ".join(sorted(table) + ([] if table is ENCODER_KEYS else ["encoder"]))
        raise SettingsError(f"preset {name}: unknown key {shown!r} (known: {known})")
    problem = table[key](value)
    if problem:
        raise SettingsError(f"preset {name}: {shown} must be {problem}, got {value!r}")


def describe_all() -> list[tuple[str, str]]:
    out = []
    for name in available():
        p = load(name)
        out.append((name, p.get("description", "")))
    return out
