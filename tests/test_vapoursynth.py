"""The VapourSynth filter (``plugins/vapoursynth``, imported as ``vsvidsr``), driven through the real
VapourSynth core and the real ``vspipe``: rendered frames equal the engine's own output for the same
input frames, whatever the request order or thread count; bad clips get ``vs.Error``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

vs = pytest.importorskip("vapoursynth")

import vsvidsr  # noqa: E402
from vidsr.budget import MacBudget  # noqa: E402
from vidsr.engine import STUDIO_LO, STUDIO_SPAN, Engine  # noqa: E402
from vidsr.errors import VidsrError  # noqa: E402
# BT.601 studio-range Y'CbCr, written out here so the reference does not share the filter's code
_RGB2YCC = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255.0
_YCC_OFFSET = np.array([16.0, 128.0, 128.0]) / 255.0
_YCC2RGB = np.linalg.inv(_RGB2YCC)
from vidsr.models import registry  # noqa: E402
from vidsr.models.interpolation import upscale as interpolate  # noqa: E402
from vidsr.routing import build_router  # noqa: E402

core = vs.core
TOL = 1e-4  # float32 output (everything is compared on the CPU, where there is no TF32)
TOL_HALF = 2e-3  # fp16 output: one fp16 step near 1.0 is ~1e-3 (round-off may land either side)

# The input clips, as source text: run here and pasted into the .vpy scripts vspipe renders, so both
# sides see the same frames. Every frame differs (a moving pattern plus per-frame seeded noise).
SOURCE = textwrap.dedent('''
    import numpy as np
    import vapoursynth as vs

    def make_clip(core, fmt, width=40, height=24, length=6):
        blank = core.std.BlankClip(width=width, height=height, format=fmt, length=length, fpsnum=25, fpsden=1)

        def fill(n, f):
            out = f.copy()
            rng = np.random.default_rng(1000 + n)
            yy, xx = np.mgrid[0:out.height, 0:out.width].astype(np.float32)
            chroma = out.format.color_family == vs.YUV
            for p in range(out.format.num_planes):
                base = 0.5 + 0.3 * np.sin(0.37 * xx + 0.23 * yy + 0.9 * n + p) * np.cos(0.11 * yy - 0.4 * n)
                img = np.clip(base + 0.15 * rng.standard_normal(base.shape), 0, 1).astype(np.float32)
                if chroma and p > 0:
                    img = (img - 0.5) * 0.6  # float chroma is centred on 0; keep well inside +-0.5
                np.asarray(out[p])[...] = img
            out.props["TestFrame"] = n
            out.props["_SARNum"] = 4
            out.props["_SARDen"] = 3
            return out

        return core.std.ModifyFrame(blank, blank, fill)
''')

_ns: dict = {}
exec(SOURCE, _ns)
make_clip = _ns["make_clip"]

SCRIPT = textwrap.dedent('''
    import vapoursynth as vs
    import vsvidsr

    core = vs.core
    core.num_threads = int(threads)
    {source}
    clip = make_clip(core, getattr(vs, fmt))
    out = vsvidsr.upscale(clip, scale=int(scale), model=model, device="cpu")
    if out.format.color_family == vs.YUV:  # y4m holds integer YUV: 16-bit limited range
        out = core.resize.Point(out, format=vs.YUV444P16)
    out.set_output()
''')


# -- the reference: the core library on the same frames -----------------------------------------

_engines: dict = {}


def engine_for(model: str, scale: int, router="auto") -> Engine:
    key = (model, scale, router)
    if key not in _engines:
        up = registry.load(model, scale)
        _engines[key] = Engine(up, router=build_router(up, router))
    return _engines[key]


def planes_of(frame) -> np.ndarray:
    return np.stack([np.asarray(frame[p]) for p in range(frame.format.num_planes)]).astype(np.float32)


@torch.inference_mode()
def reference(planes: np.ndarray, family: str, engine: Engine, budget: float = 1.0) -> np.ndarray:
    """What vidsr's engine (luma) and Lanczos (chroma) make of one frame's float planes, with no
    memory of other frames."""
    s = engine.scale
    budget = MacBudget(budget)
    if engine.router is not None:
        engine.router.reset()
    x = torch.from_numpy(planes)[None]
    if family == "rgb":
        m = torch.as_tensor(_RGB2YCC, dtype=torch.float32)
        off = torch.as_tensor(_YCC_OFFSET, dtype=torch.float32).view(1, 3, 1, 1)
        ycc = torch.einsum("ij,njhw->nihw", m, x) + off
        y, _ = engine.upscale(ycc[:, :1].contiguous(), budget)
        out = torch.cat([y, interpolate(ycc[:, 1:], s, "lanczos")], 1) - off
        out = torch.einsum("ij,njhw->nihw", torch.as_tensor(_YCC2RGB, dtype=torch.float32), out).clamp(0, 1)
    else:
        y, _ = engine.upscale((x[:, :1] * STUDIO_SPAN + STUDIO_LO).contiguous(), budget)
        out = (y - STUDIO_LO) / STUDIO_SPAN
        if x.shape[1] > 1:
            out = torch.cat([out, interpolate(x[:, 1:], s, "lanczos")], 1)
    return out[0].numpy()


def reference_frames(clip, family: str, engine: Engine, budget: float = 1.0) -> list[np.ndarray]:
    return [reference(planes_of(clip.get_frame(n)), family, engine, budget) for n in range(clip.num_frames)]


# -- vspipe -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def vspipe(tmp_path_factory):
    """Run the real vspipe on a script: returns a function (script text, output file, args)."""
    exe = Path(sys.executable).with_name("vspipe")
    exe = str(exe) if exe.exists() else shutil.which("vspipe")
    if exe is None:
        pytest.skip("vspipe is not installed")
    # vspipe embeds Python through VSScript. A pip-installed VapourSynth needs `vapoursynth config`
    # once per Python install before that works; where it is not done, write that configuration
    # into a private folder so the tests touch no user settings.
    probe = tmp_path_factory.mktemp("vsprobe") / "probe.vpy"
    probe.write_text("import vapoursynth as vs\nvs.core.std.BlankClip(length=1).set_output()\n")
    env = dict(os.environ)
    if subprocess.run([exe, "--info", str(probe), "-"], env=env, capture_output=True, timeout=60).returncode != 0:
        env["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("vsconfig"))
        subprocess.run([sys.executable, "-m", "vapoursynth", "config"], env=env, capture_output=True, timeout=60)
        r = subprocess.run([exe, "--info", str(probe), "-"], env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"vspipe cannot run scripts: {r.stderr}"

    def run(script: str, out: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        path = out.with_suffix(".vpy")
        path.write_text(script)
        r = subprocess.run([exe, *args, str(path), str(out)], env=env, capture_output=True, text=True, timeout=180)
        if check:
            assert r.returncode == 0, r.stderr
        return r

    return run


def read_raw_rgbs(path: Path, width: int, height: int) -> np.ndarray:
    """vspipe's raw output of an RGBS clip (FFmpeg's gbrpf32le): per frame, planes G, B, R of
    float32, row by row. Returned as (frames, R/G/B, height, width)."""
    gbr = np.fromfile(path, dtype="<f4").reshape(-1, 3, height, width)
    return gbr[:, [2, 0, 1]]


def read_y4m_444p16(path: Path) -> tuple[dict, np.ndarray]:
    data = path.read_bytes()
    header, _, rest = data.partition(b"\n")
    fields = {f[:1].decode(): f[1:].decode() for f in header.split()[1:]}
    assert header.startswith(b"YUV4MPEG2") and fields["C"] == "444p16", header
    w, h = int(fields["W"]), int(fields["H"])
    frames, pos, size = [], 0, 3 * w * h * 2
    while pos < len(rest):
        end = rest.index(b"\n", pos)
        assert rest[pos:end].startswith(b"FRAME")
        frames.append(np.frombuffer(rest[end + 1 : end + 1 + size], dtype="<u2").reshape(3, h, w))
        pos = end + 1 + size
    return fields, np.stack(frames)


def dequantize_yuv16(v: np.ndarray) -> np.ndarray:
    """16-bit limited-range Y'CbCr (what core.resize writes for float YUV) back to float."""
    v = v.astype(np.float64)
    return np.stack([(v[0] - 16 * 256) / (219 * 256), (v[1] - 128 * 256) / (224 * 256), (v[2] - 128 * 256) / (224 * 256)])


def script(fmt: str, threads: int = 1) -> tuple[str, list[str]]:
    return SCRIPT.format(source=SOURCE), ["-a", f"fmt={fmt}", "-a", f"threads={threads}"]


# -- rendering with vspipe ----------------------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 4])
def test_vspipe_rgb_raw_planes_equal_engine(vspipe, tmp_path, threads):
    """RGBS through vspipe to raw planes: every frame equals the engine's; 4 threads with 4
    concurrent requests give the same frames as 1."""
    text, args = script("RGBS", threads)
    out = tmp_path / "out.raw"
    vspipe(text, out, *args, "-a", "scale=2", "-a", "model=lanczos", "-r", str(threads))
    got = read_raw_rgbs(out, 80, 48)
    clip = make_clip(core, vs.RGBS)
    ref = reference_frames(clip, "rgb", engine_for("lanczos", 2))
    assert got.shape == (clip.num_frames, 3, 48, 80)
    for n in range(clip.num_frames):
        np.testing.assert_allclose(got[n], ref[n], atol=TOL, rtol=0, err_msg=f"frame {n}")
    assert not np.allclose(got[0], got[1])  # frames differ, so a swapped frame would show


def test_vspipe_yuv_to_y4m_equals_engine(vspipe, tmp_path):
    """YUV444PS through vspipe to y4m (16-bit): luma is the engine's, chroma Lanczos, per frame."""
    text, args = script("YUV444PS", threads=2)
    out = tmp_path / "out.y4m"
    vspipe(text, out, *args, "-a", "scale=3", "-a", "model=bicubic", "-c", "y4m")
    fields, got = read_y4m_444p16(out)
    assert (fields["W"], fields["H"], fields["F"]) == ("120", "72", "25:1")
    clip = make_clip(core, vs.YUV444PS)
    ref = reference_frames(clip, "luma", engine_for("bicubic", 3))
    assert len(got) == clip.num_frames
    for n in range(clip.num_frames):
        assert ref[n][0].min() >= -16 / 219 and ref[n][0].max() <= 239 / 219 + 1e-6  # inside the 16-bit range
        np.testing.assert_allclose(dequantize_yuv16(got[n]), ref[n], atol=TOL, rtol=0, err_msg=f"frame {n}")


def test_vspipe_reports_vs_error_for_variable_size(vspipe, tmp_path):
    text = textwrap.dedent('''
        import vapoursynth as vs
        import vsvidsr
        core = vs.core
        a = core.std.BlankClip(width=16, height=16, format=vs.RGBS, length=2)
        b = core.std.BlankClip(width=24, height=16, format=vs.RGBS, length=2)
        vsvidsr.upscale(core.std.Splice([a, b], mismatch=True), model="lanczos").set_output()
    ''')
    r = vspipe(text, tmp_path / "bad.raw", check=False)
    assert r.returncode != 0
    assert "vapoursynth.Error: vsvidsr.upscale: clip has a variable frame size" in r.stderr


# -- in-process: order, threads, formats, properties --------------------------------------------


def test_default_model_follows_the_budget_as_the_cli_does(monkeypatch, best_full_is_not_best_routed):
    # no model named: the best full network at budget 1, the model that routes best below it
    picked = []
    monkeypatch.setattr("vsvidsr._filter.shared_engine", lambda name, *a: (picked.append(name), _Stop())[1])
    clip = make_clip(core, vs.GRAYS, length=2)
    for kwargs in ({}, {"budget": 0.5}, {"max_ms": 5.0}, {"budget": 0.5, "router": "none"}):
        with pytest.raises(_StopError):
            vsvidsr.upscale(clip, scale=2, device="cpu", **kwargs)
    assert picked == ["pcsr-wdsr", "arm-wdsr", "arm-wdsr", "pcsr-wdsr"]


class _StopError(Exception):
    pass


class _Stop:
    """Stands in for the shared engine: the test only needs the model name the filter asked for."""

    def __getattr__(self, name):
        raise _StopError


def test_random_order_requests_give_the_same_frames():
    clip = make_clip(core, vs.RGBS, length=8)
    out = vsvidsr.upscale(clip, scale=2, model="lanczos", device="cpu")
    ref = reference_frames(clip, "rgb", engine_for("lanczos", 2))
    rng = np.random.default_rng(7)
    order = list(rng.permutation(clip.num_frames)) + list(rng.integers(0, clip.num_frames, 6))
    for n in order:
        f = out.get_frame(int(n))
        assert f.props["TestFrame"] == n
        np.testing.assert_allclose(planes_of(f), ref[n], atol=TOL, rtol=0, err_msg=f"frame {n}")


def test_many_threads_concurrent_requests_give_the_same_frames():
    clip = make_clip(core, vs.YUV444PS, length=8)
    before = core.num_threads
    core.num_threads = 4
    try:
        out = vsvidsr.upscale(clip, scale=2, model="bicubic", device="cpu")
        order = np.random.default_rng(3).permutation(clip.num_frames)
        futures = {int(n): out.get_frame_async(int(n)) for n in order}  # all in flight at once
        got = {n: planes_of(fut.result()) for n, fut in futures.items()}
    finally:
        core.num_threads = before
    ref = reference_frames(clip, "luma", engine_for("bicubic", 2))
    for n in range(clip.num_frames):
        np.testing.assert_allclose(got[n], ref[n], atol=TOL, rtol=0, err_msg=f"frame {n}")


def test_many_threads_concurrent_requests_give_the_same_frames_with_a_routed_network(routed_net):
    """A routed network keeps memory of the frame before (static tiles keep their routes): with
    frames asked for from four threads at once, each must still be what it is alone."""
    clip = make_clip(core, vs.RGBS, length=6)
    before = core.num_threads
    core.num_threads = 4
    try:
        out = vsvidsr.upscale(clip, scale=2, model=routed_net, device="cpu", tile=16, budget=0.5)
        order = np.random.default_rng(5).permutation(clip.num_frames)
        futures = {int(n): out.get_frame_async(int(n)) for n in order}
        got = {n: (planes_of(fut.result()), fut.result().props["VidsrBudget"]) for n, fut in futures.items()}
    finally:
        core.num_threads = before
    up = registry.load(routed_net, 2)
    engine = Engine(up, tile=16, router=build_router(up))
    ref = reference_frames(clip, "rgb", engine, budget=0.5)
    for n in range(clip.num_frames):
        np.testing.assert_allclose(got[n][0], ref[n], atol=TOL, rtol=0, err_msg=f"frame {n}")
        assert got[n][1] == 0.5


@pytest.mark.parametrize("fmt,family,tol", [
    (vs.RGBH, "rgb", TOL_HALF), (vs.YUV444PH, "luma", TOL_HALF), (vs.GRAYS, "luma", TOL), (vs.GRAYH, "luma", TOL_HALF),
], ids=["RGBH", "YUV444PH", "GRAYS", "GRAYH"])
def test_other_formats_keep_their_format(fmt, family, tol):
    clip = make_clip(core, fmt, length=3)
    out = vsvidsr.upscale(clip, scale=4, model="lanczos", device="cpu")
    assert out.format.id == fmt and (out.width, out.height) == (160, 96) and out.num_frames == 3
    engine = engine_for("lanczos", 4)
    for n in (2, 0):
        f = out.get_frame(n)
        assert np.asarray(f[0]).dtype == (np.float16 if fmt in (vs.RGBH, vs.YUV444PH, vs.GRAYH) else np.float32)
        np.testing.assert_allclose(planes_of(f), reference(planes_of(clip.get_frame(n)), family, engine), atol=tol, rtol=0)


def test_clip_properties_and_frame_props():
    clip = make_clip(core, vs.RGBS, length=5)
    clip = core.std.SetFrameProp(clip, prop="_Matrix", intval=1)
    out = vsvidsr.upscale(clip, scale=3, model="bicubic", device="cpu", budget=0.5)
    assert (out.width, out.height, out.format.id, out.num_frames) == (120, 72, vs.RGBS, 5)
    assert (out.fps.numerator, out.fps.denominator) == (25, 1)
    props = out.get_frame(3).props
    # the input's properties are kept: SAR is unchanged (both axes scale by 3, pixels keep their shape)
    assert props["TestFrame"] == 3 and props["_Matrix"] == 1
    assert (props["_SARNum"], props["_SARDen"]) == (4, 3)
    assert (props["_DurationNum"], props["_DurationDen"]) == (1, 25)
    # and per-frame route stats are added
    assert props["VidsrModel"] == "bicubic"
    assert props["VidsrShare_full"] == 1.0
    assert props["VidsrRoutes"] == "full" and props["VidsrRouteShares"] == 1.0  # one-element arrays read as scalars
    assert props["VidsrBudget"] == 0.5 and props["VidsrCost"] == 1.0  # a one-route model spends its full cost
    assert props["VidsrMACsPerPixel"] == registry.load("bicubic", 3).descriptor.macs_per_pixel
    assert props["VidsrMs"] > 0


def test_frame_budget_property_overrides_the_argument():
    clip = make_clip(core, vs.GRAYS, length=3)
    clip = core.std.SetFrameProp(clip, prop="VidsrBudget", floatval=0.25)
    out = vsvidsr.upscale(clip, model="lanczos", device="cpu", budget=0.75)
    assert out.get_frame(1).props["VidsrBudget"] == 0.25
    bad = vsvidsr.upscale(core.std.SetFrameProp(clip, prop="VidsrBudget", floatval=1.5), model="lanczos", device="cpu")
    with pytest.raises(vs.Error, match="VidsrBudget must be a number between 0 and 1"):
        bad.get_frame(0)


def test_engines_are_shared():
    """Clips with the same settings share one engine; other engine settings share the loaded model."""
    from vsvidsr import _filter

    vsvidsr.clear_cache()
    a = vsvidsr.upscale(make_clip(core, vs.RGBS, length=2), model="bicubic", device="cpu")
    b = vsvidsr.upscale(make_clip(core, vs.GRAYS, length=2, width=17, height=9), model="bicubic", device="cpu")
    c = vsvidsr.upscale(make_clip(core, vs.RGBS, length=2), model="bicubic", device="cpu", tile=16)
    settings = ("bicubic", 2, "cpu", torch.float32, "auto", None, None, 8)
    shared = _filter.shared_engine(*settings)
    assert _filter.shared_engine(*settings) is shared  # what a and b got: one engine
    tiled = _filter.shared_engine(*settings[:5], 16, None, 8)
    assert tiled is not shared and tiled.engine.upscaler is shared.engine.upscaler  # c: its own engine, the same model
    assert tiled.lock is shared.lock
    for clip in (a, b, c, a):
        assert clip.get_frame(1).props["VidsrModel"] == "bicubic"


# -- errors -------------------------------------------------------------------------------------

ACCEPTED = ("RGBS", "RGBH", "YUV444PS", "YUV444PH", "GrayS", "GrayH")


@pytest.mark.parametrize("fmt,call", [
    (vs.RGB24, "core.resize.Point(clip, format=vs.RGBS)"),
    (vs.RGB48, "core.resize.Point(clip, format=vs.RGBS)"),
    (vs.YUV420P8, "core.resize.Bicubic(clip, format=vs.YUV444PS)"),
    (vs.YUV420PS, "core.resize.Bicubic(clip, format=vs.YUV444PS)"),
    (vs.YUV422PH, "core.resize.Bicubic(clip, format=vs.YUV444PS)"),
    (vs.YUV444P16, "core.resize.Point(clip, format=vs.YUV444PS)"),
    (vs.GRAY8, "core.resize.Point(clip, format=vs.GRAYS)"),
], ids=["RGB24", "RGB48", "YUV420P8", "YUV420PS", "YUV422PH", "YUV444P16", "GRAY8"])
def test_wrong_format_is_a_vs_error_naming_formats_and_conversion(fmt, call):
    clip = core.std.BlankClip(width=16, height=16, format=fmt, length=1)
    with pytest.raises(vs.Error) as e:
        vsvidsr.upscale(clip, model="lanczos")
    msg = str(e.value)
    name = core.get_video_format(fmt).name
    assert msg.startswith(f"vsvidsr.upscale: format {name} is not supported")
    assert all(a in msg for a in ACCEPTED), msg
    assert msg.endswith(f"e.g. clip = {call}")
    # and the call it names does convert to a format that is taken
    converted = eval(call, {"core": core, "vs": vs, "clip": clip})
    assert vsvidsr.upscale(converted, model="lanczos", device="cpu").get_frame(0)


def test_variable_size_and_format_are_vs_errors():
    a = core.std.BlankClip(width=16, height=16, format=vs.RGBS, length=2)
    with pytest.raises(vs.Error, match="clip has a variable frame size"):
        vsvidsr.upscale(core.std.Splice([a, core.std.BlankClip(a, width=24)], mismatch=True))
    with pytest.raises(vs.Error, match=r"clip has a variable format.*Accepted formats: RGBS.*core\.resize"):
        vsvidsr.upscale(core.std.Splice([a, core.std.BlankClip(a, format=vs.RGBH)], mismatch=True))


@pytest.mark.parametrize("kwargs", [
    {"model": "no-such-model"}, {"scale": 5}, {"model": "lanczos", "router": "arm"}, {"model": "lanczos", "router": "x"},
    {"model": "/nonexistent/w.safetensors"},
])
def test_vidsr_errors_become_vs_errors_with_the_same_message(kwargs):
    clip = core.std.BlankClip(width=16, height=16, format=vs.RGBS, length=1)
    with pytest.raises(VidsrError) as expected:
        up = registry.load(kwargs.get("model", "lanczos"), kwargs.get("scale", 2))
        build_router(up, kwargs.get("router", "auto"))
    with pytest.raises(vs.Error) as e:
        vsvidsr.upscale(clip, **kwargs)
    assert str(e.value) == str(expected.value)


@pytest.mark.parametrize("kwargs,match", [
    ({"budget": 1.5}, "budget must be between 0 and 1"),
    ({"tile": 4}, "tile must be an integer >= 8"),
    ({"device": "tpu"}, "unknown device"),
    ({"clip": "not a clip"}, "clip must be a video clip"),
    ({"max_ms": float("nan")}, "max_ms must be a positive, finite number"),
    ({"max_ms": float("inf")}, "max_ms must be a positive, finite number"),
    ({"max_ms": 10.0, "budget": 0.5}, "budget or max_ms, not both"),
    ({"fp16": "no"}, "fp16 must be True or False"),
    ({"batch": True}, "batch must be an integer"),
    ({"overlap": True}, "overlap must be an integer"),
    ({"model": ""}, "model must be a name or a path"),
])
def test_bad_arguments_are_vs_errors(kwargs, match):
    args = {"clip": core.std.BlankClip(width=16, height=16, format=vs.RGBS, length=1), "model": "lanczos", **kwargs}
    with pytest.raises(vs.Error, match=match):
        vsvidsr.upscale(**args)


# -- networks ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def untrained_net(tmp_path_factory) -> str:
    """An ESPCN x2 with seeded random weights, saved with a manifest beside it the way training
    exports (so it loads by path): the network path, independent of what training has shipped."""
    from vidsr.models import weights

    folder = tmp_path_factory.mktemp("net")
    torch.manual_seed(0)
    module = registry.build_module("espcn", 2)
    torch.nn.init.normal_(module.body[-1].weight, std=0.05)  # it starts as exact bicubic otherwise
    file = "espcn-x2.safetensors"
    sha = weights.save(folder / file, module.state_dict())
    weights.write_manifest(folder, [{"name": "espcn-test", "scale": 2, "architecture": "espcn",
                                     "config": registry.ARCHITECTURES["espcn"].defaults, "file": file, "sha256": sha}])
    return str(folder / file)


@pytest.mark.parametrize("fmt,family", [(vs.RGBS, "rgb"), (vs.YUV444PS, "luma")], ids=["RGBS", "YUV444PS"])
def test_network_by_path_matches_engine_with_tiles(untrained_net, fmt, family):
    clip = make_clip(core, fmt, length=3, width=37, height=29)
    out = vsvidsr.upscale(clip, scale=2, model=untrained_net, device="cpu", tile=16)  # 3x2 tiles, merged seamlessly
    up = registry.load(untrained_net, 2)
    engine = Engine(up, tile=16)
    bicubic = engine_for("bicubic", 2)
    for n in (1, 2, 0):
        f = out.get_frame(n)
        src = planes_of(clip.get_frame(n))
        got = planes_of(f)
        np.testing.assert_allclose(got, reference(src, family, engine), atol=TOL, rtol=0, err_msg=f"frame {n}")
        assert np.abs(got - reference(src, family, bicubic)).max() > 1e-2  # the network did something
        assert f.props["VidsrModel"] == "espcn-test" and f.props["VidsrShare_full"] == 1.0


def test_shipped_network_through_vspipe(vspipe, tmp_path):
    shipped = registry.shipped_models()
    if not shipped:
        pytest.skip("no trained model is listed in vidsr/weights/manifest.json yet")
    entry = min(shipped, key=lambda e: (e["scale"], e["name"]))
    name, scale = entry["name"], entry["scale"]
    try:
        engine = engine_for(name, scale)
    except ImportError as e:  # its router family is not in this checkout yet
        pytest.skip(f"router for {name} cannot be built: {e}")
    text, args = script("YUV444PS", threads=2)
    out = tmp_path / "net.y4m"
    vspipe(text, out, *args, "-a", f"scale={scale}", "-a", f"model={name}", "-c", "y4m")
    _, got = read_y4m_444p16(out)
    clip = make_clip(core, vs.YUV444PS)
    ref = reference_frames(clip, "luma", engine)
    assert len(got) == clip.num_frames
    for n in range(clip.num_frames):
        np.testing.assert_allclose(dequantize_yuv16(got[n]), ref[n], atol=TOL, rtol=0, err_msg=f"frame {n}")


@pytest.mark.gpu
@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16"])
def test_cuda_matches_cpu(untrained_net, fp16):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    clip = make_clip(core, vs.RGBS, length=2)
    out = vsvidsr.upscale(clip, scale=2, model=untrained_net, device="cuda", fp16=fp16)
    engine = Engine(registry.load(untrained_net, 2))
    for n in range(2):  # TF32 / fp16 arithmetic on the GPU: close, not equal
        ref = reference(planes_of(clip.get_frame(n)), "rgb", engine)
        np.testing.assert_allclose(planes_of(out.get_frame(n)), ref, atol=1e-2 if fp16 else 5e-3, rtol=0)


@pytest.fixture(scope="module")
def routed_net(arm_weights) -> str:
    return str(arm_weights)


def test_routed_frames_do_not_depend_on_request_order(routed_net, monkeypatch):
    # A static clip whose per-frame budget jitters: a router that remembered the previous frame
    # would keep its routes across the jitter, so frame n would depend on what ran before it.
    # (Without routing's margin over one width everywhere, so that these budgets route.)
    monkeypatch.setattr("vidsr.routing.arm.ROUTED_MARGIN_DB", 0.0)
    still = make_clip(core, vs.GRAYS, length=1, width=128, height=96) * 6

    def jitter(n, f):
        out = f.copy()
        out.props["VidsrBudget"] = 0.40 + 0.03 * (n % 2)  # inside the ARM router's dead band
        return out

    clip = core.std.ModifyFrame(still, still, jitter)
    out = vsvidsr.upscale(clip, scale=2, model=routed_net, device="cpu", tile=16)
    alone = {}
    for n in range(6):  # each frame first, on its own
        vsvidsr.clear_cache()
        fresh = vsvidsr.upscale(clip, scale=2, model=routed_net, device="cpu", tile=16)
        alone[n] = planes_of(fresh.get_frame(n))
    for n in [0, 1, 2, 3, 4, 5, 3, 0]:  # in sequence and out of order on one clip
        # frames asked for in sequence keep the tiles whose input did not change (vidsr.temporal):
        # on a static clip those are the same values, up to the float rounding of another window
        np.testing.assert_allclose(planes_of(out.get_frame(n)), alone[n], rtol=0, atol=1e-6, err_msg=f"frame {n}")
    assert not np.array_equal(alone[0], alone[1])  # the jitter does change the routing


def test_max_ms_frames_are_planned_from_one_price_list(routed_net):
    clip = make_clip(core, vs.GRAYS, length=6, width=64, height=48)
    out = vsvidsr.upscale(clip, scale=2, model=routed_net, device="cpu", tile=16, max_ms=2.0)
    first = {n: planes_of(out.get_frame(n)) for n in range(6)}
    for n in [5, 0, 3, 3, 1, 4, 2]:
        f = out.get_frame(n)
        np.testing.assert_array_equal(planes_of(f), first[n], err_msg=f"frame {n}")
        assert 0.0 <= f.props["VidsrBudget"] <= 1.0


def test_max_ms_needs_a_routed_model(untrained_net):
    clip = make_clip(core, vs.GRAYS, length=2)
    with pytest.raises(vs.Error, match="max_ms needs a routed model"):
        vsvidsr.upscale(clip, scale=2, model=untrained_net, device="cpu", max_ms=5)


def test_a_nan_sample_does_not_spread():
    clip = core.std.BlankClip(width=16, height=16, format=vs.RGBS, length=1, color=[0.5, 0.5, 0.5])

    def poison(n, f):
        out = f.copy()
        np.asarray(out[0])[8, 8] = float("nan")
        return out

    clip = core.std.ModifyFrame(clip, clip, poison)
    out = vsvidsr.upscale(clip, scale=2, model="lanczos", device="cpu").get_frame(0)
    planes = np.stack([np.asarray(out[p]) for p in range(3)])
    assert np.isfinite(planes).all()


def test_frames_in_sequence_differ_from_frames_alone_by_at_most_the_reuse_bound(routed_net, monkeypatch):
    # a clip drifting 0.3 of an 8-bit level a frame: in sequence, tiles whose input moved less than
    # the reuse bound keep the last frame's output; asked for alone, each frame is computed in full.
    # The two differ, by what the bound allows and no more. (Routed plans: one width everywhere keeps nothing.)
    from vidsr import temporal

    monkeypatch.setattr("vidsr.routing.arm.ROUTED_MARGIN_DB", 0.0)
    still = make_clip(core, vs.GRAYS, length=1, width=128, height=96) * 8

    def drift(n, f):
        out = f.copy()
        np.asarray(out[0])[...] = np.clip(np.asarray(f[0]) + n * 0.3 / 255, 0, 1)
        return out

    clip = core.std.ModifyFrame(still, still, drift)
    in_order = vsvidsr.upscale(clip, scale=2, model=routed_net, device="cpu", tile=16, budget=0.5)
    sequence = [planes_of(in_order.get_frame(n)) for n in range(8)]
    alone = {}
    for n in (7, 3, 5):
        vsvidsr.clear_cache()
        fresh = vsvidsr.upscale(clip, scale=2, model=routed_net, device="cpu", tile=16, budget=0.5)
        alone[n] = planes_of(fresh.get_frame(n))
    worst = max(float(np.abs(sequence[n] - alone[n]).max()) for n in alone)
    assert 0 < worst <= 2 * temporal.REUSE_DIFF  # kept tiles differ, within twice the bound (the model's gain on it)
    # on average the lag of a kept tile: its input lags by up to the bound, which the network's
    # sharpening answers with a little more than a uniform shift
    assert max(float(np.abs(sequence[n] - alone[n]).mean()) for n in alone) < 1.25 * temporal.REUSE_DIFF


def test_the_example_script_renders_every_frame_and_refuses_a_damaged_file(vspipe, tmp_path):
    """The example's stand-in source reads with vidsr's own decoder: a truncated file fails with
    the frames it lost instead of rendering the few that remain."""
    from .media import Spec, make_video

    example = (Path(__file__).parents[1] / "plugins" / "vapoursynth" / "examples" / "upscale.vpy").read_text()
    src = make_video(tmp_path / "clip.mp4", Spec(frames=5))
    out = tmp_path / "out.y4m"
    vspipe(example, out, "-c", "y4m", "-a", f"src={src}", "-a", "model=lanczos")
    header, _, body = out.read_bytes().partition(b"\n")
    assert b" W128 " in header and b" H96 " in header
    assert body.count(b"FRAME\n") == 5
    whole = make_video(tmp_path / "whole.mkv", Spec(frames=20, codec="ffv1"))
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    r = vspipe(example, tmp_path / "cut.y4m", "-c", "y4m", "-a", f"src={cut}", "-a", "model=lanczos", check=False)
    assert r.returncode != 0 and "damaged video" in r.stderr
