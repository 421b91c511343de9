"""corft_ros: deploy VLA action-chunk policies on ROS 2 arms and improve them with CO-RFT."""

__version__ = "0.1.0"
