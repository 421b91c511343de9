"""Image helpers shared by the camera and policy nodes: sensor_msgs/Image encodings → rgb8, resizing, and the
JPEG/PNG payloads of sensor_msgs/CompressedImage (image_transport's `compressed` convention).

No ROS here: nodes pass the message's fields (data, width, height, encoding, step, is_bigendian; data, format).
"""

from __future__ import annotations

import cv2
import numpy as np


class ImageError(ValueError):
    """An image cannot be used (unsupported encoding, truncated data, bad size); the message says which."""


# encoding → (bytes per pixel, how to get RGB)
_BAYER = {
    # ROS names the pattern's first row; OpenCV names the second: rggb in ROS is BayerBG in OpenCV.
    "bayer_rggb8": cv2.COLOR_BayerBG2RGB,
    "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg8": cv2.COLOR_BayerGR2RGB,
    "bayer_grbg8": cv2.COLOR_BayerGB2RGB,
}
_BYTES_PER_PIXEL = {
    "rgb8": 3, "bgr8": 3, "8UC3": 3, "rgba8": 4, "bgra8": 4, "8UC4": 4, "mono8": 1, "8UC1": 1,
    "mono16": 2, "16UC1": 2, "yuv422": 2, "uyvy": 2, "yuv422_yuy2": 2, "yuyv": 2, **dict.fromkeys(_BAYER, 1),
}
SUPPORTED_ENCODINGS = tuple(_BYTES_PER_PIXEL)


def to_rgb8(data: bytes | bytearray | memoryview | np.ndarray, width: int, height: int, encoding: str,
            step: int = 0, is_bigendian: bool = False) -> np.ndarray:
    """Decode a sensor_msgs/Image payload into an [height, width, 3] uint8 RGB array (a copy)."""
    enc = encoding.strip()
    bpp = _BYTES_PER_PIXEL.get(enc)
    if bpp is None:
        raise ImageError(f"unsupported image encoding '{encoding}' (supported: {', '.join(SUPPORTED_ENCODINGS)})")
    if width <= 0 or height <= 0:
        raise ImageError(f"image size {width}x{height} is empty")
    row = width * bpp
    step = step or row
    if step < row:
        raise ImageError(f"image step {step} < width×bytes per pixel {row} for {enc}")
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1).view(np.uint8)
    if buf.size < step * height:
        raise ImageError(f"image data has {buf.size} bytes, {enc} {width}x{height} with step {step} "
                         f"needs {step * height}")
    rows = buf[: step * height].reshape(height, step)[:, :row]
    if enc in ("rgb8",):
        return np.ascontiguousarray(rows.reshape(height, width, 3))
    if enc in ("bgr8", "8UC3"):
        return cv2.cvtColor(rows.reshape(height, width, 3), cv2.COLOR_BGR2RGB)
    if enc == "rgba8":
        return cv2.cvtColor(rows.reshape(height, width, 4), cv2.COLOR_RGBA2RGB)
    if enc in ("bgra8", "8UC4"):
        return cv2.cvtColor(rows.reshape(height, width, 4), cv2.COLOR_BGRA2RGB)
    if enc in ("mono8", "8UC1"):
        return cv2.cvtColor(np.ascontiguousarray(rows), cv2.COLOR_GRAY2RGB)
    if enc in ("mono16", "16UC1"):
        gray16 = np.ascontiguousarray(rows).view(">u2" if is_bigendian else "<u2").reshape(height, width)
        return cv2.cvtColor((gray16 >> 8).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    if enc in ("yuv422", "uyvy"):  # ROS 'yuv422' is UYVY
        return cv2.cvtColor(rows.reshape(height, width, 2), cv2.COLOR_YUV2RGB_UYVY)
    if enc in ("yuv422_yuy2", "yuyv"):
        return cv2.cvtColor(rows.reshape(height, width, 2), cv2.COLOR_YUV2RGB_YUY2)
    return cv2.cvtColor(np.ascontiguousarray(rows), _BAYER[enc])


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an HxWxC image (area averaging when shrinking, bilinear when enlarging); same size → unchanged."""
    if image.ndim != 3:
        raise ImageError(f"expected an HxWxC image, got shape {image.shape}")
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    if height <= 0 or width <= 0:
        raise ImageError(f"cannot resize to {width}x{height}")
    interp = cv2.INTER_AREA if height <= h and width <= w else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp)


def check_rgb8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """An HxWx3 uint8 array, or ImageError naming `name`."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageError(f"{name}: expected an HxWx3 uint8 RGB array, got {arr.dtype} {arr.shape}")
    return arr


# ---------------------------------------------------------------------------------------------------- compressed
COMPRESSED_FORMATS = ("jpeg", "png")
JPEG_QUALITY_RANGE = (1, 100)
PNG_LEVEL_RANGE = (0, 9)


def check_compression(fmt: str, jpeg_quality: int = 95, png_level: int = 3) -> None:
    """ImageError naming the setting when the codec or its level is not one OpenCV takes."""
    if fmt not in COMPRESSED_FORMATS:
        raise ImageError(f"compressed format must be one of {', '.join(COMPRESSED_FORMATS)}, got '{fmt}'")
    lo, hi = JPEG_QUALITY_RANGE
    if not lo <= int(jpeg_quality) <= hi:
        raise ImageError(f"jpeg_quality must be in [{lo}, {hi}], got {jpeg_quality}")
    lo, hi = PNG_LEVEL_RANGE
    if not lo <= int(png_level) <= hi:
        raise ImageError(f"png_level must be in [{lo}, {hi}], got {png_level}")


def encode_compressed(rgb: np.ndarray, fmt: str = "jpeg", jpeg_quality: int = 95, png_level: int = 3
                      ) -> tuple[bytes, str]:
    """An HxWx3 uint8 RGB image → (JPEG or PNG bytes, the CompressedImage `format` string).

    As image_transport's compressed plugin does for an rgb8 image: the colour image is written as BGR (what
    OpenCV's codecs expect) and `format` says so: 'rgb8; jpeg compressed bgr8' / 'rgb8; png compressed bgr8'.
    Any image_transport subscriber (rqt, rviz, republish) decodes it back to rgb8."""
    check_compression(fmt, jpeg_quality, png_level)
    image = check_rgb8(rgb)
    if fmt == "jpeg":
        ext, params = ".jpg", [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    else:
        ext, params = ".png", [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)]
    ok, buf = cv2.imencode(ext, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageError(f"OpenCV could not encode a {image.shape[1]}x{image.shape[0]} image as {fmt}")
    return buf.tobytes(), f"rgb8; {fmt} compressed bgr8"


def decode_compressed(data: bytes | bytearray | memoryview | np.ndarray, fmt: str = "") -> np.ndarray:
    """A CompressedImage payload (JPEG, PNG, or anything else OpenCV decodes) → HxWx3 uint8 RGB.

    `fmt` is the message's `format`, as image_transport writes it ('rgb8; jpeg compressed bgr8',
    'mono8; png compressed ', or the older bare 'jpeg'): OpenCV decodes colour to BGR, so the channels are swapped
    unless the format says the file holds RGB ('compressed rgb8'). Grey images become grey RGB; 16-bit PNGs keep
    their high byte; alpha is dropped. Raises ImageError (one line) for data that does not decode or for a
    compressedDepth (depth map) payload."""
    text = fmt.strip()
    if "compresseddepth" in text.lower().replace(" ", ""):
        raise ImageError(f"format '{text}' is a compressedDepth depth map, not a camera image")
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1).view(np.uint8)
    if buf.size == 0:
        raise ImageError("compressed image has no data")
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ImageError(f"cannot decode {buf.size} bytes of compressed image data"
                         + (f" (format '{text}')" if text else ""))
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageError(f"decoded image has {image.dtype} pixels; expected 8 or 16 bit (format '{text}')")
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[0], image.shape[1]), cv2.COLOR_GRAY2RGB)
    stored_rgb = "compressed rgb" in text
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2RGB if stored_rgb else cv2.COLOR_BGRA2RGB)
    if image.shape[2] != 3:
        raise ImageError(f"decoded image has {image.shape[2]} channels (format '{text}')")
    return np.ascontiguousarray(image) if stored_rgb else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# ---------------------------------------------------------------------------------------------------- capture
def source_kind(source: str) -> str:
    """'device' (V4L2 index or /dev/video*), 'stream' (RTSP/HTTP URL), 'gstreamer' (a pipeline) or 'file'."""
    text = source.strip()
    if not text:
        raise ImageError("camera source is empty")
    if text.isdigit() or text.startswith("/dev/"):
        return "device"
    if "://" in text:
        return "stream"
    if "!" in text:
        return "gstreamer"
    return "file"


def open_capture(source: str, width: int = 0, height: int = 0, fps: float = 0.0) -> cv2.VideoCapture:
    """An opened cv2.VideoCapture for `source` (see source_kind); ImageError when it cannot be opened.

    For devices, width/height/fps are requested from the driver (it may pick the nearest mode it has).
    """
    kind = source_kind(source)
    text = source.strip()
    if kind == "device":
        cap = cv2.VideoCapture(int(text) if text.isdigit() else text, cv2.CAP_V4L2)
        if width > 0 and height > 0:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps > 0:
            cap.set(cv2.CAP_PROP_FPS, fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a queue of old ones
    elif kind == "gstreamer":
        cap = cv2.VideoCapture(text, cv2.CAP_GSTREAMER)
    else:
        cap = cv2.VideoCapture(text, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        hint = " (this OpenCV build has no GStreamer)" if kind == "gstreamer" and not _has_gstreamer() else ""
        raise ImageError(f"cannot open {kind} camera source '{text}'{hint}")
    return cap


def _has_gstreamer() -> bool:
    info = cv2.getBuildInformation()
    for line in info.splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line
    return False


def message_rgb(msg) -> np.ndarray:
    """A sensor_msgs/Image or CompressedImage (no ROS import here: a compressed image is the one with a `format`)
    as HxWx3 RGB: decoded (JPEG/PNG) or converted from its encoding; ImageError when it cannot be."""
    if hasattr(msg, "format"):
        return decode_compressed(msg.data, msg.format)
    return to_rgb8(bytes(msg.data), msg.width, msg.height, msg.encoding, msg.step, bool(msg.is_bigendian))
