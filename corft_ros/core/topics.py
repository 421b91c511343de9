"""Every topic and service name corft_ros uses, in one place.

Names are **relative** (no leading slash), so they resolve inside the node's namespace: two arms run side by side
as `ros2 launch corft_ros deploy.launch.py namespace:=left` and `namespace:=right`, each graph on its own
`/left/joint_states`, `/left/corft/action_chunk`, ... Without a namespace they resolve to the usual absolute
names (`/joint_states`). Two names stay absolute by ROS convention: `/clock` (rclpy's time source listens there)
and `/diagnostics` (what diagnostic_aggregator and rqt_robot_monitor read; statuses carry the node's name).
"""

from __future__ import annotations

CLOCK = "/clock"
DIAGNOSTICS = "/diagnostics"

JOINT_STATES = "joint_states"
ACTION_CHUNK = "corft/action_chunk"
POLICY_SELECTION = "corft/policy/selection"
INTERVENTION = "corft/intervention"  # std_msgs/Bool, latched: whether an operator holds the arm (the executor's state)
INTERVENTION_COMMAND = "corft/intervention/command"  # sensor_msgs/JointState: a takeover source's targets
INSTRUCTION = "corft/instruction"
ESTOP = "corft/estop"
EPISODE_START = "corft/episode/start"
EPISODE_STOP = "corft/episode/stop"
EPISODE_LABEL = "corft/episode/label"
EPISODE_EVENTS = "corft/episode/events"
TELEOP_COMMAND = "corft/teleop/command"
LEADER_JOINT_STATES = "leader/joint_states"
JOY = "joy"

SIM_RESET = "sim/reset"
SIM_SUCCESS = "sim/success"
SIM_CUBE_POSE = "sim/cube_pose"
SIM_GOAL_POSE = "sim/goal_pose"

CAMERA_IMAGE_FORMAT = "camera/{name}/image_raw"
# image_transport's convention: the compressed stream of `<base>` is `<base>/compressed`
COMPRESSED_SUFFIX = "/compressed"

FORWARD_CONTROLLER = "forward_position_controller"
TRAJECTORY_CONTROLLER = "arm_controller"


def camera_image(name: str) -> str:
    return CAMERA_IMAGE_FORMAT.format(name=name)


def compressed(topic: str) -> str:
    return topic.rstrip("/") + COMPRESSED_SUFFIX


def controller_commands(controller: str) -> str:
    """forward_command_controller's input: std_msgs/Float64MultiArray in its `joints` order."""
    return f"{controller.strip('/')}/commands"


def controller_trajectory(controller: str) -> str:
    """joint_trajectory_controller's input: trajectory_msgs/JointTrajectory."""
    return f"{controller.strip('/')}/joint_trajectory"


def canonical(topic: str, namespace: str = "") -> str:
    """The absolute name a topic has without a namespace: '/left/joint_states' in namespace '/left' -> '/joint_states'.

    Bags record the resolved names (what `ros2 bag record` would); readers map them back with this, so episodes
    of a namespaced arm train like any other."""
    namespace = "/" + namespace.strip("/") if namespace.strip("/") else ""
    if namespace and (topic == namespace or topic.startswith(namespace + "/")):
        topic = topic[len(namespace):] or "/"
    return topic if topic.startswith("/") else "/" + topic
