"""A batch from start to end: find the media, decide what is left to do, run it on Ray, record
each file as it finishes, join the segments of long files, and report.

Resume is "run the same command again": the manifest in DST says what is done. A file is skipped
when its record is done with the same job and flags, its size and modification time (or, if
those moved, its hash) are unchanged, and its output is there with the checksum recorded. A failed
file is retried only with ``retry_failed``. A long file's finished segments survive a kill too
(each is renamed into place when complete), so only the segments in flight are redone.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ..errors import SettingsError, VidsrError
from ..io.output_paths import PARTIAL_NAME, remove_stale_partials
from ..io.sink import check_encoder, container_format_for
from ..models.weights import check_model_name, sha256_of
from ..runtime import sigterm_as_interrupt
from . import segments as seg
from .discover import discover
from .jobs import job_args, output_settings
from .manifest import Manifest, Record, settings_digest
from .runner import Task, make_worker_class, plan_workers, start_ray, task_result

# suffixes that say a file is a video or an image: one of these that cannot be opened counts as failed
MEDIA_SUFFIXES = {".mp4", ".m4v", ".mkv", ".mov", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".nut", ".mxf", ".flv",
                  ".wmv", ".mpg", ".mpeg", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
SEGMENTS_DIR = ".vidsr-segments"  # in DST: the encoded segments of long files, until they are joined
SEGMENT_CONTAINER = ".mp4"  # keeps every timestamp exactly, negative decode timestamps included


@dataclass
class Options:
    src: Path
    dst: Path
    job: str = "upscale"
    flags: list[str] = field(default_factory=list)
    workers: int | None = None
    address: str | None = None
    dry_run: bool = False
    retry_failed: bool = False
    segment_seconds: float = 60.0  # a video twice this long or more runs in segments of about this
    progress: bool = True
    overwrite: bool = False  # replace files in DST that the batch did not write


@dataclass
class Item:
    """One media file and what to do with it."""

    rel: str
    path: Path
    image: bool
    output: Path | None = None
    state: str = "todo"  # "todo", "skip" (done and unchanged), "failed" (recorded, not retried)
    size: int = 0
    mtime_ns: int = 0
    error: str | None = None
    segments: list = field(default_factory=list)  # [Segment] for a long video


@dataclass
class Report:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    not_media: int = 0
    frames: int = 0
    seconds: float = 0.0
    damaged_frames: int = 0  # --skip-damaged: input frames left out, over all files


def _write(msg: str) -> None:
    tqdm.write(msg, file=sys.stderr)


def output_for(opts: Options, rel: str, path: Path, image: bool) -> Path:
    """DST/<the input's folder>/<its name> with the suffix the job writes: PNG for images; for
    videos the input's own container where it holds the output's codec and streams, else the one
    the upscaler would choose."""
    from ..io.output_paths import video_output

    target = (opts.dst / rel).with_suffix(".png")
    if image:
        return target
    scale, enc, container = output_settings(opts.job, job_args(opts.job, opts.flags, path, target))
    return target.with_suffix(video_output(path, None, scale, enc.codec, container, prefer_own=True).suffix)


def _unchanged(item: Item, record: Record) -> bool:
    if (record.size, record.mtime_ns) == (item.size, item.mtime_ns):
        return True
    return record.size == item.size and sha256_of(item.path) == record.sha256


def classify(opts: Options, manifest: Manifest, digest: str) -> tuple[list[Item], list]:
    """(media items with their state, the files that are not media)."""
    found = discover(opts.src, skip=opts.dst)
    items, others = [], []
    for f in found:
        if f.kind == "other":
            others.append(f)
            continue
        st = f.path.stat()
        item = Item(f.rel, f.path, f.kind == "image", size=st.st_size, mtime_ns=st.st_mtime_ns)
        try:
            item.output = output_for(opts, f.rel, f.path, item.image)
        except VidsrError as e:
            item.state, item.error = "todo", str(e)  # it fails again in its task, and is recorded there
            item.output = (opts.dst / f.rel).with_suffix(".mp4")
        record = manifest.get(f.rel)
        if record is not None and record.settings == digest and record.job == opts.job and _unchanged(item, record):
            out = opts.dst / record.output if record.output else None
            if record.status == "done" and out is not None and out.exists() and sha256_of(out) == record.output_sha256:
                item.state = "skip"
            elif record.status == "failed" and not opts.retry_failed:
                item.state, item.error = "failed", record.error
        items.append(item)
    return items, others


def check_outputs(opts: Options, items: list[Item], manifest: Manifest) -> None:
    """Before anything runs: no output may land on an input or inside SRC (a DST that holds SRC),
    two inputs may not share an output (``clip`` and ``clip.mp4``), and a file in DST that this
    batch did not write is not replaced unless ``overwrite`` says so."""
    src, dst = opts.src.resolve(), opts.dst.resolve()
    dst_in_src = dst.is_relative_to(src)  # then DST's own tree is left out of the search
    inputs = {i.path.resolve(): i.rel for i in items}
    owner: dict[Path, str] = {}
    foreign = []
    for i in items:
        out = i.output.resolve()
        if out in inputs or (out.is_relative_to(src) and not dst_in_src):
            raise SettingsError(f"{i.rel}: its output {i.output} would land inside SRC"
                                f"{' on the input ' + inputs[out] if out in inputs else ''}; choose a DST outside SRC")
        if out in owner:
            raise SettingsError(f"{owner[out]} and {i.rel} would both be written to {i.output.relative_to(opts.dst)}; "
                                "rename one of them")
        owner[out] = i.rel
        made_here = manifest.wrote(i.rel, i.output.relative_to(opts.dst).as_posix())
        if i.state == "todo" and out.exists() and not made_here:
            foreign.append(i.output)
    if foreign and not opts.overwrite:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise SettingsError(f"{foreign[0]}{more}: already in DST and not written by this batch; "
                            "--overwrite replaces them")


def _segment_folder(opts: Options, item: Item, digest: str) -> Path:
    key = hashlib.sha256(f"{item.rel}|{digest}|{item.size}|{item.mtime_ns}".encode()).hexdigest()[:16]
    return opts.dst / SEGMENTS_DIR / key


def tasks_for(opts: Options, item: Item, digest: str) -> list[Task]:
    """A whole file, or the segments of a long video that are not done yet."""
    whole = Task(opts.job, tuple(opts.flags), str(item.path), str(item.output), item.rel, None, item.image)
    item.output.parent.mkdir(parents=True, exist_ok=True)  # the tree mirrored as it is needed
    if item.image or item.error or opts.segment_seconds <= 0:
        return [whole]
    try:
        item.segments = seg.plan(item.path, opts.segment_seconds)
    except Exception:  # unreadable: the whole-file task finds and records the error
        return [whole]
    if len(item.segments) < 2:
        return [whole]
    folder = _segment_folder(opts, item, digest)
    folder.mkdir(parents=True, exist_ok=True)
    tasks = []
    for s in item.segments:
        out = folder / f"seg-{s.index:05d}{SEGMENT_CONTAINER}"
        if not out.exists():  # a segment file exists only once complete
            tasks.append(Task(opts.job, tuple(opts.flags), str(item.path), str(out), item.rel,
                              (s.index, s.start, s.end), False))
    return tasks


def validate_flags(job: str, flags: list[str]) -> None:
    """The job's flags, checked before anything starts: unknown flags, bad values, unknown presets
    fail here, once, not in every file's task. The batch chooses inputs and outputs itself."""
    for reserved in ("-o", "--output", "-y", "--overwrite", "--stats", "--list-models", "--list-presets"):
        if reserved in flags or any(f.startswith(reserved + "=") for f in flags):
            raise SettingsError(f"{reserved} is the batch's to set, not a flag for its files")
    args = job_args(job, flags, Path("input"), Path("output.mp4"))
    _, enc, container = output_settings(job, args)  # resolves the flags over the preset, as each file will
    if getattr(args, "model", None):  # a misspelt model fails here, not in every file's task
        check_model_name(args.model)
    # the encoder flags as an output checks them (in the preset's container, else Matroska, which
    # holds any codec: a container that cannot is each file's own refusal)
    check_encoder(enc, container_format_for(Path(f"probe.{container or 'mkv'}")))


def run_batch(opts: Options) -> Report:
    started = time.perf_counter()
    if not opts.src.is_dir():
        raise SettingsError(f"{opts.src}: not a folder")
    if opts.dst.resolve() == opts.src.resolve():
        raise SettingsError("DST must not be SRC: outputs would mix with the inputs")
    if opts.dst.exists() and not opts.dst.is_dir():
        raise SettingsError(f"{opts.dst}: is a file; DST must be a folder (made if missing)")
    validate_flags(opts.job, opts.flags)
    digest = settings_digest(opts.job, opts.flags)
    manifest = Manifest(opts.dst)  # reading it writes nothing (a dry run leaves DST as it was)
    items, others = classify(opts, manifest, digest)
    check_outputs(opts, items, manifest)
    # a file named as media that cannot be read is a damaged input, not a stray file: it fails the batch
    broken = [f for f in others if Path(f.rel).suffix.lower() in MEDIA_SUFFIXES]
    others = [f for f in others if f not in broken]
    report = Report(not_media=len(others), failed=len(broken))
    for f in broken:
        _write(f"vidsr batch: failed {f.rel}: {f.reason}")
    for f in others:
        _write(f"vidsr batch: skipping {f.rel}: {f.reason}")
    todo = [i for i in items if i.state == "todo"]
    report.skipped = sum(i.state == "skip" for i in items)
    report.failed += sum(i.state == "failed" for i in items)
    for i in todo:  # a file redone under flags that name its output otherwise: the old output is not removed
        new = i.output.relative_to(opts.dst).as_posix()
        for old in manifest.outputs(i.rel):
            if old != new and (opts.dst / old).exists():
                _write(f"vidsr batch: {i.rel}: its output under earlier flags, {old}, stays in DST beside {new}")
    for i in items:
        if i.state == "failed":
            _write(f"vidsr batch: {i.rel}: failed before ({i.error}); --retry-failed runs it again")
    if opts.dry_run:
        report.done = len(todo)
        for i in items:
            what = {"todo": "would run", "skip": "done, unchanged", "failed": "failed before"}[i.state]
            _write(f"{what}: {i.rel} -> {i.output.relative_to(opts.dst) if i.output else '-'}")
        report.seconds = time.perf_counter() - started
        return report
    if not todo:
        report.seconds = time.perf_counter() - started
        return report
    opts.dst.mkdir(parents=True, exist_ok=True)
    for i in todo:  # an output written by this run is the batch's even if the run dies before recording it
        manifest.record(Record(i.rel, i.size, i.mtime_ns, "", opts.job, digest, "started",
                               output=i.output.relative_to(opts.dst).as_posix()))
    tasks = {i.rel: tasks_for(opts, i, digest) for i in todo}
    _run_on_ray(opts, todo, tasks, manifest, digest, report)
    report.seconds = time.perf_counter() - started
    return report


def _run_on_ray(opts: Options, todo: list[Item], tasks: dict, manifest: Manifest, digest: str, report: Report) -> None:
    ray, started = start_ray(opts.address)
    # a stop (SIGTERM) ends the batch as Ctrl-C does, not with Ray's stack dump: workers stopped, Ray
    # shut down, one line, and the manifest left to resume from
    actors = []
    with sigterm_as_interrupt():
        try:
            from ray.util.queue import Queue

            all_tasks = [t for i in todo for t in tasks[i.rel]]
            resources = ray.cluster_resources()
            workers, threads, gpus = plan_workers(opts.workers, len(all_tasks), resources.get("CPU", 1),
                                                  resources.get("GPU", 0))
            Worker = make_worker_class(ray)
            actors += [Worker.options(num_cpus=threads, num_gpus=gpus).remote(threads) for _ in range(workers)]
            queue = Queue(actor_options={"num_cpus": 0})  # frame counts from the workers; it needs no CPU of theirs
            bar = tqdm(total=len(todo), unit="file", desc="vidsr batch", disable=None if opts.progress else True,
                       dynamic_ncols=True)
            frames = [0]
            left = {i.rel: len(tasks[i.rel]) for i in todo}
            by_rel = {i.rel: i for i in todo}
            results: dict[str, list] = {i.rel: [] for i in todo}
            for item in todo:  # a long file whose segments are all done from an earlier run: join it now
                if not tasks[item.rel]:
                    _finish(opts, item, [], manifest, digest, report, bar)
            pending = list(all_tasks)
            in_flight: dict = {}  # object ref -> (task, the actor running it)
            idle = list(actors)
            while pending or in_flight:
                while idle and pending:  # every worker busy while there is work
                    actor, task = idle.pop(), pending.pop(0)
                    in_flight[actor.run.remote(task, queue)] = (task, actor)
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.5)
                while not queue.empty():
                    frames[0] += queue.get_nowait()
                    bar.set_postfix(frames=frames[0])
                for ref in ready:
                    task, actor = in_flight.pop(ref)
                    idle.append(actor)
                    results[task.rel].append((task, task_result(ray, ref)))
                    left[task.rel] -= 1
                    if left[task.rel] == 0:
                        _finish(opts, by_rel[task.rel], results[task.rel], manifest, digest, report, bar)
            bar.close()
        finally:
            if started:  # a local instance: its workers go with it (killing them one by one first made
                ray.shutdown()  # Ray print a retry notice for each task still running)
                # workers killed mid-file (an interrupted batch) leave their partial files: a local
                # instance's workers are this machine's processes, so those whose process is gone go
                _remove_partials({Path(t.dst).parent for i in todo for t in tasks[i.rel]})
            else:
                for actor in actors:  # their CPU shares go back to the cluster
                    ray.kill(actor)


def _remove_partials(folders: set[Path], wait: float = 5.0) -> None:
    """Remove the partial files in ``folders`` whose process is gone, waiting up to ``wait``
    seconds for killed workers to exit."""
    deadline = time.monotonic() + wait
    folders = {f for f in folders if f.is_dir()}
    while True:
        for folder in folders:
            remove_stale_partials(folder)
        if not any(PARTIAL_NAME.match(p.name) for f in folders for p in f.iterdir()) or time.monotonic() > deadline:
            return
        time.sleep(0.1)


def _finish(opts: Options, item: Item, results: list, manifest: Manifest, digest: str, report: Report, bar) -> None:
    """Record a file whose tasks are all back: join a long file's segments, checksum the output."""
    failed = [r for _, r in results if r["status"] != "done"]
    frames = sum(r.get("frames", 0) for _, r in results)
    seconds = sum(r.get("seconds", 0.0) for _, r in results)
    record = Record(item.rel, item.size, item.mtime_ns, sha256_of(item.path), opts.job, digest, "failed",
                    frames=frames, seconds=round(seconds, 3))
    if not failed and item.segments and len(item.segments) > 1:
        folder = _segment_folder(opts, item, digest)
        files = [folder / f"seg-{s.index:05d}{SEGMENT_CONTAINER}" for s in item.segments]
        try:
            frames = seg.join(item.path, item.segments, files, item.output, _write)
            record.frames = frames
            shutil.rmtree(folder, ignore_errors=True)
        except VidsrError as e:
            failed = [{"error": str(e)}]
    if failed:
        record.error = failed[0]["error"]
        report.failed += 1
        _write(f"failed {item.rel}: {record.error}")
    else:
        record.status, record.output = "done", item.output.relative_to(opts.dst).as_posix()
        record.output_sha256 = sha256_of(item.output)
        damaged = [d for _, r in results for d in r.get("damaged", [])]
        record.damaged_frames = sum(count for count, _ in damaged)
        for _, said in damaged:  # never a frame dropped without a word, --quiet or not
            _write(f"vidsr batch: {item.rel}: skipped damaged {said}")
        report.done += 1
        report.frames += record.frames
        report.damaged_frames += record.damaged_frames
        if opts.progress:  # --quiet: failures only
            lost = f", {record.damaged_frames} damaged frames skipped" if record.damaged_frames else ""
            _write(f"done {item.rel} -> {record.output} ({record.frames} frames{lost}, {record.seconds:.1f} s)")
    manifest.record(record)
    bar.update(1)
