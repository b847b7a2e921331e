"""Presets (``vidsr.presets``): named operating points in TOML, validated before any work."""

from __future__ import annotations

import pytest

from vidsr import presets
from vidsr.errors import SettingsError


def test_shipped_presets_are_valid_and_listed(cli):
    names = presets.available()
    assert {"realtime", "balanced", "quality", "draft", "archive"} <= set(names)
    for name in names:
        presets.load(name)
    r = cli("--list-presets")
    assert r.code == 0 and all(n in r.out for n in names)


@pytest.mark.parametrize("text,needle", [
    ("bogus = 1", "unknown key 'bogus'"),
    ("budget = 1.5", "budget must be <= 1.0"),
    ("budget = 'half'", "budget must be a number"),
    ("router = 'fast'", "router must be one of"),
    ("fps_target = 0", "fps_target must be > 0"),
    ("tile = 12.5", "tile must be an integer"),
    ("scale = 2.0", "scale must be one of 2, 3, 4"),  # a float scale failed deep in the model
    ("scale = true", "scale must be one of 2, 3, 4"),
    ("tile = 4", "tile must be >= 8"),
    ("[encoder]\ncrf = 99", "encoder.crf must be <= 63"),
    ("[encoder]\nspeed = 1", "unknown key 'encoder.speed'"),
    ("budget = ", "not valid TOML"),
    ("budget = 0.5\nfps_target = 30", "budget or fps_target, not both"),
])
def test_preset_validation_errors(tmp_path, text, needle):
    path = tmp_path / "mine.toml"
    path.write_text(text + "\n")
    with pytest.raises(SettingsError, match="preset mine") as e:
        presets.load(str(path))
    assert needle in str(e.value)


def test_presets_accept_the_routers_and_modes_the_cli_accepts(tmp_path):
    """One list of router names and PCSR modes: each is valid in a preset, as on the command line."""
    from vidsr.cli.upscale import build_parser
    from vidsr.routing import PCSR_MODES, ROUTER_CHOICES

    parser = build_parser()
    for router in ROUTER_CHOICES:
        (tmp_path / "r.toml").write_text(f"router = '{router}'\n")
        assert presets.load(str(tmp_path / "r.toml")).get("router") == router
        assert parser.parse_args(["x.mp4", "--router", router]).router == router
    for mode in PCSR_MODES:
        (tmp_path / "m.toml").write_text(f"pcsr_mode = '{mode}'\n")
        assert presets.load(str(tmp_path / "m.toml")).get("pcsr_mode") == mode
        assert parser.parse_args(["x.mp4", "--pcsr-mode", mode]).pcsr_mode == mode
