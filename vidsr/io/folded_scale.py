"""swscale's Lanczos with a prefilter folded into its coefficients: one pass for "filter, then scale".

swscale can convolve a caller's vectors into its own scaling filters (``SwsFilter``'s ``lumH`` and
``lumV``), so a separable prefilter costs a few more taps per output pixel instead of two passes
over the plane and a rounding between them: the sharpened base of a 360p frame at x2 took 0.9-1.6
ms this way against 2.9-3.7 for the torch prefilter and a plain swscale pass (one core). PyAV does
not expose these filters, so this calls the libswscale that PyAV ships (the same library its own
``reformat`` runs) through ctypes, with four functions of its stable public API. Where that library
cannot be found (a PyAV built against a system FFmpeg), ``FoldedScaler.load`` gives None and the
caller takes the two-pass way; the results agree to rounding (tests/test_sharpen.py).

Not thread-safe per scaler (an ``SwsContext`` keeps scratch lines): each thread that scales makes
its own (``FoldedScaler`` keeps its contexts per thread).
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading

import av
import numpy as np

SWS_LANCZOS = 0x200  # libswscale/swscale.h; PyAV's interpolation="LANCZOS" is this flag alone
_ALIGN = 64  # bytes: swscale's SIMD paths want aligned lines (and say so on stderr otherwise)


class _SwsVector(ctypes.Structure):
    _fields_ = [("coeff", ctypes.POINTER(ctypes.c_double)), ("length", ctypes.c_int)]


class _SwsFilter(ctypes.Structure):
    _fields_ = [("lumH", ctypes.POINTER(_SwsVector)), ("lumV", ctypes.POINTER(_SwsVector)),
                ("chrH", ctypes.POINTER(_SwsVector)), ("chrV", ctypes.POINTER(_SwsVector))]


def _bundled(name: str) -> str | None:
    """The path of PyAV's own copy of an FFmpeg library (manylinux: ``av.libs``; macOS wheels:
    ``av/.dylibs``; Windows: ``av.libs``), or None."""
    here = os.path.dirname(av.__file__)
    for folder in (os.path.join(here, os.pardir, "av.libs"), os.path.join(here, ".dylibs")):
        found = sorted(glob.glob(os.path.join(folder, f"*{name}*")))
        if found:
            return found[0]
    return None


_LIBS: tuple | None = None
_LIBS_LOCK = threading.Lock()


def _libraries():
    """(libswscale, libavutil) as ctypes libraries with their signatures set, or None."""
    global _LIBS
    with _LIBS_LOCK:
        if _LIBS is None:
            paths = _bundled("swscale"), _bundled("avutil")
            try:
                if None in paths:
                    raise OSError("not bundled")
                sws, avutil = ctypes.CDLL(paths[0]), ctypes.CDLL(paths[1])
                sws.sws_getContext.restype = ctypes.c_void_p
                sws.sws_getContext.argtypes = [ctypes.c_int] * 7 + [ctypes.POINTER(_SwsFilter)] * 2 + [ctypes.POINTER(ctypes.c_double)]
                sws.sws_scale.restype = ctypes.c_int
                sws.sws_scale.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int),
                                          ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int)]
                sws.sws_freeContext.argtypes = [ctypes.c_void_p]
                avutil.av_get_pix_fmt.restype = ctypes.c_int
                avutil.av_get_pix_fmt.argtypes = [ctypes.c_char_p]
                _LIBS = (sws, avutil)
            except (OSError, AttributeError):
                _LIBS = ()
        return _LIBS or None


_GRAY = {8: "gray", 9: "gray9le", 10: "gray10le", 12: "gray12le", 14: "gray14le", 16: "gray16le"}


def _gray_format(bits: int) -> str:
    """swscale's grey format for ``bits`` (its range is the format's: outputs clamp to it); other
    depths take gray16le, and ``FoldedScaler.scale`` clamps them."""
    return _GRAY.get(bits, "gray16le")


def _aligned(height: int, width: int, dtype) -> np.ndarray:
    """An uninitialised (height, width) plane whose rows start on ``_ALIGN``-byte boundaries."""
    item = np.dtype(dtype).itemsize
    stride = -(-width * item // _ALIGN) * _ALIGN
    raw = np.empty(height * stride + _ALIGN, np.uint8)
    offset = -raw.ctypes.data % _ALIGN
    return raw[offset: offset + height * stride].view(dtype).reshape(height, stride // item)[:, :width]


class FoldedScaler:
    """Grey planes scaled by swscale's Lanczos with ``taps`` (an odd-length row, run along both
    axes) convolved into its filters."""

    def __init__(self, libs, taps):
        self._sws, self._avutil = libs
        self._coeff = (ctypes.c_double * len(taps))(*[float(t) for t in taps])
        self._vector = _SwsVector(self._coeff, len(taps))
        self._filter = _SwsFilter(ctypes.pointer(self._vector), ctypes.pointer(self._vector), None, None)
        self._local = threading.local()
        self._contexts: list[int] = []  # every thread's, freed with the scaler
        self._lock = threading.Lock()

    @classmethod
    def load(cls, taps) -> "FoldedScaler | None":
        libs = _libraries()
        return None if libs is None else cls(libs, taps)

    def _context(self, key) -> int:
        contexts = getattr(self._local, "contexts", None)
        if contexts is None:
            contexts = self._local.contexts = {}
        if key not in contexts:
            (w, h, ow, oh, fmt) = key
            pix = self._avutil.av_get_pix_fmt(fmt.encode())
            ctx = self._sws.sws_getContext(w, h, pix, ow, oh, pix, SWS_LANCZOS, ctypes.byref(self._filter), None, None)
            if not ctx:
                raise RuntimeError(f"swscale refused a {w}x{h} -> {ow}x{oh} {fmt} scaler")
            with self._lock:
                self._contexts.append(ctx)
            contexts[key] = ctx
        return contexts[key]

    def scale(self, plane: np.ndarray, bits: int, width: int, height: int) -> np.ndarray:
        """A (h, w) uint8/uint16 plane of ``bits`` -> (height, width), same dtype, clamped to ``bits``."""
        plane = np.asarray(plane)
        if plane.strides[1] != plane.itemsize or plane.ctypes.data % _ALIGN or plane.strides[0] % _ALIGN:
            src = _aligned(*plane.shape, plane.dtype)
            src[:] = plane
            plane = src
        h, w = plane.shape
        ctx = self._context((w, h, width, height, _gray_format(bits)))
        out = _aligned(height, width, plane.dtype)
        src_p, src_s = (ctypes.c_void_p * 4)(plane.ctypes.data), (ctypes.c_int * 4)(plane.strides[0])
        dst_p, dst_s = (ctypes.c_void_p * 4)(out.ctypes.data), (ctypes.c_int * 4)(out.strides[0])
        if self._sws.sws_scale(ctx, src_p, src_s, 0, h, dst_p, dst_s) != height:
            raise RuntimeError("swscale wrote fewer lines than asked")
        if bits not in _GRAY:  # a depth swscale has no grey format for: clamp to it here
            np.minimum(out, (1 << bits) - 1, out=out)
        return out

    def __del__(self):
        for ctx in getattr(self, "_contexts", ()):
            self._sws.sws_freeContext(ctx)
