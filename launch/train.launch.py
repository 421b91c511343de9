"""Offline training: `ros2 launch corft_ros train.launch.py bags:=episodes/ [stage:=il|rl|all] [steps:=N]`.

Starts the trainer node (IL, then CO-RFT, then export to models/<name>/; progress on /diagnostics).
Node set, parameters and arguments: config/train.yaml (the same file `corft-ros train` reads).
"""

from corft_ros.launching import graph_launch_description


def generate_launch_description():
    return graph_launch_description("train")
