"""ShmRing: a single-producer single-consumer byte ring in shared memory, for raw messages between two processes.

The producer (the logger's DDS callbacks) copies each message into the ring once and moves on; the consumer (the
writer process) takes them in order. Records are 8-byte aligned: a 16-byte header (u32 kind, u32 length, i64 t_ns)
and the payload. Positions are monotonic u64 counters in the segment's first bytes; each side only ever stores its
own counter, after the bytes it covers (x86 and ARM64 keep 8-byte aligned stores whole, and the producer publishes
`head` only after the record is written), so no lock crosses the process boundary. A record that does not fit before
the end of the segment is preceded by a WRAP marker and written at its start. Nothing is pickled: payloads are bytes.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from multiprocessing import shared_memory

import numpy as np

_HEADER = struct.Struct("<IIq")  # kind, payload length, t_ns
_CONTROL = 64  # head, tail, producer_closed, consumer_alive, ... (u64 each)
WRAP = 0xFFFFFFFF
CONTROL_RECORD = 0xFFFFFFFE  # a JSON control message (add a topic, stop) ordered among the messages


def shm_free_bytes() -> int | None:
    """Free bytes of /dev/shm (where POSIX shared memory lives on Linux); None where there is none to ask."""
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _padded(n: int) -> int:
    return (n + 7) & ~7


class ShmRing:
    """`ShmRing.create(capacity)` in the producer, `ShmRing.attach(name)` in the consumer."""

    def __init__(self, shm: shared_memory.SharedMemory, owner: bool) -> None:
        self._shm = shm
        self._owner = owner
        self.name = shm.name
        self._ctl = np.ndarray((_CONTROL // 8,), dtype=np.uint64, buffer=shm.buf)
        self.capacity = shm.size - _CONTROL
        self._data = shm.buf[_CONTROL:]

    @classmethod
    def create(cls, capacity: int) -> ShmRing:
        """A new ring of `capacity` bytes; OSError (one line) when /dev/shm cannot hold it: its pages are allocated as
        they are written, and writing past a full /dev/shm would kill the process (SIGBUS), not raise."""
        capacity = max(1 << 16, _padded(int(capacity)))
        free = shm_free_bytes()
        if free is not None and capacity + _CONTROL > free:
            raise OSError(f"the shared-memory ring needs {capacity / 2**20:.0f} MiB (queue_max_bytes) but /dev/shm has "
                          f"{free / 2**20:.0f} MiB free: lower queue_max_bytes, give the container more shared memory "
                          "(docker --shm-size) or use writer: thread")
        shm = shared_memory.SharedMemory(create=True, size=capacity + _CONTROL)
        ring = cls(shm, owner=True)
        ring._ctl[:] = 0
        return ring

    @classmethod
    def attach(cls, name: str) -> ShmRing:
        # track=False (3.13+) is not available on 3.10/3.12: unregister from this process's resource tracker by
        # hand, so the consumer exiting does not unlink a segment the producer owns.
        shm = shared_memory.SharedMemory(name=name)
        with contextlib.suppress(Exception):
            from multiprocessing import resource_tracker

            resource_tracker.unregister(shm._name, "shared_memory")  # noqa: SLF001
        return cls(shm, owner=False)

    # ------------------------------------------------------------------ producer
    def put(self, kind: int, t_ns: int, data: bytes | memoryview) -> bool:
        """Copy one record in; False when it does not fit now (the caller counts the drop)."""
        n = len(data)
        need = _HEADER.size + _padded(n)
        if need > self.capacity // 2:
            return False
        head = int(self._ctl[0])
        free = self.capacity - (head - int(self._ctl[1]))
        off = head % self.capacity
        skip = 0
        if off + need > self.capacity:  # not contiguous: wrap to the start
            skip = self.capacity - off
        if need + skip > free:
            return False
        if skip:
            if skip >= _HEADER.size:
                _HEADER.pack_into(self._data, off, WRAP, 0, 0)
            off = 0
        _HEADER.pack_into(self._data, off, kind, n, t_ns)
        self._data[off + _HEADER.size: off + _HEADER.size + n] = data
        self._ctl[0] = head + skip + need  # publish after the bytes
        return True

    def used(self) -> int:
        return int(self._ctl[0]) - int(self._ctl[1])

    def close_producer(self) -> None:
        self._ctl[2] = 1

    # ------------------------------------------------------------------ consumer
    @property
    def producer_closed(self) -> bool:
        return bool(self._ctl[2])

    def take(self, max_bytes: int = 64 << 20) -> Iterator[tuple[int, int, bytes]]:
        """The records published so far (up to about `max_bytes`), each copied out, in order; frees their space."""
        tail = int(self._ctl[1])
        head = int(self._ctl[0])
        taken = 0
        while tail < head and taken < max_bytes:
            off = tail % self.capacity
            if self.capacity - off < _HEADER.size:  # too short a gap for even a WRAP marker
                tail += self.capacity - off
                continue
            kind, n, t_ns = _HEADER.unpack_from(self._data, off)
            if kind == WRAP:
                tail += self.capacity - off
                continue
            start = off + _HEADER.size
            payload = bytes(self._data[start: start + n])
            size = _HEADER.size + _padded(n)
            tail += size
            taken += size
            self._ctl[1] = tail
            yield kind, t_ns, payload
        self._ctl[1] = tail

    def close(self) -> None:
        self._ctl = None  # type: ignore[assignment]
        self._data.release()
        self._shm.close()
        if self._owner:
            with contextlib.suppress(FileNotFoundError):
                self._shm.unlink()
