"""What the episode logger records by default: the topics (names relative, resolved in the logger's namespace),
their types (so they are subscribed before any publisher exists), which topics are sensor streams, and the QoS it
reads each topic with."""

from __future__ import annotations

from collections.abc import Callable, Mapping

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


def reader_qos(topic: str, latched: bool, sensor_qos: str, publishers_reliable: Callable[[], bool]) -> str:
    """The QoS the logger reads `topic` with: "latched", "recorded" (reliable), or for a sensor topic "sensor"
    (best effort) or "sensor_reliable", by the `sensor_qos` parameter; `publishers_reliable()` (asked under "auto"
    only): the graph has publishers on `topic` and every one offers reliable."""
    if latched:
        return "latched"
    if not is_sensor_topic(topic):
        return "recorded"
    if sensor_qos == "best_effort":
        return "sensor"
    if sensor_qos == "reliable":
        return "sensor_reliable"
    # auto: a best-effort reader connects to every publisher, but over Fast DDS it loses most large
    # fragmented frames; when every publisher offers reliable, read reliably (as rosbag2 does).
    return "sensor_reliable" if publishers_reliable() else "sensor"


def offered_qos(topic: str, latched: bool) -> str:
    """The QoS (as `reader_qos` names it) a bag records for `topic` when no publisher tells its own."""
    if is_sensor_topic(topic):
        return "sensor"
    return "latched" if latched else "recorded"


def unresolved_types(pending: list[str], graph: Mapping[str, list[str]]) -> list[tuple[str, list[str]]]:
    """(topic, its types in the ROS graph) of each topic in `pending` that the graph now types."""
    return [(topic, graph[topic]) for topic in pending if graph.get(topic)]
