"""Our bags are bags every supported rosbag2 reads (no ROS needed here, so this also runs under Python 3.10).

- Humble's rosbag2 reads metadata version <= 8 only as it was: `offered_qos_profiles` one YAML string (version 9,
  Jazzy's, made it a list, which Humble cannot convert); Jazzy and Kilted decode by the version in the file.
- Newer rosbag2 (Iron+) writes the RIHS01 type hash into each MCAP channel's metadata (`topic_type_hash`) and
  into metadata.yaml (`type_description_hash`); ours match the hashes the ROS 2 Kilted message packages ship.
- The bag opens with rosbags' reader and with the official MCAP reader (foxglove's `mcap`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from mcap.reader import make_reader
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from corft_ros.core.episodes import EpisodeMetadata, EpisodeWriter, new_episode_dir, repair_episode
from corft_ros.core.episodes.writer import BAG_VERSION

TS = get_typestore(Stores.ROS2_KILTED)
TOPICS = {
    "/joint_states": "sensor_msgs/msg/JointState",
    "/camera/front/image_raw": "sensor_msgs/msg/Image",
    "/corft/instruction": "std_msgs/msg/String",
    "/arm_controller/joint_trajectory": "trajectory_msgs/msg/JointTrajectory",
}
RELIABLE = Qos(QosHistory.KEEP_LAST, 1000, QosReliability.RELIABLE, QosDurability.VOLATILE, QosTime(0, 0),
               QosTime(0, 0), QosLiveliness.AUTOMATIC, QosTime(0, 0), False)
LATCHED = Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, QosTime(0, 0),
              QosTime(0, 0), QosLiveliness.AUTOMATIC, QosTime(0, 0), False)
RIHS01_LEN = len("RIHS01_") + 64


def official_type_hash(msgtype: str) -> str | None:
    """The RIHS01 hash rosidl generated for `msgtype`, from the type description JSON its installed ROS 2 (Iron or
    newer) package ships (share/<pkg>/msg/<Name>.json: the Kilted wheels in .venv, or a sourced ROS 2)."""
    pkg, _, name = msgtype.split("/")
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    for prefix in prefixes:
        file = Path(prefix) / "share" / pkg / "msg" / f"{name}.json"
        if file.is_file():
            hashes = {h["type_name"]: h["hash_string"] for h in json.loads(file.read_text())["type_hashes"]}
            return hashes[msgtype]
    return None


def _message(msgtype: str, i: int) -> bytes:
    types = TS.types
    stamp = types["builtin_interfaces/msg/Time"](sec=i, nanosec=0)
    header = types["std_msgs/msg/Header"](stamp=stamp, frame_id="base")
    if msgtype == "sensor_msgs/msg/JointState":
        import numpy as np

        msg = types[msgtype](header=header, name=["a"], position=np.array([0.1 * i]), velocity=np.zeros(1),
                             effort=np.zeros(0))
    elif msgtype == "sensor_msgs/msg/Image":
        import numpy as np

        msg = types[msgtype](header=header, height=2, width=2, encoding="rgb8", is_bigendian=0, step=6,
                             data=np.full(12, i, dtype=np.uint8))
    elif msgtype == "std_msgs/msg/String":
        msg = types[msgtype](data=f"task {i}")
    else:
        msg = types[msgtype](header=header, joint_names=["a"], points=[])
    return bytes(TS.serialize_cdr(msg, msgtype))


def _record(root: Path, compression: str = "none") -> Path:
    ep = new_episode_dir(root, "compat")
    writer = EpisodeWriter(ep, EpisodeMetadata(episode_id=ep.name, instruction="task", joint_names=["a"]),
                           compression=compression, min_free_bytes=0)
    writer.start()
    for topic, msgtype in TOPICS.items():
        writer.add_topic(topic, msgtype, [LATCHED] if topic == "/corft/instruction" else [RELIABLE])
    for i in range(5):
        for topic, msgtype in TOPICS.items():
            assert writer.write(topic, _message(msgtype, i), 1_000_000_000 + i * 1000 + len(topic))
    writer.stop()
    return ep


def _check_bag(bag: Path) -> None:
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] == BAG_VERSION <= 8
    hashes = {}
    for entry in info["topics_with_message_count"]:
        topic = entry["topic_metadata"]
        qos = topic["offered_qos_profiles"]
        assert isinstance(qos, str), f"{topic['name']}: offered_qos_profiles must be a YAML string for Humble"
        profiles = yaml.safe_load(qos)
        # Humble's format: enums as numbers, durations as sec/nsec.
        assert isinstance(profiles[0]["history"], int) and isinstance(profiles[0]["reliability"], int)
        assert set(profiles[0]["deadline"]) == {"sec", "nsec"}
        hashes[topic["name"]] = topic["type_description_hash"]
        assert hashes[topic["name"]].startswith("RIHS01_") and len(hashes[topic["name"]]) == RIHS01_LEN
    assert set(hashes) == set(TOPICS)

    # The official MCAP reader: channel metadata as rosbag2 writes it, the embedded rosbag2 metadata, all messages.
    with (bag / "bag.mcap").open("rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None
        assert summary.statistics.message_count == 5 * len(TOPICS)
        channels = {c.topic: c for c in summary.channels.values()}
        assert set(channels) == set(TOPICS)
        for topic, channel in channels.items():
            schema = summary.schemas[channel.schema_id]
            assert schema.name == TOPICS[topic] and schema.encoding == "ros2msg"
            assert channel.message_encoding == "cdr"
            assert set(channel.metadata) == {"offered_qos_profiles", "topic_type_hash"}
            assert channel.metadata["topic_type_hash"] == hashes[topic]
            assert yaml.safe_load(channel.metadata["offered_qos_profiles"])[0]["depth"] == (
                1 if topic == "/corft/instruction" else 1000)
        embedded = [m for m in reader.iter_metadata() if m.name == "rosbag2"]
        assert len(embedded) == 1
        assert yaml.safe_load(embedded[0].metadata["serialized_metadata"])["version"] == BAG_VERSION
        assert sum(1 for _ in reader.iter_messages()) == 5 * len(TOPICS)

    # rosbags reads and deserializes it, QoS included.
    with Reader(bag) as reader:
        assert reader.message_count == 5 * len(TOPICS)
        qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
        assert qos["/corft/instruction"] == [LATCHED] and qos["/joint_states"] == [RELIABLE]
        assert {c.topic: c.digest for c in reader.connections} == hashes
        for conn, _t, raw in reader.messages():
            TS.deserialize_cdr(raw, conn.msgtype)


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_recorded_bag_is_version_8_with_type_hashes_and_opens_with_both_readers(tmp_path, compression) -> None:
    _check_bag(_record(tmp_path, compression) / "bag")


def test_a_repaired_bag_is_written_the_same_way(tmp_path) -> None:
    ep = _record(tmp_path)
    (ep / "bag" / "metadata.yaml").unlink()  # as after a crash: the writer never closed the bag
    assert repair_episode(ep).repaired
    _check_bag(ep / "bag")


def test_type_hashes_are_the_official_ones_of_the_ros2_message_packages(tmp_path) -> None:
    official = {t: official_type_hash(t) for t in TOPICS.values()}
    if None in official.values():
        pytest.skip("no ROS 2 type description JSON here (share/<pkg>/msg/<Name>.json: ROS 2 Iron or newer, e.g. "
                    "the Kilted wheels of .venv): nothing official to compare with")
    bag = _record(tmp_path) / "bag"
    with (bag / "bag.mcap").open("rb") as f:
        summary = make_reader(f).get_summary()
    got = {summary.schemas[c.schema_id].name: c.metadata["topic_type_hash"] for c in summary.channels.values()}
    assert got == official
