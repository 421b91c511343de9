"""Keep large message buffers in the process instead of handing each one back to the kernel.

Measured with glibc's defaults (test/nodes/_rx_faults.py, over real DDS): a raw subscriber to 640x480 rgb8 frames
takes ~640 minor page faults per received frame (a 921 kB buffer is 225 pages), i.e. the buffers rmw and rclpy
allocate for each sample come back as freshly mapped memory that the kernel zero-fills page by page. A bare
subscriber at 250 img/s on 2 cores spent 2.7 s of CPU per 1 250 frames in its receiving thread; its process spent
2.6 s in the kernel (perf: page faults, clear_page). Why glibc's dynamic mmap threshold and heap trimming do not
catch this stream was not traced further; `keep_large_buffers()` removes it: the mmap threshold at glibc's maximum
(32 MiB) and the trim threshold at `trim_bytes`, so freed frames are reused from the heap (measured: 0.05 faults per
frame, 0.3 s of CPU per 1 250 frames, 0.16 s in the kernel). The cost is up to `trim_bytes` of freed memory that
stays mapped after a burst. A no-op (False) where the C library is not glibc, or where `GLIBC_TUNABLES` already sets
malloc (the user's choice wins). The episode logger calls it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's HEAP_MAX_SIZE / 2 on 64-bit: mallopt refuses more
DEFAULT_TRIM_BYTES = 512 << 20

_applied: bool | None = None


def keep_large_buffers(trim_bytes: int = DEFAULT_TRIM_BYTES) -> bool:
    """Make this process reuse freed large buffers (see the module docstring); True when glibc took the settings.
    Idempotent: the first call decides."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if "malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return _applied  # the user's own malloc tunables: leave them
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return _applied
    if not hasattr(libc, "gnu_get_libc_version"):  # only glibc has it
        return _applied
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    _applied = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, int(trim_bytes)))
    return _applied
