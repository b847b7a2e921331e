from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vidsr.cli import main as vidsr_main

from .media import Spec, make_video

ROOT = Path(__file__).resolve().parents[1]


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("vidsr: error:")]


@pytest.fixture
def cli(capsys):
    """Run ``vidsr`` in-process (torch stays imported between calls); returns code, stdout, stderr."""

    def run(*args) -> CliResult:
        capsys.readouterr()
        code = vidsr_main([str(a) for a in args])
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


def vidsr_command() -> list[str]:
    """The real ``vidsr`` console command (or its module, where the script is not installed)."""
    exe = Path(sys.executable).with_name("vidsr")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "vidsr"]


def run_vidsr(*args, timeout=300, **kw) -> subprocess.CompletedProcess:
    """Run the real ``vidsr`` console command in a subprocess."""
    return subprocess.run(vidsr_command() + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    """Generated clips, made once per session: name -> path."""
    root = tmp_path_factory.mktemp("media")
    specs = {
        "cfr.mp4": Spec(audio="aac", subtitles="mov_text", rotation=90, colour=(1, 1, 1, 1)),
        "vfr.mkv": Spec(vfr=True, audio="libopus", subtitles="subrip"),
        "odd.mkv": Spec(width=45, height=31, codec="ffv1", pix_fmt="yuv420p", frames=6),
        "tenbit.mkv": Spec(codec="libx265", pix_fmt="yuv420p10le", frames=6, height=64, colour=(9, 9, 16, 1),
                           options={"x265-params": "log-level=error"}),
        "full.mp4": Spec(colour=(1, 1, 1, 2), frames=6),
    }
    return {name: make_video(root / name, spec) for name, spec in specs.items()}


def no_partial_files(folder: Path) -> bool:
    return not any(".vidsr-partial-" in p.name for p in folder.iterdir())


@pytest.fixture(scope="session")
def arm_weights(tmp_path_factory) -> Path:
    """A small random ARM model saved with a made-up Edge-to-PSNR table and its manifest, as
    `vidsr train` would: routes bicubic, w4, w8; predicted PSNR falls with the edge score and rises
    with width, by more than the shipped sharpened base gains over bicubic (a video's routers price
    their interpolated tiles as that base, ``vidsr.models.sharpen``)."""
    import torch

    from vidsr.models import registry, weights
    from vidsr.routing.edge import EdgePSNRTable

    folder = tmp_path_factory.mktemp("armw")
    cfg = {"widths": [4, 8], "blocks": 1}
    module = registry.build_module("arm-wdsr", 2, cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    edges = torch.linspace(0, 60, 31)
    edges[-1] = float("inf")
    centre = torch.linspace(1, 59, 30)
    table = EdgePSNRTable(edges, torch.stack([45 - 0.3 * centre + r * (2.0 + 0.03 * centre) for r in range(3)]),
                          ("bicubic", "w4", "w8"))
    sha = weights.save(folder / "arm.safetensors", module.state_dict(), table.to_tensors())
    weights.write_manifest(folder, [{"name": "arm-test", "scale": 2, "architecture": "arm-wdsr", "config": cfg,
                                     "file": "arm.safetensors", "sha256": sha, "validation": {"psnr_y": 30.0}}])
    return folder / "arm.safetensors"


@pytest.fixture
def best_full_is_not_best_routed(monkeypatch):
    """A shipped set where the best full network (pcsr-wdsr) is not the one that routes best at half
    budget (arm-wdsr); returns the entries, which a test may edit."""
    from vidsr.models import registry

    shipped = [{"name": "pcsr-wdsr", "scale": 2, "architecture": "pcsr-wdsr",
                "validation": {"psnr_y": 39.4, "routed": {"budget": 0.5, "psnr_y": 37.0}}},
               {"name": "arm-wdsr", "scale": 2, "architecture": "arm-wdsr",
                "validation": {"psnr_y": 39.1, "routed": {"budget": 0.5, "psnr_y": 38.6}}}]
    monkeypatch.setattr(registry, "shipped_models", lambda: shipped)
    return shipped
