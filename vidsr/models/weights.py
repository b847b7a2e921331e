"""Weights on disk: safetensors files listed, with their sha256, in a ``manifest.json`` beside them.

A weights file is only ever loaded through its manifest entry; a file whose hash differs from the
entry (tampered, truncated, swapped) is refused before a byte of it is parsed. Tensors that are not
module parameters (ARM's Edge-to-PSNR table) live in the same file under ``extra.`` so the checksum
covers them too.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import WeightsError

MANIFEST = "manifest.json"
# the weights that ship with vidsr (their manifest is readable without torch: vidsr batch's driver checks names)
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "weights"
EXTRA_PREFIX = "extra."
FORMAT_VERSION = 1


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# A manifest's sections: the upscalers ("models"), the delivery downscalers, each made for one
# upscaler at one scale ("downscalers"), and the video bases under routed models' interpolated tiles
# ("bases", ``vidsr.models.sharpen``); each section sorted by what names an entry in it
SECTIONS = {"models": ("name", "scale"), "downscalers": ("upscaler", "scale"), "bases": ("name", "scale")}


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        if not isinstance(data.get("models"), list):
            raise KeyError("models")
        return data
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise WeightsError(f"weights manifest {path} is not valid: {e}") from None


def read_manifest(folder: Path, section: str = "models") -> list[dict]:
    path = Path(folder) / MANIFEST
    if not path.exists():
        return []
    entries = _read(path).get(section, [])
    if not isinstance(entries, list):
        raise WeightsError(f"weights manifest {path} is not valid: {section!r} is not a list")
    for m in entries:
        m["folder"] = str(Path(folder))
    return entries


def write_manifest(folder: Path, entries: list[dict], section: str = "models") -> None:
    """Replace one section of the manifest in ``folder`` (the others are kept), atomically."""
    path = Path(folder) / MANIFEST
    data = _read(path) if path.exists() else {"models": []}
    clean = [{k: v for k, v in m.items() if k != "folder"} for m in entries]
    clean.sort(key=lambda m: tuple(m[k] for k in SECTIONS[section]))
    data = {"format": FORMAT_VERSION, **{k: v for k, v in data.items() if k != "format"}, section: clean}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def save(path: Path, state: dict[str, torch.Tensor], extras: dict[str, torch.Tensor] | None = None) -> str:
    """Write a safetensors file (module state + extras); returns its sha256."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    for k, v in (extras or {}).items():
        tensors[EXTRA_PREFIX + k] = v.detach().to("cpu").contiguous()
    from safetensors.torch import save_file  # torch only where tensors are: checksums need none

    save_file(tensors, str(path))
    return sha256_of(path)


def load_checked(entry: dict) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Load the weights an entry points to, after checking their sha256. Returns (state, extras)."""
    path = Path(entry["folder"]) / entry["file"]
    if not path.is_file():
        raise WeightsError(f"weights file {path} is missing")
    actual = sha256_of(path)
    if actual != entry.get("sha256"):
        raise WeightsError(
            f"weights file {path} does not match its manifest (sha256 {actual[:12]}..., expected "
            f"{str(entry.get('sha256'))[:12]}...); refusing to load it"
        )
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"weights file {path} is not a valid safetensors file: {e}") from None
    state = {k: v for k, v in tensors.items() if not k.startswith(EXTRA_PREFIX)}
    extras = {k[len(EXTRA_PREFIX):]: v for k, v in tensors.items() if k.startswith(EXTRA_PREFIX)}
    return state, extras


def check_model_name(name: str) -> None:
    """A model a command asks for, checked without torch (``vidsr batch``'s driver and ``vidsr
    bench`` leave loading to their workers): a weights file that exists, or a name the shipped
    manifest or the interpolations know."""
    from ..errors import SettingsError

    if name.endswith(".safetensors") or "/" in name or "\\" in name:
        if not Path(name).is_file():
            raise SettingsError(f"weights file {name} does not exist")
        return
    shipped = {e["name"] for e in read_manifest(SHIPPED_DIR)}
    known = shipped | {"bicubic", "lanczos"}  # the interpolations (registry.ARCHITECTURES, which needs torch)
    if name not in known:
        raise SettingsError(f"unknown model {name!r}; choose from {', '.join(sorted(known))} or give a .safetensors path")
