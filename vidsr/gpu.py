"""CuPy kernels for tiling on the GPU: one launch gathers every tile window of a batch, one
launch scatters every tile core back, instead of one small copy per tile.

The numpy/torch paths in ``vidsr.tiling`` are the reference; ``tests/test_gpu.py`` checks these
kernels against them on a CUDA machine (skipped where there is none). Arrays are (1, C, H, W)
float32/float16 frames and (n, C, h, w) tile batches, C-contiguous.
"""

from __future__ import annotations

import numpy as np

_SOURCE = r"""
template <typename T>
__device__ void extract_impl(const T* frame, T* tiles, const long long* wy, const long long* wx,
                             int c, int H, int W, int n, int wh, int ww) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long total = (long long)n * c * wh * ww;
    if (i >= total) return;
    int x = i % ww; long long r = i / ww;
    int y = r % wh; r /= wh;
    int ch = r % c; int t = r / c;
    tiles[i] = frame[((long long)ch * H + (wy[t] + y)) * W + (wx[t] + x)];
}

template <typename T>
__device__ void place_impl(T* frame, const T* tiles, const long long* y0, const long long* x0,
                           const long long* th, const long long* tw, const long long* cy, const long long* cx,
                           int c, int H, int W, int n, int oh, int ow, int s, int maxh, int maxw) {
    // one thread per (tile, channel, core pixel) of the largest core; smaller cores skip the rest
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long total = (long long)n * c * maxh * s * maxw * s;
    if (i >= total) return;
    int x = i % (maxw * s); long long r = i / (maxw * s);
    int y = r % (maxh * s); r /= (maxh * s);
    int ch = r % c; int t = r / c;
    if (y >= th[t] * s || x >= tw[t] * s) return;
    T v = tiles[(((long long)t * c + ch) * oh + (cy[t] * s + y)) * ow + (cx[t] * s + x)];
    frame[((long long)ch * H * s + (y0[t] * s + y)) * (long long)(W * s) + (x0[t] * s + x)] = v;
}

extern "C" __global__ void extract_f32(const float* f, float* t, const long long* wy, const long long* wx,
                                       int c, int H, int W, int n, int wh, int ww) {
    extract_impl<float>(f, t, wy, wx, c, H, W, n, wh, ww);
}
extern "C" __global__ void extract_f16(const __half* f, __half* t, const long long* wy, const long long* wx,
                                       int c, int H, int W, int n, int wh, int ww) {
    extract_impl<__half>(f, t, wy, wx, c, H, W, n, wh, ww);
}
extern "C" __global__ void place_f32(float* f, const float* t, const long long* y0, const long long* x0,
                                     const long long* th, const long long* tw, const long long* cy, const long long* cx,
                                     int c, int H, int W, int n, int oh, int ow, int s, int mh, int mw) {
    place_impl<float>(f, t, y0, x0, th, tw, cy, cx, c, H, W, n, oh, ow, s, mh, mw);
}
extern "C" __global__ void place_f16(__half* f, const __half* t, const long long* y0, const long long* x0,
                                     const long long* th, const long long* tw, const long long* cy, const long long* cx,
                                     int c, int H, int W, int n, int oh, int ow, int s, int mh, int mw) {
    place_impl<__half>(f, t, y0, x0, th, tw, cy, cx, c, H, W, n, oh, ow, s, mh, mw);
}
"""

_module = None
_THREADS = 256


def _kernels():
    global _module
    if _module is None:
        import cupy

        _module = cupy.RawModule(code="#include <cuda_fp16.h>\n" + _SOURCE, options=("--std=c++14",))
    return _module


def _suffix(dtype) -> str:
    name = np.dtype(dtype).name
    if name not in ("float32", "float16"):
        raise TypeError(f"GPU tiling supports float32/float16 frames, not {name}")
    return "f32" if name == "float32" else "f16"


def extract_tiles(frame, wy: np.ndarray, wx: np.ndarray, win_h: int, win_w: int):
    import cupy

    frame = cupy.ascontiguousarray(frame)
    _, c, H, W = frame.shape
    n = len(wy)
    tiles = cupy.empty((n, c, win_h, win_w), dtype=frame.dtype)
    total = n * c * win_h * win_w
    fn = _kernels().get_function("extract_" + _suffix(frame.dtype))
    fn(((total + _THREADS - 1) // _THREADS,), (_THREADS,),
       (frame, tiles, cupy.asarray(wy), cupy.asarray(wx), np.int32(c), np.int32(H), np.int32(W), np.int32(n),
        np.int32(win_h), np.int32(win_w)))
    return tiles


def place_tiles(out, tiles, y0, x0, th, tw, cy, cx, scale: int) -> None:
    import cupy

    tiles = cupy.ascontiguousarray(tiles)
    _, c, Hs, Ws = out.shape
    n, _, oh, ow = tiles.shape
    mh, mw = int(th.max()), int(tw.max())
    total = n * c * mh * scale * mw * scale
    fn = _kernels().get_function("place_" + _suffix(out.dtype))
    fn(((total + _THREADS - 1) // _THREADS,), (_THREADS,),
       (out, tiles, *(cupy.asarray(a) for a in (y0, x0, th, tw, cy, cx)), np.int32(c), np.int32(Hs // scale),
        np.int32(Ws // scale), np.int32(n), np.int32(oh), np.int32(ow), np.int32(scale), np.int32(mh), np.int32(mw)))
