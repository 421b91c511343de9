"""A streaming MCAP storage for the rosbags rosbag2 Writer, built for raw bytes at camera rates.

It implements rosbags' storage-writer protocol (add_msgtype, add_connection, write, close, abort), so the
rosbags Writer still owns connections, QoS and metadata.yaml. The difference to rosbags' own MCAP storage
is how bytes move: a chunk is a list of byte parts (payloads are referenced, not copied), written with one
vectored write that releases the GIL; only with zstd is a chunk joined (to compress it). Chunks can be
closed on demand (`flush`), which is what makes a killed writer lose at most one flush interval.
Record layout: the MCAP specification, https://mcap.dev/spec.
"""

from __future__ import annotations

import os
import re
import struct
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from backports import zstd
from rosbags.interfaces import Connection, MessageDefinitionFormat

MAGIC = b"\x89MCAP0\r\n"
_SMALL = 16 * 1024  # payloads below this are copied into a shared buffer (fewer iovecs)
_CHUNK_BYTES = 1 << 20
_IOV_MAX = 512
_RIHS01 = re.compile(r"RIHS01_[0-9a-f]{64}")


def _str(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<I", len(data)) + data


def _record(op: int, body: bytes) -> bytes:
    return struct.pack("<BQ", op, len(body)) + body


class StreamingMcapWriter:
    """rosbags StorageWriter protocol: `Writer.STORAGE_PLUGINS` maps MCAP to this class (see writer.py)."""

    def __init__(self, path: Path, compression) -> None:  # compression: rosbags CompressionMode
        from rosbags.rosbag2.enums import CompressionMode

        self.path = path / f"{path.name}.mcap"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._offset = 0
        self.compression = "zstd" if compression == CompressionMode.STORAGE else ""
        self._compress: Callable[[bytes], bytes] | None = zstd.compress if self.compression else None
        self._schemas: dict[str, int] = {}
        self._schema_records: list[bytes] = []
        self._channel_records: list[bytes] = []
        self._chunk_indexes: list[bytes] = []
        self._channel_counts: dict[int, int] = defaultdict(int)
        self._start = 2**63 - 1
        self._end = 0
        self._reset_chunk()
        self._write_parts([MAGIC, _record(0x01, _str("ros2") + _str("corft_ros"))])

    # ------------------------------------------------------------------------------------------ I/O
    def _write_parts(self, parts: list[bytes | memoryview]) -> None:
        for i in range(0, len(parts), _IOV_MAX):
            batch = [memoryview(p) for p in parts[i : i + _IOV_MAX]]
            while batch:
                n = os.writev(self._fd, batch)
                self._offset += n
                while batch and n >= len(batch[0]):
                    n -= len(batch[0])
                    batch.pop(0)
                if batch and n:
                    batch[0] = batch[0][n:]

    # ------------------------------------------------------------------------------------------ chunks
    def _reset_chunk(self) -> None:
        self._parts: list[bytes | memoryview] = []
        self._small = bytearray()
        self._chunk_size = 0
        self._chunk_start = 2**63 - 1
        self._chunk_end = 0
        self._chunk_msgs: dict[int, list[tuple[int, int]]] = defaultdict(list)

    @property
    def pending_bytes(self) -> int:
        return self._chunk_size

    @property
    def pending_messages(self) -> bool:
        return bool(self._chunk_msgs)

    @property
    def chunks_written(self) -> int:
        return len(self._chunk_indexes)

    def write(self, connection: Connection, timestamp: int, data: bytes | memoryview) -> None:
        n = len(data)
        header = struct.pack("<BQHIQQ", 0x05, 22 + n, connection.id, 0, timestamp, timestamp)
        self._chunk_msgs[connection.id].append((timestamp, self._chunk_size))
        if n < _SMALL:
            self._small += header
            self._small += data
        else:
            self._small += header
            self._parts.append(bytes(self._small))
            self._small = bytearray()
            self._parts.append(data)
        self._chunk_size += 31 + n
        self._channel_counts[connection.id] += 1
        self._chunk_start = min(self._chunk_start, timestamp)
        self._chunk_end = max(self._chunk_end, timestamp)
        if self._chunk_size >= _CHUNK_BYTES:
            self.flush()

    def flush(self) -> bool:
        """Close the pending chunk and hand it to the OS; False when there was nothing to write."""
        if not self._chunk_msgs:
            return False
        if self._small:
            self._parts.append(bytes(self._small))
        records: list[bytes | memoryview] = self._parts
        usize = self._chunk_size
        if self._compress is not None:
            records = [self._compress(b"".join(records))]
        csize = sum(len(p) for p in records)
        head = struct.pack("<QQQI", self._chunk_start, self._chunk_end, usize, 0) + _str(self.compression)
        head += struct.pack("<Q", csize)
        chunk_start = self._offset
        parts: list[bytes | memoryview] = [struct.pack("<BQ", 0x06, len(head) + csize), head, *records]
        chunk_length = 9 + len(head) + csize
        index_offsets = []
        index_parts = []
        pos = chunk_start + chunk_length
        for cid, entries in self._chunk_msgs.items():
            body = struct.pack("<HI", cid, 16 * len(entries)) + b"".join(struct.pack("<QQ", t, o) for t, o in entries)
            rec = _record(0x07, body)
            index_offsets.append(struct.pack("<HQ", cid, pos))
            index_parts.append(rec)
            pos += len(rec)
        self._write_parts(parts + index_parts)
        offsets = b"".join(index_offsets)
        self._chunk_indexes.append(_record(0x08, struct.pack(
            "<QQQQ", self._chunk_start, self._chunk_end, chunk_start, chunk_length
        ) + struct.pack("<I", len(offsets)) + offsets + struct.pack("<Q", pos - chunk_start - chunk_length)
            + _str(self.compression) + struct.pack("<QQ", csize, usize)))
        self._start = min(self._start, self._chunk_start)
        self._end = max(self._end, self._chunk_end)
        self._reset_chunk()
        return True

    # ------------------------------------------------------------------------------------------ protocol
    def add_msgtype(self, connection: Connection) -> None:
        sid = len(self._schemas) + 1
        self._schemas[connection.msgtype] = sid
        encoding = "ros2msg" if connection.msgdef.format == MessageDefinitionFormat.MSG else "ros2idl"
        data = connection.msgdef.data.encode()
        rec = _record(0x03, struct.pack("<H", sid) + _str(connection.msgtype) + _str(encoding)
                      + struct.pack("<I", len(data)) + data)
        self._schema_records.append(rec)
        self._write_parts([rec])  # outside chunks, so it is on disk before any message that needs it

    def add_connection(self, connection: Connection, offered_qos_profiles: str) -> None:
        # The channel metadata rosbag2 (Iron and newer) writes: the QoS string and the RIHS01 type hash ("" when
        # unknown, as rosbag2 writes an unset hash). Humble's rosbag2 reads the QoS and ignores the hash.
        type_hash = connection.digest if _RIHS01.fullmatch(connection.digest or "") else ""
        meta = (_str("offered_qos_profiles") + _str(offered_qos_profiles)
                + _str("topic_type_hash") + _str(type_hash))
        rec = _record(0x04, struct.pack("<HH", connection.id, self._schemas[connection.msgtype])
                      + _str(connection.topic) + _str(connection.ext.serialization_format)  # type: ignore[union-attr]
                      + struct.pack("<I", len(meta)) + meta)
        self._channel_counts.setdefault(connection.id, 0)
        self._channel_records.append(rec)
        self._write_parts([rec])

    def close(self, version: int, metadata: str) -> None:
        self.flush()
        inner = _str("serialized_metadata") + _str(metadata)
        meta_rec = _record(0x0C, _str("rosbag2") + struct.pack("<I", len(inner)) + inner)
        meta_start = self._offset
        self._write_parts([meta_rec, _record(0x0F, struct.pack("<I", 0))])
        summary: list[bytes] = []
        groups: list[tuple[int, int, int]] = []
        pos = self._offset

        def group(op: int, records: list[bytes]) -> None:
            nonlocal pos
            if records:
                size = sum(len(r) for r in records)
                groups.append((op, pos, size))
                summary.extend(records)
                pos += size

        group(0x03, self._schema_records)
        group(0x04, self._channel_records)
        group(0x08, self._chunk_indexes)
        group(0x0D, [_record(0x0D, struct.pack("<QQ", meta_start, len(meta_rec)) + _str("rosbag2"))])
        counts = b"".join(struct.pack("<HQ", cid, n) for cid, n in sorted(self._channel_counts.items()))
        stats = struct.pack("<QHIIIIQQ", sum(self._channel_counts.values()), len(self._schema_records),
                            len(self._channel_records), 0, 1, len(self._chunk_indexes),
                            self._start if self._end else 0, self._end)
        group(0x0B, [_record(0x0B, stats + struct.pack("<I", len(counts)) + counts)])
        summary_start = self._offset
        offsets_start = pos
        summary.extend(_record(0x0E, struct.pack("<BQQ", op, start, size)) for op, start, size in groups)
        footer = _record(0x02, struct.pack("<QQI", summary_start, offsets_start, 0)) + MAGIC
        self._write_parts([*summary, footer])
        os.close(self._fd)
        self._fd = -1

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
