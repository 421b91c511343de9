"""Keep large message buffers in the process instead of handing each one back to the kernel.

glibc serves an allocation of 128 kiB or more with its own mmap and unmaps it on free; its dynamic threshold does
not help a stream of equal sizes. A raw subscriber to 640x480 rgb8 frames therefore maps, page-faults (225 zeroed
pages) and unmaps 921 kB twice per message (rmw's serialized buffer, then Python's bytes). Measured on 2 cores,
one camera at 250 img/s: the receiving thread spent 2.6 s of CPU per 1 250 frames, 90% of it in the kernel
(page faults, clear_page); with the buffers kept, 0.2-0.3 s. `keep_large_buffers()` raises the mmap threshold to
glibc's maximum (32 MiB) and the trim threshold to `trim_bytes`, so freed frames are reused from the heap; the cost
is up to `trim_bytes` of freed memory that stays mapped after a burst. A no-op (False) where the C library is not
glibc. The episode logger calls it; `GLIBC_TUNABLES` set by the user wins (it is read at process start, and this
function then leaves the thresholds as they are).
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
        gnu_get_libc_version = libc.gnu_get_libc_version  # only glibc has it
    except (OSError, AttributeError):
        return _applied
    del gnu_get_libc_version
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    _applied = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, int(trim_bytes)))
    return _applied
