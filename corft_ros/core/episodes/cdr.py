"""Zero-copy parsing of the CDR fields the dataset builder needs before deciding to decode a message.

A bag holds many more camera frames than control ticks; the builder reads every frame's
`header.stamp` but decodes (and resizes) only the frames it keeps. sensor_msgs/Image in CDR:
encapsulation (4 bytes) · stamp sec:int32 nanosec:uint32 · frame_id:string · height:uint32 ·
width:uint32 · encoding:string · is_bigendian:uint8 · step:uint32 · data:sequence<uint8>.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from corft_ros.core.episodes.errors import CdrError

__all__ = ["CdrError", "ImageView", "header_stamp_ns", "parse_image"]

_LE = {0x00: ">", 0x01: "<"}  # encapsulation kind low byte: CDR_BE = 0, CDR_LE = 1


def _endian(buf: memoryview) -> str:
    if len(buf) < 4:
        raise CdrError(f"message is {len(buf)} bytes, shorter than the CDR header")
    try:
        return _LE[buf[1]]
    except KeyError:
        raise CdrError(f"unsupported CDR encapsulation 0x{buf[0]:02x}{buf[1]:02x}") from None


def header_stamp_ns(data: bytes | memoryview) -> int:
    """`header.stamp` in nanoseconds of any message whose first field is std_msgs/Header."""
    buf = memoryview(data)
    end = _endian(buf)
    if len(buf) < 12:
        raise CdrError("message too short for a header stamp")
    sec, nsec = struct.unpack_from(end + "iI", buf, 4)
    return sec * 1_000_000_000 + nsec


def _align(pos: int, n: int) -> int:
    # CDR alignment is relative to the end of the 4-byte encapsulation header.
    return pos + (-(pos - 4)) % n


def _string(buf: memoryview, pos: int, end: str) -> tuple[str, int]:
    pos = _align(pos, 4)
    (length,) = struct.unpack_from(end + "I", buf, pos)
    pos += 4
    if length == 0 or pos + length > len(buf):
        raise CdrError("string field runs past the end of the message")
    text = bytes(buf[pos : pos + length - 1]).decode("utf-8", errors="replace")
    return text, pos + length


@dataclass(frozen=True)
class ImageView:
    stamp_ns: int
    height: int
    width: int
    encoding: str
    step: int
    data: memoryview
    is_bigendian: bool = False


def parse_image(data: bytes | memoryview) -> ImageView:
    """Parse a serialized sensor_msgs/Image without copying its pixel data."""
    buf = memoryview(data)
    end = _endian(buf)
    try:
        sec, nsec = struct.unpack_from(end + "iI", buf, 4)
        _, pos = _string(buf, 12, end)  # frame_id
        pos = _align(pos, 4)
        height, width = struct.unpack_from(end + "II", buf, pos)
        encoding, pos = _string(buf, pos + 8, end)
        is_bigendian = bool(buf[pos])
        pos += 1
        pos = _align(pos, 4)
        step, length = struct.unpack_from(end + "II", buf, pos)
        pos += 8
    except struct.error:
        raise CdrError("image message truncated") from None
    if pos + length > len(buf):
        raise CdrError(f"image data truncated: {len(buf) - pos} of {length} bytes present")
    return ImageView(sec * 1_000_000_000 + nsec, height, width, encoding, step, buf[pos : pos + length], is_bigendian)
