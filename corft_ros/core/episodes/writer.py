"""EpisodeWriter: raw CDR bytes in, one rosbag2 MCAP bag out; callbacks only enqueue, a thread writes.

Crash safety: MCAP chunks (1 MiB) are closed at least every `flush_interval_s` and written to the OS, so a
SIGKILLed process leaves a file that is complete up to its last chunk (`repair_episode` then adds the
summary, footer and metadata.yaml). Memory is bounded by `queue_max_bytes`/`queue_max_messages`;
every message that does not fit is counted as dropped for its topic.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rosbags.interfaces import Qos
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin

from corft_ros.core.episodes.diskguard import DiskFullError, check_free
from corft_ros.core.episodes.layout import BAG_DIRNAME, EPISODE_FILENAME
from corft_ros.core.episodes.mcap_writer import StreamingMcapWriter
from corft_ros.core.episodes.metadata import EpisodeMetadata, TopicStats, write_episode_yaml
from corft_ros.core.episodes.typestore import normalize_msgtype, resolve_msgdef

COMPRESSIONS = ("none", "zstd")
# rosbag2 metadata version of our bags. 8 is the newest that Humble's rosbag2 reads: it takes a topic's
# `offered_qos_profiles` as one YAML string, which version 9 (Jazzy's) turned into a list. Jazzy and Kilted read
# version 8 too (rosbag2 decodes by the version in the file). The RIHS01 type hash is still carried: in
# metadata.yaml (`type_description_hash`) and, as rosbag2 since Iron writes it, in each MCAP channel's
# `topic_type_hash` (mcap_writer.py).
BAG_VERSION = 8


class _StreamingWriter(Writer):
    """rosbags' rosbag2 Writer (connections, QoS, metadata.yaml) over our streaming MCAP storage."""

    STORAGE_PLUGINS = {StoragePlugin.MCAP: StreamingMcapWriter}  # type: ignore[dict-item]


def open_bag_writer(bag_dir: Path, compression: str = "none") -> Writer:
    """A new rosbag2 MCAP bag at `bag_dir` (which must not exist), opened: metadata version BAG_VERSION, our
    streaming MCAP storage, zstd chunk compression when asked (storage-level in rosbag2's terms)."""
    writer = _StreamingWriter(bag_dir, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
    if compression == "zstd":
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    writer.open()
    return writer


@dataclass(frozen=True)
class WriterOptions:
    """An episode writer's options, checked: the keyword arguments of EpisodeWriter and ProcessEpisodeWriter, whose
    defaults are these. Sizes become ints, intervals floats, `msg_search_paths` a tuple of Paths."""

    compression: str = "none"
    queue_max_bytes: int = 1 << 30
    queue_max_messages: int = 100_000
    min_free_bytes: int = 1 << 30
    flush_interval_s: float = 0.5
    disk_check_interval_s: float = 0.5
    msg_search_paths: Iterable[str | Path] = ()
    on_abort: Callable[[str, str], None] | None = None
    clock_ns: Callable[[], int] = time.time_ns

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {self.compression!r}")
        if self.queue_max_bytes <= 0 or self.queue_max_messages <= 0:
            raise ValueError("queue_max_bytes and queue_max_messages must be positive")
        for name, kind in (("queue_max_bytes", int), ("queue_max_messages", int), ("min_free_bytes", int),
                           ("flush_interval_s", float), ("disk_check_interval_s", float)):
            object.__setattr__(self, name, kind(getattr(self, name)))
        object.__setattr__(self, "msg_search_paths", tuple(Path(p) for p in self.msg_search_paths))

    def to_json(self) -> dict:
        """The options as JSON values, for a writer process: all but the callables, which stay in this process."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("on_abort", "clock_ns")}
        out["msg_search_paths"] = [str(p) for p in self.msg_search_paths]
        return out


def takes_writer_options(init: Callable[..., None]) -> Callable[..., None]:
    """Show `__init__(self, episode_dir, metadata, **options)` with the keyword arguments it takes: WriterOptions'
    fields and defaults (for inspect.signature and help())."""
    sig = inspect.signature(init)
    params = list(sig.parameters.values())[:-1]  # all but **options
    params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
               for f in fields(WriterOptions)]
    init.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return init


@dataclass
class WriterStats:
    state: str
    messages: int
    bytes: int
    dropped: int
    queue_messages: int
    queue_bytes: int
    chunks_flushed: int
    error: str
    topics: dict[str, TopicStats] = field(default_factory=dict)


@dataclass
class _AddTopic:
    topic: str
    msgtype: str
    msgdef: str
    rihs01: str
    qos: tuple[Qos, ...]


class WriterBase:
    """What EpisodeWriter and ProcessEpisodeWriter share: the episode's folders and metadata, the options used in
    the recording process, and `recording`."""

    def __init__(self, episode_dir: str | Path, metadata: EpisodeMetadata, opts: WriterOptions) -> None:
        self.episode_dir = Path(episode_dir)
        self.bag_dir = self.episode_dir / BAG_DIRNAME
        self.metadata = metadata
        self.metadata.compression = opts.compression
        self._search_paths = list(opts.msg_search_paths)
        self._on_abort = opts.on_abort
        self._clock_ns = opts.clock_ns
        self._accepting = False

    @property
    def recording(self) -> bool:
        return self._accepting


class EpisodeWriter(WriterBase):
    """Record one episode. `start()`, then `add_topic()`/`write()` from any thread, then `stop()`."""

    @takes_writer_options
    def __init__(self, episode_dir: str | Path, metadata: EpisodeMetadata, **options: Any) -> None:
        """Keyword arguments: WriterOptions' fields, with its defaults (ValueError when one is out of range).
        `clock_ns`: the recording's clock (the logger's node clock: sim time under use_sim_time, as
        `ros2 bag record --use-sim-time`), for message log times and the episode's start/stop."""
        opts = WriterOptions(**options)
        super().__init__(episode_dir, metadata, opts)
        self._compression = opts.compression
        self._max_bytes = opts.queue_max_bytes
        self._max_msgs = opts.queue_max_messages
        self._min_free = opts.min_free_bytes
        self._flush_interval = opts.flush_interval_s
        self._disk_interval = opts.disk_check_interval_s

        self._cond = threading.Condition()
        self._queue: deque[tuple[str, int, bytes] | _AddTopic] = deque()
        self._qbytes = 0
        self._stopping = False
        self._waiting = False
        self._state = "idle"
        self._error = ""
        self._stats: dict[str, TopicStats] = {}
        self._chunks_flushed = 0
        self._writer: Writer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Create the episode folder and bag; raise OSError/DiskFullError with a one-line message."""
        root = self.episode_dir.parent
        if not root.is_dir():
            raise FileNotFoundError(f"output folder {root} does not exist")
        check_free(root, self._min_free)
        try:
            self.episode_dir.mkdir()
        except FileExistsError:
            raise FileExistsError(f"episode folder {self.episode_dir} exists already") from None
        except PermissionError:
            raise PermissionError(f"output folder {root} is not writable") from None
        if not self.metadata.start_ns:
            self.metadata.start_ns = self._clock_ns()
        self.metadata.status = "recording"
        write_episode_yaml(self.episode_dir / EPISODE_FILENAME, self.metadata)
        self._writer = open_bag_writer(self.bag_dir, self._compression)
        with self._cond:
            self._accepting = True
            self._state = "recording"
        self._thread = threading.Thread(target=self._run, name="episode-writer", daemon=True)
        self._thread.start()

    def stop(self, status: str = "stopped") -> EpisodeMetadata:
        """Write everything queued, close the bag (footer + metadata.yaml) and episode.yaml; idempotent."""
        with self._cond:
            if self._accepting:
                self._accepting = False
                if self.metadata.stop_ns is None:
                    self.metadata.stop_ns = self._clock_ns()
                if self.metadata.status == "recording":
                    self.metadata.status = status
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        return self.metadata

    # ---------------------------------------------------------------- producers
    def add_topic(self, topic: str, msgtype: str, qos: Sequence[Qos] = ()) -> None:
        """Declare a topic; TypeResolutionError when its message definition is unknown."""
        msgtype = normalize_msgtype(msgtype)
        msgdef, rihs01 = resolve_msgdef(msgtype, self._search_paths)
        with self._cond:
            if topic in self._stats:
                return
            self._stats[topic] = TopicStats(msgtype=msgtype)
            # Control items go through the same queue, so they are ordered before the topic's messages.
            self._queue.append(_AddTopic(topic, msgtype, msgdef, rihs01, tuple(qos)))
            self._cond.notify()

    def has_topic(self, topic: str) -> bool:
        return topic in self._stats

    def write(self, topic: str, data: bytes, t_ns: int | None = None) -> bool:
        """Enqueue one raw CDR message (called from DDS callbacks: O(1), never blocks on I/O)."""
        if t_ns is None:
            t_ns = self._clock_ns()
        n = len(data)
        with self._cond:
            stats = self._stats.get(topic)
            if stats is None or not self._accepting:
                return False
            if self._qbytes + n > self._max_bytes or len(self._queue) >= self._max_msgs:
                stats.dropped += 1
                return False
            self._queue.append((topic, t_ns, data))
            self._qbytes += n
            if self._waiting:  # only wake the writer when it sleeps: a notify per message costs the producer
                self._cond.notify()
        return True

    def count_drop(self, topic: str, n: int = 1) -> None:
        """Count messages lost before reaching the writer (e.g. detected by the caller)."""
        with self._cond:
            if topic in self._stats:
                self._stats[topic].dropped += n

    def stats(self) -> WriterStats:
        with self._cond:
            topics = {k: TopicStats(v.msgtype, v.count, v.dropped, v.bytes) for k, v in self._stats.items()}
            return WriterStats(
                state=self._state,
                messages=sum(t.count for t in topics.values()),
                bytes=sum(t.bytes for t in topics.values()),
                dropped=sum(t.dropped for t in topics.values()),
                queue_messages=len(self._queue),
                queue_bytes=self._qbytes,
                chunks_flushed=self._chunks_flushed,
                error=self._error,
                topics=topics,
            )

    # ---------------------------------------------------------------- writer thread
    def _run(self) -> None:
        writer = self._writer
        assert writer is not None
        connections: dict[str, object] = {}
        last_flush = time.monotonic()
        last_disk = last_flush
        failure: tuple[str, str] | None = None
        while True:
            with self._cond:
                if not self._queue and not self._stopping:
                    self._waiting = True
                    self._cond.wait(self._flush_interval)
                    self._waiting = False
                batch = self._queue
                self._queue = deque()
                stopping = self._stopping
            batch_bytes = sum(len(i[2]) for i in batch if not isinstance(i, _AddTopic))
            try:
                while batch:
                    item = batch.popleft()
                    if isinstance(item, _AddTopic):
                        connections[item.topic] = writer.add_connection(
                            item.topic, item.msgtype, msgdef=item.msgdef, rihs01=item.rihs01,
                            offered_qos_profiles=list(item.qos),
                        )
                        continue
                    topic, t_ns, data = item
                    writer.write(connections[topic], t_ns, data)  # type: ignore[arg-type]
                    stats = self._stats[topic]
                    stats.count += 1
                    stats.bytes += len(data)
                now = time.monotonic()
                if now - last_flush >= self._flush_interval:
                    self._flush_chunk(writer)
                    last_flush = now
                if now - last_disk >= self._disk_interval:
                    last_disk = now
                    check_free(self.bag_dir, self._min_free)
            except DiskFullError as exc:
                failure = ("disk_full", str(exc))
            except OSError as exc:
                failure = ("write_error", f"writing {self.bag_dir} failed: {exc}")
            with self._cond:
                self._qbytes -= batch_bytes
                for item in batch:  # left unwritten by a failure
                    if not isinstance(item, _AddTopic):
                        self._stats[item[0]].dropped += 1
            if failure or stopping:
                break
        self._finish(writer, failure)

    def _flush_chunk(self, writer: Writer) -> None:
        storage = writer.storage
        if storage is not None:
            storage.flush()  # type: ignore[attr-defined]
            self._chunks_flushed = storage.chunks_written  # type: ignore[attr-defined]

    def _finish(self, writer: Writer, failure: tuple[str, str] | None) -> None:
        with self._cond:
            self._accepting = False
            if failure:
                # What is still queued cannot be written safely: count it, never lose it silently.
                for item in self._queue:
                    if not isinstance(item, _AddTopic):
                        self._stats[item[0]].dropped += 1
                self._queue.clear()
                self._qbytes = 0
                self.metadata.status, self.metadata.error = failure
                self._error = failure[1]
                if self.metadata.stop_ns is None:
                    self.metadata.stop_ns = self._clock_ns()
            self.metadata.topics = {
                k: TopicStats(v.msgtype, v.count, v.dropped, v.bytes) for k, v in self._stats.items()
            }
        try:
            for key, value in self.metadata.custom_data().items():
                writer.set_custom_data(key, value)
            writer.close()
        except OSError as exc:
            # Disk really full: the MCAP file stays valid up to its last chunk; `repair` finishes it.
            writer.abort()
            self.metadata.status = "write_error"
            self.metadata.error = self.metadata.error or f"closing {self.bag_dir} failed: {exc}"
            self._error = self.metadata.error
        try:
            write_episode_yaml(self.episode_dir / EPISODE_FILENAME, self.metadata)
        except OSError as exc:
            self._error = self._error or f"writing {self.episode_dir / EPISODE_FILENAME} failed: {exc}"
        with self._cond:
            self._state = self.metadata.status
        if failure and self._on_abort is not None:
            self._on_abort(*failure)
