"""The logger's receive/write split: ShmRing (shared-memory ring) and ProcessEpisodeWriter (the bag written by a child
process). Real processes, real shared memory, real MCAP bags read back with rosbags."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from rosbags.rosbag2 import Reader

from corft_ros.core.episodes import load_episode_metadata, new_episode_dir, read_episode
from corft_ros.core.episodes.ring import ShmRing
from corft_ros.core.episodes.writer_process import ProcessEpisodeWriter

sys.path.insert(0, str(Path(__file__).parent))
from test_episodes import TS, assert_stopped_by_the_guard, fill_to_disk_full, joint_state_cdr, make_meta, record  # noqa: E402


def _wait(cond, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.01)


def test_ring_keeps_order_and_bytes_across_wraps_and_refuses_what_does_not_fit() -> None:
    ring = ShmRing.create(1 << 16)
    reader = ShmRing.attach(ring.name)
    try:
        sent, got = [], []
        for i in range(3000):  # ~20 wraps of the 64 KiB ring, odd sizes so records straddle the end
            payload = bytes([i % 251]) * (1 + (i * 37) % 900)
            while not ring.put(i % 7, i, payload):
                got.extend(reader.take())
            sent.append((i % 7, i, payload))
        got.extend(reader.take())
        assert got == sent
        assert ring.used() == 0
        assert not ring.put(1, 0, b"x" * (1 << 16))  # larger than half the ring: refused, never split
        filler = b"y" * 1000
        n = 0
        while ring.put(2, 0, filler):
            n += 1
        assert 50 < n < 66  # full: the producer is told, the caller counts a drop
        assert len(list(reader.take())) == n
    finally:
        reader.close()
        ring.close()


def test_process_writer_round_trip_every_message_stamp_and_type(tmp_path: Path) -> None:
    fds = len(os.listdir("/proc/self/fd"))
    ep, sent = record(tmp_path, n=400, writer_cls=ProcessEpisodeWriter, img_hw=(480, 640))
    assert len(os.listdir("/proc/self/fd")) <= fds  # the child's pipes are closed with the episode
    got = list(read_episode(ep))
    assert sorted(got, key=lambda m: m[2]) == sorted(sent, key=lambda m: m[2])
    meta = load_episode_metadata(ep)
    assert meta["status"] == "stopped" and meta["success"] is True
    assert meta["topics"]["/joint_states"]["count"] == 400 and meta["dropped_total"] == 0
    with Reader(ep / "bag") as reader:
        assert reader.message_count == len(sent)


def test_process_writer_keeps_the_offered_qos(tmp_path: Path) -> None:
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    qos = Qos(QosHistory.KEEP_LAST, 7, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, QosTime(1, 2),
              QosTime(0, 0), QosLiveliness.AUTOMATIC, QosTime(3, 4), False)
    ep = new_episode_dir(tmp_path, "qos")
    writer = ProcessEpisodeWriter(ep, make_meta(), min_free_bytes=0)
    writer.start()
    writer.add_topic("/joint_states", "sensor_msgs/msg/JointState", [qos])
    assert writer.write("/joint_states", joint_state_cdr(5, 0.1), 5)
    assert writer.stop().status == "stopped"
    with Reader(ep / "bag") as reader:
        (conn,) = reader.connections
        assert conn.ext.offered_qos_profiles == [qos]


def test_process_writer_disk_full_stops_cleanly(tmp_path: Path) -> None:
    assert_stopped_by_the_guard(*fill_to_disk_full(ProcessEpisodeWriter, tmp_path, seconds=60))


_KILLED_RECEIVER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {test_dir!r})
    from test_episodes import joint_state_cdr, make_meta
    from corft_ros.core.episodes.writer_process import ProcessEpisodeWriter
    w = ProcessEpisodeWriter({ep!r}, make_meta(), min_free_bytes=0, flush_interval_s=0.1)
    w.start()
    w.add_topic("/joint_states", "sensor_msgs/msg/JointState")
    for i in range({n}):
        t = 1_000_000_000 + i
        assert w.write("/joint_states", joint_state_cdr(t, i * 1e-3), t)
    print("written", flush=True)
    time.sleep(600)
    """
)


def test_a_killed_receiving_process_loses_nothing_it_received(tmp_path: Path) -> None:
    """SIGKILL the process that received the messages: the writer process still writes everything it was handed
    and closes the bag (status crashed), no repair needed."""
    ep = tmp_path / "20260101-000000_killed"
    n = 2000
    code = _KILLED_RECEIVER.format(test_dir=str(Path(__file__).parent), ep=str(ep), n=n)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    _wait(lambda: (ep / "bag" / "metadata.yaml").exists() and load_episode_metadata(ep)["status"] != "recording",
          60, "the writer process closed the bag")
    meta = load_episode_metadata(ep)
    assert meta["status"] == "crashed" and meta["topics"]["/joint_states"]["count"] == n
    msgs = list(read_episode(ep))
    assert [TS.deserialize_cdr(raw, t).header.stamp.nanosec for _, t, _, raw in msgs] == [
        1_000_000_000 + i - 10**9 for i in range(n)]


def test_a_dead_writer_process_is_reported_never_silent(tmp_path: Path) -> None:
    ep = new_episode_dir(tmp_path, "dead")
    aborted: list[tuple[str, str]] = []
    writer = ProcessEpisodeWriter(ep, make_meta(), min_free_bytes=0, flush_interval_s=0.05,
                                  on_abort=lambda s, e: aborted.append((s, e)))
    writer.start()
    writer.add_topic("/joint_states", "sensor_msgs/msg/JointState")
    for i in range(100):
        assert writer.write("/joint_states", joint_state_cdr(i, 0.0), i)
    _wait(lambda: writer.stats().messages == 100, 30, "100 messages written")
    # ... and flushed to disk (every 0.05 s; on a loaded machine the child's flush can lag the count)
    _wait(lambda: len(list(read_episode(ep))) == 100, 30, "100 messages flushed")
    os.kill(writer._proc.pid, signal.SIGKILL)  # noqa: SLF001
    _wait(lambda: not writer.recording, 30, "the parent noticed")
    assert not writer.write("/joint_states", joint_state_cdr(1, 0.0), 1)
    meta = writer.stop()
    assert meta.status == "write_error" and "writer process" in meta.error
    assert aborted and aborted[0][0] == "write_error"
    assert len(list(read_episode(ep))) == 100  # complete up to its last flushed chunk


def test_process_writer_refuses_a_missing_output_folder_or_too_little_shared_memory_in_one_line(tmp_path: Path) -> None:
    from corft_ros.core.episodes.ring import shm_free_bytes

    with pytest.raises(OSError, match="does not exist"):
        ProcessEpisodeWriter(tmp_path / "nope" / "ep", make_meta(), min_free_bytes=0).start()
    too_much = shm_free_bytes() + (1 << 30)  # a docker container's /dev/shm is 64 MiB by default
    with pytest.raises(OSError, match=r"/dev/shm has .* MiB free: lower queue_max_bytes") as err:
        ProcessEpisodeWriter(tmp_path / "ep", make_meta(), min_free_bytes=0, queue_max_bytes=too_much).start()
    assert "\n" not in str(err.value) and not (tmp_path / "ep").exists()
