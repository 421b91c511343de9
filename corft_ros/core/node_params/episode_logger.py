"""The episode_logger node's parameters (the one declaration)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from corft_ros.core.episodes.recording import DEFAULT_OPTIONAL_TOPICS, DEFAULT_TOPIC_TYPES, DEFAULT_TOPICS
from corft_ros.core.params import param
from corft_ros.core.robot import ConfigError


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


def recorded_topics(p: EpisodeLoggerParams) -> tuple[list[str], list[str]]:
    """(required, all) topic names as given: the required ones, then every recorded one once (required first).
    Empty strings are ignored: [""] is how a launch file or override says "none"."""
    required = [t for t in p.topics if t]
    optional = [t for t in p.optional_topics if t]
    return required, list(dict.fromkeys(required + optional))


def writer_options(p: EpisodeLoggerParams) -> dict:
    """The episode writer's keyword arguments from the parameters: compression, queue bounds, disk guard, flushes."""
    return dict(compression=p.compression, queue_max_bytes=int(p.queue_max_bytes),
                queue_max_messages=int(p.queue_max_messages), min_free_bytes=int(p.min_free_bytes),
                flush_interval_s=float(p.flush_interval_s))


def configured_types(p: EpisodeLoggerParams, resolve: Callable[[str], str]) -> dict[str, str]:
    """`topic_types` as {resolved topic: type}; an entry that is not 'topic=pkg/msg/Type' is a ConfigError."""
    out: dict[str, str] = {}
    for entry in list(p.topic_types):
        topic, sep, msgtype = entry.partition("=")
        if not sep or not topic.strip() or msgtype.count("/") not in (1, 2):
            raise ConfigError(f"topic_types: '{entry}' is not 'topic=pkg/msg/Type'")
        out[resolve(topic.strip())] = msgtype.strip()
    return out
