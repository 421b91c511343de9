"""The embedded sim arm alone: `ros2 launch corft_ros sim.launch.py [realtime_factor:=0.0] [region:=unseen]`.

Node set, parameters and arguments: config/sim.yaml (the same file `corft-ros` reads).
"""

from corft_ros.launching import graph_launch_description


def generate_launch_description():
    return graph_launch_description("sim")
