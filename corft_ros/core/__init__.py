"""All logic of corft_ros. Nothing under core/ imports rclpy."""
