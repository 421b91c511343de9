"""The policy server's wire format (stdlib + numpy only: `serve.py` imports it inside LeRobot's venv).

A message is: 4-byte big-endian header length, the header as UTF-8 JSON, then the arrays' raw bytes back to back.
The header holds the fields and, under "arrays", each array's name, dtype and shape. No pickle anywhere: a peer
can only ever send JSON and plain numeric arrays.
"""

from __future__ import annotations

import json
import socket
import struct

import numpy as np

# LeRobot's feature names: the server's inputs, and the columns of a LeRobotDataset (core/lerobot/v21.py)
STATE = "observation.state"
ACTION = "action"
IMAGE_PREFIX = "observation.images."
MAX_HEADER = 1 << 20
MAX_PAYLOAD = 1 << 30
DTYPES = ("float32", "float64", "uint8", "int64")


class ProtocolError(RuntimeError):
    """A malformed or oversized message; the connection is closed."""


def send(sock: socket.socket, fields: dict, arrays: dict[str, np.ndarray] | None = None) -> None:
    arrays = arrays or {}
    specs, blobs = [], []
    for name, value in arrays.items():
        arr = np.ascontiguousarray(value)
        if arr.dtype.name not in DTYPES:
            raise ProtocolError(f"array '{name}': dtype {arr.dtype} is not one of {', '.join(DTYPES)}")
        specs.append({"name": name, "dtype": arr.dtype.name, "shape": list(arr.shape)})
        blobs.append(arr.tobytes())
    header = json.dumps({**fields, "arrays": specs}).encode()
    sock.sendall(struct.pack(">I", len(header)) + header + b"".join(blobs))


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise ConnectionError("peer closed the connection")
        got += k
    return bytes(buf)


def recv(sock: socket.socket) -> tuple[dict, dict[str, np.ndarray]]:
    (length,) = struct.unpack(">I", _recv_exact(sock, 4))
    if length > MAX_HEADER:
        raise ProtocolError(f"header of {length} bytes (limit {MAX_HEADER})")
    try:
        header = json.loads(_recv_exact(sock, length).decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    arrays: dict[str, np.ndarray] = {}
    specs = header.pop("arrays", [])
    sizes = []
    for spec in specs:
        if spec.get("dtype") not in DTYPES:
            raise ProtocolError(f"array '{spec.get('name')}': dtype {spec.get('dtype')!r} not allowed")
        sizes.append(int(np.dtype(spec["dtype"]).itemsize * int(np.prod(spec["shape"], dtype=np.int64))))
    if sum(sizes) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {sum(sizes)} bytes (limit {MAX_PAYLOAD})")
    for spec, size in zip(specs, sizes, strict=True):
        data = _recv_exact(sock, size)
        arrays[str(spec["name"])] = np.frombuffer(data, dtype=spec["dtype"]).reshape(spec["shape"])
    return header, arrays
