"""Record demonstrations: `ros2 launch corft_ros record.launch.py [sim:=false source:=leader] [task:="..."]`.

Nodes: sim_arm (if sim), teleop, episode_logger. Node set, parameters and arguments: config/record.yaml
(the same file `corft-ros record` reads). Episodes are started, stopped and labelled through
/corft/episode/{start,stop} (std_srvs/Trigger) and /corft/episode/label (std_srvs/SetBool).
"""

from corft_ros.launching import graph_launch_description


def generate_launch_description():
    return graph_launch_description("record")
