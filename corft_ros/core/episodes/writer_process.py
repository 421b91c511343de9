"""ProcessEpisodeWriter: EpisodeWriter's interface with the writing in a child process.

The receive path (the logger's DDS callbacks) only copies each raw message into a shared-memory ring (ShmRing);
a child process (`python -m corft_ros.core.episodes.writer_process`) takes them out and runs an ordinary
EpisodeWriter, so MCAP framing, chunking and disk I/O never hold the receiving process's GIL.

Control (add a topic, stop with the final metadata) travels through the same ring as JSON records, so it stays
ordered with the messages. The child reports on stdout, one JSON object per line: `started`, `stats` (every
0.25 s), `abort` (disk full / write error), `final` (the metadata it wrote). Crash safety: if the receiving process
dies (SIGKILL), the child sees its stdin close, writes everything already in the ring and closes the bag with
status `crashed` — nothing received is lost and no repair is needed. If the child dies, the parent stops
accepting, counts what is queued as dropped and marks the episode `write_error`; the bag is complete up to its
last flushed chunk (`corft-ros bag repair`).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

from corft_ros.core.episodes.metadata import EpisodeMetadata, TopicStats
from corft_ros.core.episodes.ring import CONTROL_RECORD, ShmRing
from corft_ros.core.episodes.typestore import normalize_msgtype, resolve_msgdef
from corft_ros.core.episodes.writer import EpisodeWriter, WriterBase, WriterOptions, WriterStats, takes_writer_options

_START_TIMEOUT_S = 60.0


def qos_to_json(q: Qos) -> list:
    return [q.history.value, q.depth, q.reliability.value, q.durability.value, list(q.deadline), list(q.lifespan),
            q.liveliness.value, list(q.liveliness_lease_duration), bool(q.avoid_ros_namespace_conventions)]


def qos_from_json(v: list) -> Qos:
    return Qos(QosHistory(v[0]), int(v[1]), QosReliability(v[2]), QosDurability(v[3]), QosTime(*v[4]),
               QosTime(*v[5]), QosLiveliness(v[6]), QosTime(*v[7]), bool(v[8]))


class ProcessEpisodeWriter(WriterBase):
    """Record one episode with the writing in a child process. Same use as EpisodeWriter: `start()`, then
    `add_topic()`/`write()` from any thread, then `stop()`."""

    @takes_writer_options
    def __init__(self, episode_dir: str | Path, metadata: EpisodeMetadata, **options: Any) -> None:
        """Keyword arguments: EpisodeWriter's (WriterOptions); the child gets them but for the callables, and its
        own queue only buffers between its ring reader and its bag writer thread. The ring holds queue_max_bytes."""
        opts = WriterOptions(**options)
        super().__init__(episode_dir, metadata, opts)
        self._config = {"episode_dir": str(self.episode_dir), "options": opts.to_json()}
        self._ring_bytes = opts.queue_max_bytes
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}
        self._msgtypes: dict[str, str] = {}
        self._dropped: dict[str, int] = {}  # dropped here (ring full / writer gone), per topic
        self._child: dict = {"topics": {}, "chunks_flushed": 0, "state": "idle", "error": ""}
        self._ring: ShmRing | None = None
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._started = threading.Event()
        self._final: dict | None = None
        self._start_error = ""
        self._stop_sent = False

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the writer process (it creates the episode folder and bag); OSError with its one-line message."""
        if not self.metadata.start_ns:
            self.metadata.start_ns = self._clock_ns()
        self._ring = ShmRing.create(self._ring_bytes)
        config = dict(self._config, ring=self._ring.name, metadata=self.metadata.to_dict())
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "corft_ros.core.episodes.writer_process", json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        self._reader = threading.Thread(target=self._read_child, name="episode-writer-reports", daemon=True)
        self._reader.start()
        if not self._started.wait(_START_TIMEOUT_S) or self._start_error:
            error = self._start_error or f"the writer process did not start within {_START_TIMEOUT_S:.0f} s"
            self._kill_child()
            raise OSError(error)
        with self._lock:
            self._accepting = True

    def stop(self, status: str = "stopped") -> EpisodeMetadata:
        """Send everything queued to the writer, let it close the bag and episode.yaml; idempotent."""
        with self._lock:
            was_accepting, self._accepting = self._accepting, False
            if was_accepting:
                if self.metadata.stop_ns is None:
                    self.metadata.stop_ns = self._clock_ns()
                if self.metadata.status == "recording":
                    self.metadata.status = status
            send, self._stop_sent = not self._stop_sent, True
            meta = self.metadata.to_dict()
            meta["dropped_here"] = dict(self._dropped)
        if send:  # no write can get in now (not accepting): the stop record is the ring's last
            self._put_control({"stop": meta}, wait_s=30.0)
        if self._reader is not None:
            self._reader.join()
        self._close_pipes()
        self._absorb_final()
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        return self.metadata

    # ---------------------------------------------------------------- producers
    def add_topic(self, topic: str, msgtype: str, qos: Sequence[Qos] = ()) -> None:
        msgtype = normalize_msgtype(msgtype)
        resolve_msgdef(msgtype, self._search_paths)  # TypeResolutionError here, in the caller's thread
        with self._lock:
            if topic in self._ids:
                return
            self._ids[topic] = len(self._ids)
            self._msgtypes[topic] = msgtype
            self._dropped[topic] = 0
            self._put_control({"add_topic": [topic, msgtype, [qos_to_json(q) for q in qos], self._ids[topic]]},
                              wait_s=5.0)

    def has_topic(self, topic: str) -> bool:
        return topic in self._ids

    def write(self, topic: str, data: bytes, t_ns: int | None = None) -> bool:
        """Copy one raw CDR message into the ring (called from DDS callbacks: one memcpy, never blocks on I/O)."""
        if t_ns is None:
            t_ns = self._clock_ns()
        with self._lock:
            tid = self._ids.get(topic)
            if tid is None or not self._accepting:
                return False
            if self._ring is None or not self._ring.put(tid, t_ns, data):
                self._dropped[topic] += 1
                return False
        return True

    def count_drop(self, topic: str, n: int = 1) -> None:
        with self._lock:
            if topic in self._dropped:
                self._dropped[topic] += n

    def stats(self) -> WriterStats:
        with self._lock:
            child = self._child
            topics = {}
            for topic, msgtype in self._msgtypes.items():
                count, dropped, nbytes = child["topics"].get(topic, (0, 0, 0))
                topics[topic] = TopicStats(msgtype, count, dropped + self._dropped[topic], nbytes)
            queued = self._ring.used() if self._ring is not None else 0
            return WriterStats(
                state=child["state"], messages=sum(t.count for t in topics.values()),
                bytes=sum(t.bytes for t in topics.values()), dropped=sum(t.dropped for t in topics.values()),
                queue_messages=child.get("queue_messages", 0), queue_bytes=queued + child.get("queue_bytes", 0),
                chunks_flushed=child["chunks_flushed"], error=child["error"], topics=topics,
            )

    # ---------------------------------------------------------------- internals
    def _put_control(self, payload: dict, wait_s: float) -> None:
        data = json.dumps(payload).encode()
        deadline = time.monotonic() + wait_s
        while self._ring is not None and not self._ring.put(CONTROL_RECORD, 0, data):
            if time.monotonic() > deadline or (self._proc is not None and self._proc.poll() is not None):
                return
            time.sleep(0.002)

    def _read_child(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                report = json.loads(line)
            except ValueError:
                continue
            if "started" in report:
                self._started.set()
            elif "error" in report:
                self._start_error = report["error"]
                self._started.set()
            elif "stats" in report:
                with self._lock:
                    self._child = report["stats"]
            elif "abort" in report:
                with self._lock:
                    self._accepting = False
                status, error = report["abort"]
                self.metadata.status, self.metadata.error = status, error
                if self._on_abort is not None:
                    self._on_abort(status, error)
            elif "final" in report:
                self._final = report["final"]
        rc = self._proc.wait()
        self._started.set()
        if self._final is None and self._start_error == "":
            # The writer process died: what it had not written is lost to this bag; say so, never silently.
            with self._lock:
                was_accepting, self._accepting = self._accepting, False
                self.metadata.status = "write_error"
                self.metadata.error = f"the writer process exited ({rc}) before closing the bag"
            if was_accepting and self._on_abort is not None:
                self._on_abort("write_error", self.metadata.error)

    def _absorb_final(self) -> None:
        final = self._final
        if final is None:
            stats = self.stats()
            self.metadata.topics = stats.topics
            return
        status, error = self.metadata.status, self.metadata.error
        self.metadata.__dict__.update(EpisodeMetadata.from_dict(final).__dict__)
        if status not in ("recording", "stopped") and self.metadata.status == "stopped":
            self.metadata.status, self.metadata.error = status, error
        with self._lock:
            self._child = {"topics": {k: (v.count, v.dropped - self._dropped.get(k, 0), v.bytes)
                                      for k, v in self.metadata.topics.items()},
                           "chunks_flushed": self._child.get("chunks_flushed", 0), "state": self.metadata.status,
                           "error": self.metadata.error}

    def _close_pipes(self) -> None:
        """One episode, one child: its pipes are closed with it (a logger records thousands of episodes)."""
        if self._proc is not None:
            for pipe in (self._proc.stdin, self._proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()

    def _kill_child(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=10)
        self._close_pipes()
        if self._ring is not None:
            self._ring.close()
            self._ring = None


# ==================================================================== the writer process
def _child_main(config: dict) -> int:
    """The writer process: run an EpisodeWriter on what the ring brings until stopped, aborted or orphaned; 0 once
    the bag is closed, 1 when it could not start."""
    report = _stdout_reporter()
    ring = ShmRing.attach(config["ring"])
    parent_gone = _watch_parent()
    aborted: list[tuple[str, str]] = []
    writer = EpisodeWriter(
        config["episode_dir"], EpisodeMetadata.from_dict(config["metadata"]), **config["options"],
        on_abort=lambda status, error: (aborted.append((status, error)), report({"abort": [status, error]})),
    )
    try:
        writer.start()
    except (OSError, ValueError) as exc:
        report({"error": str(exc)})
        ring.close()
        return 1
    report({"started": True})
    stop_meta = _drain_ring(ring, writer, aborted, parent_gone, report)
    _close_episode(writer, stop_meta)
    report({"final": writer.metadata.to_dict()})
    ring.close()
    return 0


def _stdout_reporter() -> Callable[[dict], None]:
    """A thread-safe report(obj): one JSON line on stdout, dropped quietly when the parent no longer reads it."""
    out_lock = threading.Lock()

    def report(obj: dict) -> None:
        with out_lock:
            try:
                sys.stdout.write(json.dumps(obj) + "\n")
                sys.stdout.flush()
            except (BrokenPipeError, ValueError):
                pass

    return report


def _watch_parent() -> threading.Event:
    """An event set once the receiving process is gone (it holds our stdin: EOF), watched by a daemon thread."""
    parent_gone = threading.Event()

    def watch_stdin() -> None:  # the receiving process holds our stdin: EOF = it is gone
        try:
            while sys.stdin.read(4096):
                pass
        except (OSError, ValueError):
            pass
        parent_gone.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    return parent_gone


def _send_stats(writer: EpisodeWriter, report: Callable[[dict], None]) -> None:
    """Report the writer's per-topic counts, chunks flushed, state and queue."""
    s = writer.stats()
    report({"stats": {"topics": {k: (v.count, v.dropped, v.bytes) for k, v in s.topics.items()},
                      "chunks_flushed": s.chunks_flushed, "state": s.state, "error": s.error,
                      "queue_messages": s.queue_messages, "queue_bytes": s.queue_bytes}})


def _drain_ring(ring: ShmRing, writer: EpisodeWriter, aborted: list[tuple[str, str]], parent_gone: threading.Event,
                report: Callable[[dict], None]) -> dict | None:
    """Write the ring's messages and act on its control records (stats every 0.25 s) until a stop record, an abort,
    or the parent gone with the ring empty; the stop record's metadata, or None when there was none."""
    topics: dict[int, str] = {}
    last_stats = 0.0
    stop_meta: dict | None = None
    while stop_meta is None:
        got = False
        for kind, t_ns, payload in ring.take():
            got = True
            if kind == CONTROL_RECORD:
                control = json.loads(payload)
                if "add_topic" in control:
                    topic, msgtype, qos, tid = control["add_topic"]
                    topics[tid] = topic
                    writer.add_topic(topic, msgtype, [qos_from_json(q) for q in qos])
                elif "stop" in control:
                    stop_meta = control["stop"]
                    break
                continue
            writer.write(topics[kind], payload, t_ns)
        now = time.monotonic()
        if now - last_stats >= 0.25:
            last_stats = now
            _send_stats(writer, report)
        if aborted:  # the bag is closed (disk full / write error): nothing more can go in
            break
        if stop_meta is None and not got:
            if parent_gone.is_set() and ring.used() == 0:
                break
            time.sleep(0.001)
    return stop_meta


def _close_episode(writer: EpisodeWriter, stop_meta: dict | None) -> None:
    """Stop the writer: with the parent's final metadata and drops when it sent them, else as `crashed`."""
    meta = writer.metadata
    if stop_meta is not None:
        dropped_here = stop_meta.pop("dropped_here", {})
        final = EpisodeMetadata.from_dict(stop_meta)
        for name in ("success", "cycle_time_s", "stop_ns", "extra", "instruction", "operator"):
            setattr(meta, name, getattr(final, name))
        for topic, n in dropped_here.items():
            writer.count_drop(topic, n)
        status = final.status if final.status != "recording" else "stopped"
    else:
        status = "crashed"
        meta.error = meta.error or "the recording process died; everything it had received is in the bag"
    writer.stop(status)


if __name__ == "__main__":
    sys.exit(_child_main(json.loads(sys.argv[1])))
