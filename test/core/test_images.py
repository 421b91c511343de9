"""JPEG/PNG payloads of sensor_msgs/CompressedImage (core/images.py): round trips and image_transport's formats."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from corft_ros.core.images import ImageError, check_compression, decode_compressed, encode_compressed


def smooth_scene(height: int = 48, width: int = 64) -> np.ndarray:
    """A camera-like RGB frame: gradients and a coloured block (JPEG's error on pure noise says little)."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // (width - 1), y * 255 // (height - 1), np.full_like(x, 90)], axis=-1).astype(np.uint8)
    rgb[10:30, 20:40] = (230, 30, 40)
    return rgb


def test_png_round_trip_is_exact_and_says_it_holds_bgr():
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    for level in (0, 3, 9):
        data, fmt = encode_compressed(rgb, "png", png_level=level)
        assert fmt == "rgb8; png compressed bgr8"  # what image_transport's compressed plugin writes
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        np.testing.assert_array_equal(decode_compressed(data, fmt), rgb)
    # the file really holds BGR, as every image_transport subscriber expects
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(bgr[..., ::-1], rgb)


def test_jpeg_round_trip_is_close_and_quality_trades_size_for_error():
    rgb = smooth_scene()
    sizes, errors = [], []
    for quality, tolerance in ((50, 8.0), (95, 2.5)):
        data, fmt = encode_compressed(rgb, "jpeg", jpeg_quality=quality)
        assert fmt == "rgb8; jpeg compressed bgr8" and data[:2] == b"\xff\xd8"
        out = decode_compressed(data, fmt)
        assert out.shape == rgb.shape and out.dtype == np.uint8
        error = np.abs(out.astype(int) - rgb.astype(int))
        sizes.append(len(data))
        errors.append(error.mean())
        assert error.mean() < tolerance, f"quality {quality}: mean |error| {error.mean():.2f}"
    assert out[20, 30].tolist() == pytest.approx([230, 30, 40], abs=12)  # channel order kept: red stays red
    assert sizes[0] < sizes[1] and errors[0] > errors[1]


def test_formats_other_publishers_write():
    rgb = smooth_scene()
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    png_of_bgr = cv2.imencode(".png", bgr)[1].tobytes()
    # a bgr8 camera through image_transport, and the older bare format: the payload holds BGR
    for fmt in ("bgr8; png compressed bgr8", "png", ""):
        np.testing.assert_array_equal(decode_compressed(png_of_bgr, fmt), rgb)
    # a publisher that wrote RGB into the file and says so
    png_of_rgb = cv2.imencode(".png", rgb)[1].tobytes()
    np.testing.assert_array_equal(decode_compressed(png_of_rgb, "rgb8; png compressed rgb8"), rgb)
    # mono8 (image_transport writes 'mono8; png compressed '): grey RGB
    gray = rgb[..., 1].copy()
    out = decode_compressed(cv2.imencode(".png", gray)[1].tobytes(), "mono8; png compressed ")
    assert out.shape == (48, 64, 3) and all(np.array_equal(out[..., c], gray) for c in range(3))
    # 16 bit: the high byte; alpha dropped
    bgr16 = bgr.astype(np.uint16) << 8
    np.testing.assert_array_equal(decode_compressed(cv2.imencode(".png", bgr16)[1], "rgb16; png compressed bgr16"),
                                  rgb)
    bgra = np.concatenate([bgr, np.full((48, 64, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(decode_compressed(cv2.imencode(".png", bgra)[1].tobytes(), "bgra8; png compressed "
                                                    "bgra8"), rgb)


def test_bad_data_and_settings_are_one_line_errors():
    data, fmt = encode_compressed(smooth_scene(), "jpeg")
    with pytest.raises(ImageError, match=r"cannot decode 7 bytes of compressed image data \(format 'rgb8; jpeg"):
        decode_compressed(b"garbage", fmt)
    with pytest.raises(ImageError, match="cannot decode"):
        decode_compressed(data[: len(data) // 3], fmt)  # truncated
    with pytest.raises(ImageError, match="no data"):
        decode_compressed(b"", fmt)
    with pytest.raises(ImageError, match="compressedDepth"):
        decode_compressed(data, "16UC1; compressedDepth png")
    with pytest.raises(ImageError, match="compressed format must be one of jpeg, png, got 'webp'"):
        encode_compressed(smooth_scene(), "webp")
    with pytest.raises(ImageError, match=r"jpeg_quality must be in \[1, 100\], got 0"):
        check_compression("jpeg", jpeg_quality=0)
    with pytest.raises(ImageError, match=r"png_level must be in \[0, 9\], got 10"):
        check_compression("png", png_level=10)
    with pytest.raises(ImageError, match="HxWx3 uint8"):
        encode_compressed(np.zeros((4, 4), np.uint8), "png")
