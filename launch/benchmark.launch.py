"""Benchmark a deployed policy: `ros2 launch corft_ros benchmark.launch.py [model:=models/x] [trials:=20]
[regions:=seen,unseen] [timeout:=30.0] [report:=bench/x] [operator:=true] [sim:=false]`.

Nodes: the deploy graph + benchmark (N trials, report after every trial). Node set, parameters and arguments:
config/benchmark.yaml (the same file `corft-ros launch benchmark` and `corft-ros benchmark` read).
"""

from corft_ros.launching import graph_launch_description


def generate_launch_description():
    return graph_launch_description("benchmark")
