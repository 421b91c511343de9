"""Deploy a policy: `ros2 launch corft_ros deploy.launch.py [sim:=false] [model:=models/x] [output:=jtc]
[controller:=scaled_joint_trajectory_controller] [namespace:=left] [cameras:=front] [mode:=open_loop]
[realtime_factor:=0.0]`. `ros2 launch corft_ros deploy.launch.py --show-args` lists every argument.

Nodes: sim_arm (if sim) or camera_front + camera_wrist, policy, executor, episode_logger. Node set, parameters and
arguments: config/deploy.yaml (the same file `corft-ros launch deploy` reads).
"""

from corft_ros.launching import graph_launch_description


def generate_launch_description():
    return graph_launch_description("deploy")
