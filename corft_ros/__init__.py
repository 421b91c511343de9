"""corft_ros: deploy VLA action-chunk policies on ROS 2 arms and improve them with CO-RFT."""

import os as _os

__version__ = "0.2.0"

# Headless rendering and offline model loading by default; must be set before mujoco/transformers import.
for _key, _value in (("MUJOCO_GL", "egl"), ("PYOPENGL_PLATFORM", "egl"), ("HF_HUB_OFFLINE", "1"),
                     ("TRANSFORMERS_OFFLINE", "1")):
    _os.environ.setdefault(_key, _value)
