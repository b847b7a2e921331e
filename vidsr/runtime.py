"""Process-wide settings that make torch on the CPU fast enough for video.

glibc serves every allocation above 128 KiB-32 MiB with a fresh ``mmap`` and gives it back on
free, so each large activation tensor of every layer of every frame page-faults its memory in
anew; on a small CPU that can cost more than the convolutions themselves. Raising the mmap and
trim thresholds keeps freed blocks for reuse, so memory stays bounded while the networks run
several times faster (the overhead benchmark in BENCHMARKS.md measures peak memory).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys
import threading
from contextlib import contextmanager

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP = 1 << 30
_done = False


def tune_allocator() -> bool:
    """Keep freed memory for reuse instead of returning it to the OS (glibc only; a no-op
    elsewhere). Returns whether the setting took."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _done = bool(libc.mallopt(_M_MMAP_THRESHOLD, _KEEP)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _KEEP))
    except (OSError, AttributeError):  # not glibc (musl, ...): leave the allocator alone
        _done = False
    return _done


@contextmanager
def sigterm_as_interrupt():
    """Inside, SIGTERM (a scheduler's or a service manager's stop) raises ``KeyboardInterrupt`` in
    the main thread, as Ctrl-C does, so the run cleans up (no partial file, workers stopped) and
    ends with one line; Ray's own handler would dump a stack and exit. Off the main thread, where
    Python takes no handler, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
