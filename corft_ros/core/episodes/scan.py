"""A forgiving MCAP scanner: reads records front to back and stops cleanly at the first damaged one.

Used for bags whose writer was killed (no summary, no footer): everything in complete chunks is
recovered. Implements the record layout of the MCAP spec (https://mcap.dev/spec) for the records
rosbag2 writers produce.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from backports import zstd

MAGIC = b"\x89MCAP0\r\n"
OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK, OP_DATA_END = 0x02, 0x03, 0x04, 0x05, 0x06, 0x0F
# Records that belong to the summary section: reaching one means the data section is over.
_SUMMARY_OPS = {0x08, 0x0A, 0x0B, 0x0D, 0x0E}


@dataclass
class McapSchema:
    id: int
    name: str
    encoding: str
    data: str


@dataclass
class McapChannel:
    id: int
    schema_id: int
    topic: str
    message_encoding: str
    metadata: bytes


@dataclass
class McapScan:
    path: Path
    schemas: dict[int, McapSchema] = field(default_factory=dict)
    channels: dict[int, McapChannel] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    start_ns: int | None = None
    end_ns: int | None = None
    complete: bool = False  # reached the data-end record (the writer closed the file)
    damage: str = ""  # why scanning stopped early, if it did
    valid_bytes: int = 0  # offset after the last intact data record

    @property
    def message_count(self) -> int:
        return sum(self.counts.values())


class _Truncated(Exception):
    pass


def _read(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise _Truncated(f"file ends inside a record ({len(data)} of {n} bytes)")
    return data


def _string(buf: memoryview, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<I", buf, pos)
    return bytes(buf[pos + 4 : pos + 4 + n]).decode(), pos + 4 + n


def _records(buf: memoryview) -> Iterator[tuple[int, memoryview]]:
    pos = 0
    end = len(buf)
    while pos < end:
        if end - pos < 9:
            raise _Truncated("chunk ends inside a record header")
        op = buf[pos]
        (length,) = struct.unpack_from("<Q", buf, pos + 1)
        if pos + 9 + length > end:
            raise _Truncated("chunk record overruns its chunk")
        yield op, buf[pos + 9 : pos + 9 + length]
        pos += 9 + length


def scan_mcap(path: str | Path) -> tuple[McapScan, Iterator[tuple[int, int, bytes]]]:
    """(scan state, iterator of (channel id, log time ns, data)); the state fills in while iterating."""
    scan = McapScan(Path(path))
    return scan, _iterate(scan)


def _handle(scan: McapScan, op: int, body: memoryview) -> tuple[int, int, bytes] | None:
    if op == OP_SCHEMA:
        (sid,) = struct.unpack_from("<H", body, 0)
        name, pos = _string(body, 2)
        encoding, pos = _string(body, pos)
        (n,) = struct.unpack_from("<I", body, pos)
        scan.schemas[sid] = McapSchema(sid, name, encoding, bytes(body[pos + 4 : pos + 4 + n]).decode())
    elif op == OP_CHANNEL:
        cid, sid = struct.unpack_from("<HH", body, 0)
        topic, pos = _string(body, 4)
        encoding, pos = _string(body, pos)
        (n,) = struct.unpack_from("<I", body, pos)
        scan.channels[cid] = McapChannel(cid, sid, topic, encoding, bytes(body[pos + 4 : pos + 4 + n]))
    elif op == OP_MESSAGE:
        cid, _seq, log_time = struct.unpack_from("<HIQ", body, 0)
        return cid, log_time, bytes(body[22:])
    return None


def _iterate(scan: McapScan) -> Iterator[tuple[int, int, bytes]]:
    with open(scan.path, "rb") as f:
        if f.read(8) != MAGIC:
            scan.damage = "not an MCAP file (bad magic)"
            return
        scan.valid_bytes = 8
        while True:
            head = f.read(9)
            if not head:
                scan.damage = "no data-end record (writer did not close the file)"
                return
            try:
                if len(head) < 9:
                    raise _Truncated("file ends inside a record header")
                op = head[0]
                (length,) = struct.unpack_from("<Q", head, 1)
                if op in (OP_DATA_END, OP_FOOTER) or op in _SUMMARY_OPS:
                    scan.complete = True
                    return
                body = memoryview(_read(f, length))
                if op == OP_CHUNK:
                    start, end, usize, _crc = struct.unpack_from("<QQQI", body, 0)
                    compression, pos = _string(body, 28)
                    (csize,) = struct.unpack_from("<Q", body, pos)
                    raw = body[pos + 8 : pos + 8 + csize]
                    if compression == "zstd":
                        raw = memoryview(zstd.decompress(raw))
                    elif compression == "lz4":
                        from lz4.frame import decompress as lz4_decompress

                        raw = memoryview(lz4_decompress(raw))
                    elif compression:
                        raise _Truncated(f"unsupported chunk compression {compression!r}")
                    if len(raw) != usize:
                        raise _Truncated("chunk size mismatch")
                    # Decode the whole chunk before yielding, so a damaged chunk yields nothing.
                    found = [m for o, b in _records(raw) if (m := _handle(scan, o, b)) is not None]
                else:
                    m = _handle(scan, op, body)
                    found = [m] if m is not None else []
            except (_Truncated, struct.error, zstd.ZstdError, UnicodeDecodeError) as exc:
                scan.damage = f"damaged or truncated at byte {scan.valid_bytes}: {exc}"
                return
            scan.valid_bytes = f.tell()
            for cid, log_time, data in found:
                scan.counts[cid] = scan.counts.get(cid, 0) + 1
                scan.start_ns = log_time if scan.start_ns is None else min(scan.start_ns, log_time)
                scan.end_ns = log_time if scan.end_ns is None else max(scan.end_ns, log_time)
                yield cid, log_time, data
