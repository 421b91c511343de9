"""Episode core (no ROS): bag round trip, metadata, crash recovery and repair, disk guard, listing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from corft_ros.core.episodes import (
    DiskFullError,
    EpisodeMetadata,
    EpisodeWriter,
    TypeResolutionError,
    episode_info,
    free_bytes,
    list_episodes,
    load_episode_metadata,
    new_episode_dir,
    read_episode,
    repair_episode,
    slugify,
)
from corft_ros.core.episodes.reader import bag_is_intact

TS = get_typestore(Stores.ROS2_KILTED)
Header = TS.types["std_msgs/msg/Header"]
Time = TS.types["builtin_interfaces/msg/Time"]
String = TS.types["std_msgs/msg/String"]
JointState = TS.types["sensor_msgs/msg/JointState"]
Image = TS.types["sensor_msgs/msg/Image"]


def _header(t_ns: int) -> object:
    return Header(stamp=Time(sec=t_ns // 10**9, nanosec=t_ns % 10**9), frame_id="base")


def joint_state_cdr(t_ns: int, q: float) -> bytes:
    msg = JointState(
        header=_header(t_ns), name=["a", "b"], position=np.array([q, -q]),
        velocity=np.zeros(2), effort=np.zeros(0),
    )
    return bytes(TS.serialize_cdr(msg, "sensor_msgs/msg/JointState"))


def image_cdr(t_ns: int, h: int = 24, w: int = 32, value: int = 7) -> bytes:
    data = np.full(h * w * 3, value % 256, dtype=np.uint8)
    msg = Image(header=_header(t_ns), height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3, data=data)
    return bytes(TS.serialize_cdr(msg, "sensor_msgs/msg/Image"))


def string_cdr(text: str) -> bytes:
    return bytes(TS.serialize_cdr(String(data=text), "std_msgs/msg/String"))


def bag_custom(ep: Path) -> dict[str, str]:
    return yaml.safe_load((ep / "bag" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]["custom_data"]


def make_meta(**kw) -> EpisodeMetadata:
    base = dict(episode_id="ep", instruction="put the cube on the goal", operator="alice", robot="ur5e",
                joint_names=["a", "b"])
    base.update(kw)
    return EpisodeMetadata(**base)


def record(
    root: Path, n: int = 50, compression: str = "none", label: str = "pick", img_hw: tuple[int, int] = (24, 32),
    writer_cls: type = EpisodeWriter, **kw
) -> tuple[Path, list]:
    ep = new_episode_dir(root, label)
    writer = writer_cls(ep, make_meta(episode_id=ep.name), compression=compression, min_free_bytes=0, **kw)
    writer.start()
    writer.add_topic("/joint_states", "sensor_msgs/msg/JointState")
    writer.add_topic("/camera/front/image_raw", "sensor_msgs/msg/Image")
    writer.add_topic("/corft/instruction", "std_msgs/msg/String")
    sent = []
    t0 = time.time_ns()
    item = ("/corft/instruction", "std_msgs/msg/String", t0, string_cdr("put the cube on the goal"))
    sent.append(item)
    assert writer.write(item[0], item[3], item[2])
    for i in range(n):
        t = t0 + (i + 1) * 1_000_000
        item = ("/joint_states", "sensor_msgs/msg/JointState", t, joint_state_cdr(t, i * 0.01))
        sent.append(item)
        assert writer.write(item[0], item[3], item[2])
        if i % 5 == 0:
            item = ("/camera/front/image_raw", "sensor_msgs/msg/Image", t + 1, image_cdr(t + 1, *img_hw, value=i))
            sent.append(item)
            assert writer.write(item[0], item[3], item[2])
    writer.metadata.success = True
    meta = writer.stop()
    assert meta.status == "stopped"
    return ep, sent


def test_slug_and_layout(tmp_path: Path) -> None:
    assert slugify("Put the RED cube on the goal!") == "put-the-red-cube-on-the-goal"
    assert slugify("***") == "episode"
    a = new_episode_dir(tmp_path, "pick cube", stamp_s=0)
    a.mkdir()
    b = new_episode_dir(tmp_path, "pick cube", stamp_s=0)
    assert a.name.endswith("_pick-cube") and b.name == a.name + "-2"
    assert len(a.name.split("_")[0]) == len("YYYYmmdd-HHMMSS")


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_round_trip_every_message_stamp_and_type(tmp_path: Path, compression: str) -> None:
    ep, sent = record(tmp_path, compression=compression)
    got = list(read_episode(ep))
    assert sorted(got, key=lambda m: m[2]) == sorted(sent, key=lambda m: m[2])
    # The bag is an ordinary rosbag2 MCAP bag: rosbags reads and deserializes it with its own metadata.yaml.
    with Reader(ep / "bag") as reader:
        assert reader.message_count == len(sent)
        assert {c.topic: c.msgtype for c in reader.connections}["/joint_states"] == "sensor_msgs/msg/JointState"
        for conn, _t, raw in reader.messages():
            TS.deserialize_cdr(raw, conn.msgtype)
        custom = bag_custom(ep)
        assert custom["corft_ros.instruction"] == "put the cube on the goal"
        assert custom["corft_ros.success"] == "true"
        assert all(c.digest.startswith("RIHS01_") for c in reader.connections)
    bag_meta = yaml.safe_load((ep / "bag" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert bag_meta["storage_identifier"] == "mcap"
    # zstd chunk compression is storage-level in rosbag2 terms: compression_mode stays empty.
    assert bag_meta["compression_mode"] == ""
    if compression == "zstd":
        assert b"zstd" in (ep / "bag" / "bag.mcap").read_bytes()[:4096]


def test_metadata_in_episode_yaml_and_bag(tmp_path: Path) -> None:
    ep, sent = record(tmp_path)
    meta = load_episode_metadata(ep)
    assert meta["instruction"] == "put the cube on the goal"
    assert meta["operator"] == "alice" and meta["robot"] == "ur5e" and meta["joint_names"] == ["a", "b"]
    assert meta["success"] is True and meta["status"] == "stopped"
    assert meta["stop_ns"] >= meta["start_ns"] > 0 and meta["software_version"]
    assert meta["topics"]["/joint_states"]["count"] == 50
    assert meta["topics"]["/camera/front/image_raw"]["count"] == 10
    assert meta["dropped_total"] == 0
    # episode.yaml is plain, human-readable YAML beside the bag.
    text = (ep / "episode.yaml").read_text()
    assert "instruction: put the cube on the goal" in text
    # The same record lives in the bag's custom data; with episode.yaml gone it is still found.
    (ep / "episode.yaml").unlink()
    assert load_episode_metadata(ep)["topics"]["/joint_states"]["count"] == 50


def test_topic_filter_and_bag_path_forms(tmp_path: Path) -> None:
    ep, _ = record(tmp_path, n=10)
    only = list(read_episode(ep / "bag", topics={"/joint_states"}))
    assert len(only) == 10 and {m[0] for m in only} == {"/joint_states"}
    assert len(list(read_episode(ep / "bag" / "bag.mcap"))) == 13


def test_queue_bound_counts_drops(tmp_path: Path) -> None:
    ep = new_episode_dir(tmp_path, "drops")
    writer = EpisodeWriter(ep, make_meta(), queue_max_bytes=1000, min_free_bytes=0)
    writer.start()
    writer.add_topic("/camera/front/image_raw", "sensor_msgs/msg/Image")
    assert not writer.write("/camera/front/image_raw", image_cdr(1))  # 2.3 kB never fits in 1 kB
    assert not writer.write("/unknown", b"\x00\x01\x00\x00")  # not a declared topic: refused
    meta = writer.stop()
    assert meta.topics["/camera/front/image_raw"].dropped == 1
    assert episode_info(ep).dropped_total == 1


def test_unknown_type_is_named_and_msg_files_are_found(tmp_path: Path) -> None:
    ep = new_episode_dir(tmp_path, "types")
    pkg = tmp_path / "msgs" / "my_pkg" / "msg"
    pkg.mkdir(parents=True)
    (pkg / "Gripper.msg").write_text("std_msgs/Header header\nfloat64 width\n")
    writer = EpisodeWriter(ep, make_meta(), min_free_bytes=0, msg_search_paths=[tmp_path / "msgs"])
    writer.start()
    with pytest.raises(TypeResolutionError, match="nope_msgs/msg/Thing"):
        writer.add_topic("/thing", "nope_msgs/msg/Thing")
    writer.add_topic("/gripper", "my_pkg/msg/Gripper")
    writer.add_topic("/joint_states", "sensor_msgs/msg/JointState")
    assert writer.write("/joint_states", joint_state_cdr(5, 0.1), 5)
    writer.stop()
    with Reader(ep / "bag") as reader:
        conn = {c.topic: c for c in reader.connections}["/gripper"]
        assert "float64 width" in conn.msgdef.data and conn.digest.startswith("RIHS01_")
        assert reader.message_count == 1


def test_missing_or_unusable_output_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        EpisodeWriter(tmp_path / "nope" / "ep", make_meta(), min_free_bytes=0).start()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="file"):
        EpisodeWriter(blocker / "ep", make_meta(), min_free_bytes=0).start()


def test_disk_guard_refuses_to_start(tmp_path: Path) -> None:
    ep = new_episode_dir(tmp_path, "guard")
    too_much = free_bytes(tmp_path) + (1 << 40)
    with pytest.raises(DiskFullError, match="min_free_bytes"):
        EpisodeWriter(ep, make_meta(), min_free_bytes=too_much).start()
    assert not ep.exists()


def start_near_full(writer_cls, tmp_path: Path, **kw):
    """(episode folder, started writer) with `min_free_bytes` 4 MB under the disk's free space, so a few frames cross
    it. Another process writing to the same disk can eat those 4 MB before the start's own check (seen while a venv
    was being built beside the suite): then try again with a fresh threshold."""
    def start():
        ep = new_episode_dir(tmp_path, "guard")
        writer = writer_cls(ep, make_meta(), min_free_bytes=free_bytes(tmp_path) - 4_000_000, **kw)
        writer.start()
        return ep, writer

    for _ in range(19):
        try:
            return start()
        except OSError as exc:
            if "min_free_bytes" not in str(exc):
                raise
    return start()  # the last try's error is the test's


def fill_to_disk_full(writer_cls, tmp_path: Path, seconds: float):
    """Start a writer 4 MB above its disk guard and write 640x480 frames until the guard stops it: (episode folder,
    writer, final metadata, on_abort calls). Another process writing to the same disk (a venv being built, a training
    run) can eat those 4 MB before the first frame lands: then the episode has no frame at all, and it starts again."""
    for attempt in range(10):
        aborted: list[tuple[str, str]] = []
        ep, writer = start_near_full(writer_cls, tmp_path, disk_check_interval_s=0.0, flush_interval_s=0.05,
                                     on_abort=lambda s, e, aborted=aborted: aborted.append((s, e)))
        writer.add_topic("/camera/front/image_raw", "sensor_msgs/msg/Image")
        big = image_cdr(1, h=480, w=640)
        deadline = time.monotonic() + seconds
        while writer.recording and time.monotonic() < deadline:
            writer.write("/camera/front/image_raw", big)
            time.sleep(0.002)
        meta = writer.stop()
        if "/camera/front/image_raw" in meta.topics or attempt == 9 or meta.status != "disk_full":
            return ep, writer, meta, aborted
    raise AssertionError("unreachable")


def assert_stopped_by_the_guard(ep: Path, writer, meta, aborted) -> None:
    """The guard ended the episode as disk_full, said so once, refuses more, and what was written is a closed,
    readable bag holding every frame its metadata counts."""
    assert meta.status == "disk_full" and "min_free_bytes" in meta.error
    assert aborted and aborted[0][0] == "disk_full"
    assert not writer.write("/camera/front/image_raw", image_cdr(1, h=480, w=640))
    assert bag_is_intact(ep)
    with Reader(ep / "bag") as reader:
        assert reader.message_count == meta.topics["/camera/front/image_raw"].count > 0


def test_disk_guard_stops_cleanly_mid_episode(tmp_path: Path) -> None:
    ep, writer, meta, aborted = fill_to_disk_full(EpisodeWriter, tmp_path, seconds=30)
    assert_stopped_by_the_guard(ep, writer, meta, aborted)
    assert "disk_full" in bag_custom(ep)["corft_ros.episode"]  # the metadata rides in the bag too


def test_repair_after_truncation(tmp_path: Path) -> None:
    ep, sent = record(tmp_path, n=400, img_hw=(240, 320))  # ~18 MB: many 1 MiB chunks
    mcap = ep / "bag" / "bag.mcap"
    size = mcap.stat().st_size
    # A crash: no metadata.yaml, the file cut in the middle of the data section.
    (ep / "bag" / "metadata.yaml").unlink()
    with open(mcap, "r+b") as f:
        f.truncate(int(size * 0.6))
    info = episode_info(ep)
    assert info.needs_repair
    partial = list(read_episode(ep))  # readable before repair, up to the last intact chunk
    assert 0 < len(partial) < len(sent)
    assert all(m in sent for m in partial)
    report = repair_episode(ep)
    assert report.repaired and report.messages == len(partial) and report.bytes_lost > 0
    assert bag_is_intact(ep)
    with Reader(ep / "bag") as reader:
        assert reader.message_count == len(partial)
        assert "repaired" in bag_custom(ep)["corft_ros.episode"]
    meta = load_episode_metadata(ep)
    assert meta["status"] == "repaired" and meta["instruction"] == "put the cube on the goal"
    assert meta["topics"]["/joint_states"]["count"] == sum(1 for m in partial if m[0] == "/joint_states")
    assert sorted(read_episode(ep), key=lambda m: m[2]) == sorted(partial, key=lambda m: m[2])
    assert not repair_episode(ep).repaired  # idempotent


def test_one_reader_for_bag_info_and_the_trainer_an_interrupted_bag_reads_the_same_and_is_refused_alike(
        tmp_path: Path) -> None:
    """`EpisodeBag` is the only reader of our bags: `bag info`'s read_episode and the trainer's dataset both use it,
    so an interrupted recording reads the same for both, and the trainer refuses it with the one error type and
    the same advice (`bag repair`) that `bag info` gives."""
    from corft_ros.core.dataset.episode import EpisodeProblem
    from corft_ros.core.episodes import EpisodeBag, EpisodeReadError, training_metadata

    ep, sent = record(tmp_path, n=60)
    with EpisodeBag(ep, require_intact=True) as bag:
        assert bag.intact and set(bag.topics()) == {m[0] for m in sent}
        assert [(m.topic, m.msgtype, m.log_time_ns, m.data) for m in bag.messages()] == list(read_episode(ep))
    assert training_metadata(ep / "bag")["instruction"] == "put the cube on the goal"
    (ep / "bag" / "metadata.yaml").unlink()  # a crash before the bag was closed
    with EpisodeBag(ep) as bag:
        assert not bag.intact and set(bag.topics()) == {m[0] for m in sent}
        assert sorted((m.topic, m.log_time_ns) for m in bag.messages()) == sorted((m[0], m[2]) for m in sent)
    with pytest.raises(EpisodeReadError, match=r"interrupted.*corft-ros bag repair"):
        EpisodeBag(ep, require_intact=True)
    assert issubclass(EpisodeProblem, EpisodeReadError)
    with pytest.raises(EpisodeReadError, match="no .mcap or .db3"):
        EpisodeBag(tmp_path / "nothing-here")


_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {test_dir!r})
    from test_episodes import joint_state_cdr, image_cdr, make_meta
    from corft_ros.core.episodes import EpisodeWriter
    w = EpisodeWriter({ep!r}, make_meta(), min_free_bytes=0, flush_interval_s=0.1, compression="zstd")
    w.start()
    w.add_topic("/joint_states", "sensor_msgs/msg/JointState")
    w.add_topic("/camera/front/image_raw", "sensor_msgs/msg/Image")
    i = 0
    while True:
        t = time.time_ns()
        w.write("/joint_states", joint_state_cdr(t, i * 1e-3), t)
        if i % 10 == 0:
            w.write("/camera/front/image_raw", image_cdr(t, value=i), t)
        if i == 200:
            print("running", flush=True)
        i += 1
        time.sleep(0.002)
    """
)


def test_sigkill_leaves_readable_bag_and_repair_restores_metadata(tmp_path: Path) -> None:
    ep = tmp_path / "20260101-000000_killed"
    code = _KILLED_WRITER.format(test_dir=str(Path(__file__).parent), ep=str(ep))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "running"
        time.sleep(0.5)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (ep / "bag" / "metadata.yaml").exists()
    assert load_episode_metadata(ep)["status"] == "recording"
    before = list(read_episode(ep))
    assert len([m for m in before if m[0] == "/joint_states"]) >= 150
    for _topic, msgtype, _t, raw in before:
        TS.deserialize_cdr(raw, msgtype)
    report = repair_episode(ep)
    assert report.messages == len(before)
    with Reader(ep / "bag") as reader:
        assert reader.message_count == len(before)
    meta = load_episode_metadata(ep)
    assert meta["status"] == "repaired" and meta["extra"]["repair"]["original_status"] == "crashed"
    assert meta["compression"] == "zstd" and meta["stop_ns"] > meta["start_ns"]


def test_listing(tmp_path: Path) -> None:
    a, _ = record(tmp_path, n=10, label="first")
    b, _ = record(tmp_path, n=20, label="second")
    meta_b = yaml.safe_load((b / "episode.yaml").read_text())
    meta_b["success"] = False
    (b / "episode.yaml").write_text(yaml.safe_dump(meta_b))
    (tmp_path / "not-an-episode").mkdir()
    infos = list_episodes(tmp_path)
    assert [i.path for i in infos] == sorted([a, b])
    by = {i.path: i for i in infos}
    assert by[a].label == "success" and by[b].label == "failure"
    assert by[a].topics["/joint_states"].count == 10 and by[b].topics["/joint_states"].count == 20
    assert by[a].message_total == 10 + 2 + 1
    assert by[a].duration_s is not None and by[a].duration_s >= 0
    assert not by[a].needs_repair and not by[a].error
