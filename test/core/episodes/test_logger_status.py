"""The episode logger's diagnostics (core/episodes/status.py): what an operator reads while recording."""

from corft_ros.core.episodes import TopicStats, WriterStats
from corft_ros.core.episodes.status import WriteRate, logger_status


def test_idle_recording_and_dropping_read_as_they_are():
    level, message, values = logger_status(None, "", 0, 5_000, 0.0, set(), ["/camera/wrist/image_raw"])
    assert (level, message) == ("ok", "idle") and values["state"] == "idle" and values["free_bytes"] == "5000"
    assert values["unresolved_topics"] == "/camera/wrist/image_raw"
    stats = WriterStats(state="recording", messages=10, bytes=2_000_000, dropped=0, queue_messages=1, queue_bytes=100,
                        chunks_flushed=2, error="",
                        topics={"/joint_states": TopicStats("sensor_msgs/msg/JointState", 10, 0, 2_000_000)})
    level, message, values = logger_status(stats, "ep1", 0, None, 1.5e6, set(), [])
    assert (level, message) == ("ok", "recording ep1") and values["write_mb_s"] == "1.50"
    assert values["count /joint_states"] == "10" and "free_bytes" not in values
    stats.dropped = 3
    stats.topics["/joint_states"].dropped = 3
    level, message, values = logger_status(stats, "ep1", 1, None, 0.0, {"/camera/front/image_raw"}, [])
    assert level == "warn" and message == "recording ep1 (3 dropped, 1 topics missing)"
    assert values["dropped /joint_states"] == "3" and values["missing_topics"] == "/camera/front/image_raw"


def test_write_rate_restarts_with_each_episode():
    rate = WriteRate(now=0.0)
    assert rate.update(1.0, 1_000_000) == 1_000_000
    assert rate.update(3.0, 3_000_000) == 1_000_000
    assert rate.update(4.0, 100) == 0.0  # a new episode: the count restarted
    assert rate.update(5.0, None) == 0.0  # idle
