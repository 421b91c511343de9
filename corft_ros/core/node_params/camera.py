"""The camera node's parameters (the one declaration)."""

from __future__ import annotations

from dataclasses import dataclass

from corft_ros.core.images import COMPRESSED_FORMATS
from corft_ros.core.params import param

TRANSPORTS = ("raw", "compressed", "both")


@dataclass
class CameraParams:
    robot_config: str = param("", "robot.yaml path ('' = bundled)")
    name: str = param("front", "camera name: publishes camera/<name>/image_raw")
    source: str = param("", "V4L2 index or /dev/videoN, video file, rtsp:// URL, or GStreamer pipeline ('' = "
                            "pass-through)")
    input_topic: str = param("", "pass-through: an existing driver's Image topic")
    topic: str = param("", "output topic ('' = camera/<name>/image_raw, relative)")
    transport: str = param("raw", "raw: sensor_msgs/Image on <topic>; compressed: sensor_msgs/CompressedImage on "
                                  "<topic>/compressed; both", choices=TRANSPORTS)
    compressed_format: str = param("jpeg", "compressed transport codec (png: lossless)", choices=COMPRESSED_FORMATS)
    jpeg_quality: int = param(95, "JPEG quality 1-100 (image_transport's default)")
    png_level: int = param(3, "PNG compression level 0-9 (image_transport's default)")
    width: int = param(64, "output width (px); 0 with height 0 = unchanged", min=0)
    height: int = param(64, "output height (px); 0 with width 0 = unchanged", min=0)
    fps: float = param(30.0, "max publish rate; video files play at it (0 = native rate)", min=0)
    loop: bool = param(True, "restart a video file at its end")
    frame_id: str = param("", "header.frame_id ('' = <name>_camera)")
    reconnect_min_s: float = param(0.5, "first reconnect delay (s)", above=0)
    reconnect_max_s: float = param(5.0, "longest reconnect delay (s), doubling", above=0)
