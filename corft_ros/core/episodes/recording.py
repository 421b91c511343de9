"""What the episode logger records by default: the topics (names relative, resolved in the logger's namespace),
their types (so they are subscribed before any publisher exists), and which topics are sensor streams."""

from __future__ import annotations

from corft_ros.core import topics

# Recorded and expected: each one missing in an episode is reported. Names are relative (resolved in the node's
# namespace, so a logger under /left records /left/joint_states); bags keep the resolved names and the episode
# metadata the namespace, so readers map them back (core.topics.canonical).
DEFAULT_TOPICS = [
    topics.camera_image("front"),
    topics.camera_image("wrist"),
    topics.JOINT_STATES,
    topics.DIAGNOSTICS,
]
# Recorded whenever they are published; their absence is normal (depends on the setup: sim or real robot,
# teleop source, controller type, policy or teleop).
DEFAULT_OPTIONAL_TOPICS = [
    topics.INSTRUCTION,
    topics.ACTION_CHUNK,
    topics.POLICY_SELECTION,
    topics.INTERVENTION,
    topics.INTERVENTION_COMMAND,
    topics.controller_commands(topics.FORWARD_CONTROLLER),
    topics.controller_trajectory(topics.TRAJECTORY_CONTROLLER),
    topics.TELEOP_COMMAND,
    topics.LEADER_JOINT_STATES,
    topics.JOY,
    topics.SIM_SUCCESS,
    topics.SIM_CUBE_POSE,
    topics.SIM_GOAL_POSE,
]
# Types of the default topics, so they are subscribed before any publisher exists (late publishers'
# first messages are not missed); other topics get their type from the ROS graph.
DEFAULT_TOPIC_TYPES = [
    f"{topics.camera_image('front')}=sensor_msgs/msg/Image",
    f"{topics.camera_image('wrist')}=sensor_msgs/msg/Image",
    f"{topics.JOINT_STATES}=sensor_msgs/msg/JointState",
    f"{topics.ACTION_CHUNK}=trajectory_msgs/msg/JointTrajectory",
    f"{topics.POLICY_SELECTION}=std_msgs/msg/Float64MultiArray",
    f"{topics.INTERVENTION}=std_msgs/msg/Bool",
    f"{topics.INTERVENTION_COMMAND}=sensor_msgs/msg/JointState",
    f"{topics.controller_commands(topics.FORWARD_CONTROLLER)}=std_msgs/msg/Float64MultiArray",
    f"{topics.controller_trajectory(topics.TRAJECTORY_CONTROLLER)}=trajectory_msgs/msg/JointTrajectory",
    f"{topics.INSTRUCTION}=std_msgs/msg/String",
    f"{topics.DIAGNOSTICS}=diagnostic_msgs/msg/DiagnosticArray",
    f"{topics.SIM_SUCCESS}=std_msgs/msg/Bool",
    f"{topics.LEADER_JOINT_STATES}=sensor_msgs/msg/JointState",
    f"{topics.JOY}=sensor_msgs/msg/Joy",
    f"{topics.TELEOP_COMMAND}=sensor_msgs/msg/JointState",
    f"{topics.SIM_CUBE_POSE}=geometry_msgs/msg/PoseStamped",
    f"{topics.SIM_GOAL_POSE}=geometry_msgs/msg/PoseStamped",
]


def is_sensor_topic(topic: str) -> bool:
    return "/camera/" in f"/{topic}" or topic.endswith(("/image_raw", "/compressed", "/image"))
