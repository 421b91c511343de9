"""episode_logger: one rosbag2 (MCAP) bag per episode, from raw serialized messages.

Subscriptions are `raw=True` and their callbacks only enqueue bytes into `EpisodeWriter` (core), whose
thread writes the bag. Services /corft/episode/{start,stop} (Trigger) and /corft/episode/label (SetBool)
drive episodes; /corft/episode/events (String "start"/"stop") tells other nodes.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rosbags.interfaces import Qos
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool, Trigger

from corft_ros.core import topics
from corft_ros.core.episodes import (
    DiskFullError,
    EpisodeMetadata,
    EpisodeWriter,
    TypeResolutionError,
    new_episode_dir,
)
from corft_ros.core.episodes.logbook import (
    LoggerBook,
    create_output_dir,
    label_closed,
    label_running,
    output_dir_problem,
    stop_report,
)
from corft_ros.core.episodes.recording import is_sensor_topic, offered_qos, reader_qos, unresolved_types
from corft_ros.core.episodes.status import WriteRate, logger_diagnostics
from corft_ros.core.episodes.typestore import normalize_msgtype
from corft_ros.core.episodes.writer_process import ProcessEpisodeWriter
from corft_ros.core.memory import keep_large_buffers
from corft_ros.core.node_params.episode_logger import (
    EpisodeLoggerParams,
    configured_types,
    recorded_topics,
    writer_options,
)
from corft_ros.core.robot import ConfigError, load_robot_config
from corft_ros.nodes._bagtypes import default_msg_search_paths, message_class, to_rosbags_qos
from corft_ros.nodes.common import declare_params, diagnostic_status, run_node
from corft_ros.nodes.qos import LATCHED, RECORDED, SENSOR_RELIABLE

_LEVELS = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN}
_QOS = {"latched": LATCHED, "recorded": RECORDED, "sensor": qos_profile_sensor_data, "sensor_reliable": SENSOR_RELIABLE}


class EpisodeLoggerNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("episode_logger", **kwargs)
        # Frames arrive as fresh 921 kB buffers: let this process reuse them instead of page-faulting each one in
        # (core/memory.py; measured: the receiving thread's CPU per frame falls ~8x).
        keep_large_buffers()
        p = self.params = declare_params(self, EpisodeLoggerParams)
        self._read_params(p)
        self._resolve_topics(p)
        self._create_output_dir()
        err = output_dir_problem(self.output_dir)
        if err:
            raise ConfigError(f"output_dir: {err}")
        self.robot = load_robot_config(p.robot_config or None)
        self.msg_search_paths = [Path(x) for x in p.msg_search_paths if x] + default_msg_search_paths()
        self._init_state()
        self._sub_group = ReentrantCallbackGroup()
        self._srv_group = MutuallyExclusiveCallbackGroup()
        self._make_publishers()
        self._make_services()
        self._make_subscriptions()
        self.create_timer(1.0, self._tick, callback_group=self._srv_group)
        if self.autostart:
            ok, message = self.start_episode()
            if not ok:
                self.get_logger().error(message)

    def _read_params(self, p: EpisodeLoggerParams) -> None:
        """The settings from the parameters (topic names as given; _resolve_topics resolves them)."""
        self.output_dir = Path(p.output_dir).expanduser()
        self.required_topics, self.topics = recorded_topics(p)
        self.instruction, self.operator, self.source = p.instruction, p.operator, p.source
        self.topic_wait_s = p.topic_wait_s
        self.autostart, self.sensor_qos = p.autostart, p.sensor_qos
        self._writer_cls = ProcessEpisodeWriter if p.writer == "process" else EpisodeWriter

    def _resolve_topics(self, p: EpisodeLoggerParams) -> None:
        """Every name as this node resolves it (relative names land in its namespace); bags record these."""
        self.required_topics = [self._resolve(t, "topics") for t in self.required_topics]
        self.topics = list(dict.fromkeys(self._resolve(t, "optional_topics") for t in self.topics))
        self.instruction_topic = self._resolve(topics.INSTRUCTION, "instruction topic")
        self.intervention_topic = self._resolve(topics.INTERVENTION, "intervention topic")
        # latched topics: their last message is written at the start of every episode (the state it starts in)
        self.latched_topics = {self.instruction_topic, self.intervention_topic}
        self.configured_types = configured_types(p, lambda topic: self._resolve(topic, "topic_types"))

    def _init_state(self) -> None:
        """The writer, subscription and episode state the callbacks share (under self._lock)."""
        self._lock = threading.RLock()
        self._writer: EpisodeWriter | ProcessEpisodeWriter | None = None
        self._subscribed: dict[str, str] = {}  # topic -> msgtype
        self._subs: dict[str, tuple] = {}  # topic -> (subscription, message class, QoS)
        self._failed_types: dict[str, str] = {}  # topic -> error already reported
        self._book = LoggerBook()  # latched messages, takeovers, missing topics, start times, the last episode
        self._latest_instruction = ""
        self._errors = 0
        self._write_rate = WriteRate(time.monotonic())

    def _make_publishers(self) -> None:
        """The episode events (latched: the episode's state) and /diagnostics."""
        self.events_pub = self.create_publisher(String, topics.EPISODE_EVENTS, LATCHED)  # the episode's state
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)

    def _make_services(self) -> None:
        """The episode start, stop and label services."""
        self.create_service(Trigger, topics.EPISODE_START, self._on_start, callback_group=self._srv_group)
        self.create_service(Trigger, topics.EPISODE_STOP, self._on_stop, callback_group=self._srv_group)
        self.create_service(SetBool, topics.EPISODE_LABEL, self._on_label, callback_group=self._srv_group)

    def _make_subscriptions(self) -> None:
        """The instruction and intervention state, the topics of configured type, then those the graph resolves."""
        self.create_subscription(String, self.instruction_topic, self._on_instruction, LATCHED,
                                 callback_group=self._srv_group)
        self.create_subscription(Bool, self.intervention_topic, self._on_intervention, LATCHED,
                                 callback_group=self._srv_group)
        for topic in self.topics:
            if topic in self.configured_types:
                self._subscribe(topic, self.configured_types[topic])
        self._resolve_from_graph()

    # ------------------------------------------------------------------ helpers
    def _clock_ns(self) -> int:
        """Log times on the node clock: sim time under use_sim_time (a sim at any realtime_factor), wall time on
        a robot. Before the first /clock message ROS time reads 0: fall back to wall time then."""
        ns = self.get_clock().now().nanoseconds
        return ns if ns > 0 else time.time_ns()

    def _resolve(self, topic: str, what: str) -> str:
        try:
            return self.resolve_topic_name(topic)
        except Exception as exc:  # rclpy raises its own InvalidTopicNameException family
            raise ConfigError(f"{what}: '{topic}' is not a valid topic name ({exc})") from None

    def _create_output_dir(self) -> None:
        """At startup a missing output folder is created (core/episodes/logbook.py says why and when not)."""
        try:
            created = create_output_dir(self.output_dir)
        except OSError as exc:
            raise ConfigError(f"output_dir: cannot create output folder {self.output_dir}: "
                              f"{exc.strerror or exc}") from None
        if created:
            self.get_logger().info(f"created output folder {self.output_dir.resolve()}")

    def _on_intervention(self, msg: Bool) -> None:
        """The executor's takeover state: its changes during an episode become the episode's intervention segments."""
        with self._lock:
            self._book.intervention(bool(msg.data), self._clock_ns() * 1e-9, self._writer is not None)

    def _publish_event(self, event: str) -> None:
        if self.context.ok():  # on Ctrl-C the context is already shut down when close() stops the episode
            self.events_pub.publish(String(data=event))

    def _error(self, message: str) -> None:
        self._errors += 1
        self.get_logger().error(message)

    def _publisher_infos(self, topic: str) -> list:
        try:
            return self.get_publishers_info_by_topic(topic)
        except Exception:
            return []

    def _qos_for(self, topic: str) -> QoSProfile:
        def publishers_reliable() -> bool:
            infos = self._publisher_infos(topic)
            return bool(infos) and all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)

        return _QOS[reader_qos(topic, topic in self.latched_topics, self.sensor_qos, publishers_reliable)]

    def _subscribe(self, topic: str, msgtype: str) -> None:
        try:
            cls = message_class(msgtype)
            msgtype = normalize_msgtype(msgtype)
        except TypeResolutionError as exc:
            self._type_failed(topic, exc)
            return
        qos = self._qos_for(topic)
        # The default argument binds the topic; the callback is as small as it can be (one enqueue).
        callback = self._enqueue_latched if qos.durability == DurabilityPolicy.TRANSIENT_LOCAL else self._enqueue
        sub = self.create_subscription(
            cls, topic, lambda data, t=topic: callback(t, data), qos, raw=True, callback_group=self._sub_group
        )
        with self._lock:
            old = self._subs.pop(topic, None)
            self._subs[topic] = (sub, cls, qos)
            self._subscribed[topic] = msgtype
            writer = self._writer
        if old is not None:
            self.destroy_subscription(old[0])
        if writer is not None:
            self._add_to_writer(writer, topic, msgtype)

    def _adapt_sensor_qos(self) -> None:
        """Re-subscribe sensor topics whose publishers' QoS calls for another reader QoS (usually as they appear)."""
        for topic, (_sub, _cls, qos) in list(self._subs.items()):
            if is_sensor_topic(topic) and self._qos_for(topic).reliability != qos.reliability:
                self._subscribe(topic, self._subscribed[topic])

    def _enqueue(self, topic: str, data: bytes) -> None:
        writer = self._writer
        if writer is not None:
            writer.write(topic, data)

    def _enqueue_latched(self, topic: str, data: bytes) -> None:
        # Transient-local topics deliver their last message once, at subscription: kept for the next episode, under
        # the lock, so an episode starting at the same moment writes it exactly once (LoggerBook.keep_latched).
        with self._lock:
            repeat = self._book.keep_latched(topic, data)
            writer = self._writer
        if writer is not None and not repeat:
            writer.write(topic, data)

    def _offered_qos(self, topic: str) -> list[Qos]:
        infos = self._publisher_infos(topic)
        if infos:
            return [to_rosbags_qos(infos[0].qos_profile)]
        return [to_rosbags_qos(_QOS[offered_qos(topic, topic in self.latched_topics)])]

    def _add_to_writer(self, writer: EpisodeWriter | ProcessEpisodeWriter, topic: str, msgtype: str) -> None:
        try:
            writer.add_topic(topic, msgtype, self._offered_qos(topic))
        except TypeResolutionError as exc:
            self._type_failed(topic, exc)

    def _type_failed(self, topic: str, exc: TypeResolutionError) -> None:
        """Report a topic whose type does not resolve (once per distinct error)."""
        if self._failed_types.get(topic) != str(exc):
            self._failed_types[topic] = str(exc)
            self._error(f"topic {topic}: {exc}; not recorded, the other topics are")

    def _resolve_from_graph(self) -> None:
        pending = [t for t in self.topics if t not in self._subscribed]
        if not pending:
            return
        for topic, types in unresolved_types(pending, dict(self.get_topic_names_and_types())):
            if len(types) > 1 and self._failed_types.get(topic) != "multi":
                self._failed_types[topic] = "multi"
                self._error(f"topic {topic} has several types ({', '.join(types)}); recording {types[0]}")
            self._subscribe(topic, types[0])

    def _on_instruction(self, msg: String) -> None:
        self._latest_instruction = msg.data

    # ------------------------------------------------------------------ episodes
    def start_episode(self) -> tuple[bool, str]:
        with self._lock:
            if self._writer is not None:
                return False, f"already recording episode {self._writer.episode_dir.name}; stop it first"
            problem = output_dir_problem(self.output_dir)
            if problem:
                return False, problem
            self._adapt_sensor_qos()
            instruction = self.instruction or self._latest_instruction
            ep = new_episode_dir(self.output_dir, instruction or "episode")
            meta = EpisodeMetadata(episode_id=ep.name, instruction=instruction, operator=self.operator,
                                   source=self.source, robot=self.robot.name, joint_names=self.robot.joint_names,
                                   namespace=self.get_namespace())
            writer = self._writer_cls(ep, meta, **writer_options(self.params), msg_search_paths=self.msg_search_paths,
                                      on_abort=self._on_writer_abort, clock_ns=self._clock_ns)
            problem = self._book.begin(writer, self._subscribed, self._add_to_writer,
                                       lambda: self._clock_ns() * 1e-9, time.monotonic)
            if problem is not None:
                return False, problem
            self._writer = writer
        self._publish_event("start")
        self.get_logger().info(f"recording episode {ep}")
        return True, str(ep)

    def stop_episode(self) -> tuple[bool, str]:
        with self._lock:
            writer, self._writer = self._writer, None
            if writer is None:
                return False, "not recording: no episode to stop"
        self._check_missing(writer)
        with self._lock:
            self._book.finish(writer.metadata.extra, self._clock_ns() * 1e-9)
        meta = writer.stop()
        self._book.last_episode = writer.episode_dir
        self._publish_event("stop")
        ok, summary, problem = stop_report(writer.episode_dir, meta)
        if problem:
            self._error(problem)
        self.get_logger().info(summary)
        return ok, summary

    @property
    def current_episode(self) -> Path | None:
        writer = self._writer
        return None if writer is None else writer.episode_dir

    @property
    def last_episode(self) -> Path | None:
        return self._book.last_episode

    def writer_stats(self):
        writer = self._writer
        return None if writer is None else writer.stats()

    def label_episode(self, success: bool, cycle_time_s: float | None = None) -> tuple[bool, str]:
        """Label the running episode (success also sets the cycle time: start to now), else the last one."""
        with self._lock:
            writer = self._writer
            if writer is not None:
                cycle = cycle_time_s if cycle_time_s is not None else time.monotonic() - self._book.start_mono
                return label_running(writer.metadata, writer.episode_dir.name, success, cycle)
            last = self._book.last_episode
        return label_closed(last, success, cycle_time_s)

    def _on_writer_abort(self, status: str, error: str) -> None:
        # Called from the writer thread after the bag was closed (disk full / write error).
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            self._book.last_episode = writer.episode_dir
        self._error(f"recording stopped: {error}")
        self._publish_event("stop")

    def _on_start(self, _request, response):
        return self._answer(response, self.start_episode(), "start")

    def _on_stop(self, _request, response):
        return self._answer(response, self.stop_episode(), "stop", lambda message: message.startswith("not recording"))

    def _on_label(self, request, response):
        return self._answer(response, self.label_episode(bool(request.data)), "label")

    def _answer(self, response, result: tuple[bool, str], what: str, refused=lambda _message: True):
        """The service's reply; a failure that `refused(message)` counts is reported as an error."""
        response.success, response.message = result
        if not response.success and refused(response.message):
            self._error(f"{what} refused: {response.message}")
        return response

    # ------------------------------------------------------------------ periodic
    def _tick(self) -> None:
        self._resolve_from_graph()
        self._adapt_sensor_qos()
        writer = self._writer
        if writer is not None and time.monotonic() - self._book.start_mono >= self.topic_wait_s:
            self._check_missing(writer)
        self._publish_diagnostics()

    def _check_missing(self, writer: EpisodeWriter | ProcessEpisodeWriter) -> None:
        """Report (once per episode) each configured topic that has no publisher and nothing recorded."""
        for topic in self._book.newly_missing(self.required_topics, writer.stats().topics, self._failed_types,
                                              self.count_publishers):
            self._error(f"topic {topic}: no publisher in this episode; recording the other topics")

    def _publish_diagnostics(self) -> None:
        writer = self._writer
        stats = writer.stats() if writer is not None else None
        level, message, values = logger_diagnostics(
            stats, writer.episode_dir.name if writer is not None else "", self._errors, self.output_dir,
            self._write_rate, time.monotonic(), self._book.missing_reported, self.topics, self._subscribed)
        array = DiagnosticArray(status=[diagnostic_status("corft_ros: episode_logger", self.robot.name,
                                                          _LEVELS[level], message, values)])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)

    def close(self) -> None:
        """Finish a running episode (on shutdown nothing queued is lost)."""
        if self._writer is not None:
            self.stop_episode()


def main(args: list[str] | None = None) -> int:
    # One thread: rclpy's MultiThreadedExecutor costs more per callback than the callbacks themselves and,
    # measured on 2 cores, loses /joint_states at 500 Hz next to two cameras; the single-threaded ones do not.
    return run_node(lambda: EpisodeLoggerNode(), args, threads=1, errors=(DiskFullError,))


if __name__ == "__main__":
    sys.exit(main())
