"""Thin rclpy adapters: parameters, QoS, message conversion. Logic lives in corft_ros.core."""
