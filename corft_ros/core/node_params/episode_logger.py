"""The episode_logger node's parameters (the one declaration)."""

from __future__ import annotations

from dataclasses import dataclass

from corft_ros.core.episodes.recording import DEFAULT_OPTIONAL_TOPICS, DEFAULT_TOPIC_TYPES, DEFAULT_TOPICS
from corft_ros.core.params import param


@dataclass
class EpisodeLoggerParams:
    robot_config: str = param("", "robot.yaml path ('' = the package's config/robot.yaml)")
    output_dir: str = param("episodes", "folder holding one sub-folder per episode (relative: to the folder the node "
                            "starts in; created when missing)")
    topics: list = param(list(DEFAULT_TOPICS), "topics to record (missing = reported; '' entries are ignored)",
                         array="string")
    optional_topics: list = param(list(DEFAULT_OPTIONAL_TOPICS), "topics recorded when present", array="string")
    topic_types: list = param(list(DEFAULT_TOPIC_TYPES), "'topic=pkg/msg/Type' (else typed from the graph)",
                              array="string")
    instruction: str = param("", "task instruction (else the last /corft/instruction)")
    operator: str = param("", "operator id (teleop) or policy id (deployment)")
    source: str = param("teleop", "who acts in these episodes: teleop | scripted | policy")
    compression: str = param("none", "MCAP chunk compression", choices=("none", "zstd"))
    min_free_bytes: int = param(1 << 30, "stop recording when free disk space falls below this", min=0)
    queue_max_bytes: int = param(1 << 30, "writer queue bound in bytes (excess is dropped, counted)", min=1)
    queue_max_messages: int = param(100_000, "writer queue bound in messages", min=1)
    flush_interval_s: float = param(0.5, "close+flush an MCAP chunk this often (crash safety)", above=0)
    topic_wait_s: float = param(5.0, "report a topic with no publisher after this long", above=0)
    msg_search_paths: list = param([], "extra share/ folders with <pkg>/msg/*.msg definitions", array="string")
    autostart: bool = param(False, "start an episode as soon as the node is up")
    writer: str = param("thread", "who writes the bag: a thread of this process, or a child process fed through a "
                        "shared-memory ring (the receive path never shares a GIL with MCAP writing)",
                        choices=("thread", "process"))
    sensor_qos: str = param("auto", "camera topics' QoS", choices=("auto", "best_effort", "reliable"))
