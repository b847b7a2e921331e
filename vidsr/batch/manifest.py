"""The batch manifest: one record per input file, in DST, so that running the same batch again
skips what is done, redoes what changed and says what failed.

It is a journal (``.vidsr-batch.jsonl``): every finished file appends one JSON line, written with
a single ``write`` and flushed to disk before the next file is recorded. A run killed at any moment
leaves at most a torn last line, which loading ignores; the latest record of a file wins. The first
record of a run rewrites the journal compacted (to a temporary file, then renamed), so it does not
grow without end over many runs; reading it (a dry run) writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

JOURNAL = ".vidsr-batch.jsonl"


@dataclass
class Record:
    input: str  # path relative to SRC
    size: int
    mtime_ns: int
    sha256: str
    job: str  # "upscale" or "downscale"
    settings: str  # digest of the job's flags: a change redoes the file
    status: str  # "done", "failed", or "started" (written before the file runs, so its output counts as the batch's)
    output: str | None = None  # path relative to DST
    output_sha256: str | None = None
    error: str | None = None
    frames: int = 0
    seconds: float = 0.0
    damaged_frames: int = 0  # --skip-damaged: frames of the input that were damaged and left out
    # outputs of this input under earlier flags (another container, say): still the batch's own
    earlier_outputs: list = field(default_factory=list)


def settings_digest(job: str, flags: list[str]) -> str:
    """A short digest of what decides a file's output: the job, its flags in order, and the content
    of each file a flag names (a preset, a weights file: editing one changes the outputs, and the
    same command must redo them)."""
    named = []
    for flag in flags:
        value = flag.partition("=")[2] if flag.startswith("-") else flag  # "--preset=FILE", or FILE after "--preset"
        try:
            if value and Path(value).is_file():
                named.append(hashlib.sha256(Path(value).read_bytes()).hexdigest())
        except OSError:
            pass  # unreadable here: the run itself says so
    return hashlib.sha256(json.dumps([job, flags] + ([named] if named else [])).encode()).hexdigest()[:16]


class Manifest:
    def __init__(self, dst: Path):
        self.path = Path(dst) / JOURNAL
        self.records: dict[str, Record] = {}
        self._compacted = False
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        known = {f for f in Record.__dataclass_fields__}
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    data = json.loads(line)
                except ValueError:  # a line torn by a kill: the file it describes is redone
                    continue
                if isinstance(data, dict) and "input" in data:
                    self.records[data["input"]] = Record(**{k: v for k, v in data.items() if k in known})

    def _compact(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for r in self.records.values():
                f.write(json.dumps(asdict(r)) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def record(self, r: Record) -> None:
        """Append one file's record and make it durable before returning."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self._compacted:
            self._compact()
            self._compacted = True
        # the outputs it wrote under other names stay known as the batch's
        r.earlier_outputs = sorted(set(self.outputs(r.input)) - {r.output})
        self.records[r.input] = r
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(r)) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def get(self, rel: str) -> Record | None:
        return self.records.get(rel)

    def outputs(self, rel: str) -> list[str]:
        """Every output (relative to DST) this batch wrote for ``rel``, under any flags."""
        r = self.records.get(rel)
        return [] if r is None else [*r.earlier_outputs, *([r.output] if r.output else [])]

    def wrote(self, rel: str, output: str) -> bool:
        return output in self.outputs(rel)
