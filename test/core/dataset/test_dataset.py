"""Bag -> dataset: timestamp resampling (never a future frame), the cache, bad bags, sqlite3 and trajectories.
Every bag here is a real rosbag2 folder written in the test with rosbags."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from corft_ros.core.dataset import synthetic
from corft_ros.core.dataset.build import area_resize
from corft_ros.core.dataset.config import DatasetConfig
from corft_ros.core.dataset.episode import EpisodeProblem
from corft_ros.core.dataset.load import load_episodes
from corft_ros.core.images import resize
from corft_ros.core.robot import load_robot_config

ROBOT = load_robot_config()
T0 = 1_700_000_000_000_000_000


def _write_irregular_bag(folder: Path, frames: list[tuple[int, int]], seconds: float = 1.5,
                         lag_ns=lambda t_ns: 0, js_delay_ns=lambda i: 2_000_000) -> dict:
    """Front/wrist cameras whose pixels all equal the frame number, `frames` = (capture stamp, log time);
    joint states q_k = k + 2 t at 100 Hz (listed in reverse order); commands = their own index at 25 Hz.
    Header stamps may run on a clock that lags the log clock by `lag_ns(header time)` (a sim slower than real
    time); joint state i is delivered `js_delay_ns(i)` after its stamp. Returns {command time on the header
    clock: value}."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    T = ts.types
    header = lambda ns: T["std_msgs/msg/Header"](  # noqa: E731
        stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9), frame_id="")
    events = []
    for n, (stamp, log) in enumerate(frames):
        for cam in ("front", "wrist"):
            img = np.full((16, 16, 3), n, np.uint8)
            msg = T["sensor_msgs/msg/Image"](header=header(stamp), height=16, width=16, encoding="rgb8",
                                             is_bigendian=0, step=48, data=img.reshape(-1))
            events.append((log + lag_ns(stamp), f"/camera/{cam}/image_raw", "sensor_msgs/msg/Image", msg))
    for i in range(int(seconds * 100) + 1):
        stamp = T0 + i * 10_000_000
        t = (stamp - T0) / 1e9
        names = list(reversed(ROBOT.joint_names))
        pos = np.array([ROBOT.joint_names.index(n) + 2.0 * t for n in names])
        msg = T["sensor_msgs/msg/JointState"](header=header(stamp), name=names, position=pos,
                                              velocity=np.zeros(0), effort=np.zeros(0))
        events.append((stamp + lag_ns(stamp) + js_delay_ns(i), "/joint_states", "sensor_msgs/msg/JointState", msg))
    commands = {}
    for i in range(int(seconds * 25) + 1):
        sent = T0 + i * 40_000_000 + 5_000_000  # header clock; no command within 5 ms of a 50 ms tick
        log = sent + lag_ns(sent)
        commands[sent] = float(i)
        msg = T["std_msgs/msg/Float64MultiArray"](layout=T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0),
                                                  data=np.full(ROBOT.dof, float(i)))
        events.append((log, "/forward_position_controller/commands", "std_msgs/msg/Float64MultiArray", msg))
    events.sort(key=lambda e: e[0])
    folder.mkdir(parents=True)
    with Writer(folder / "bag", version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {}
        for log, topic, msgtype, msg in events:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=ts)
            writer.write(conns[topic], log, ts.serialize_cdr(msg, msgtype))
    (folder / "episode.yaml").write_text(yaml.safe_dump({"instruction": "reach", "success": True}))
    return commands


def test_resampling_uses_the_latest_frame_at_or_before_each_tick(tmp_path):
    rng = np.random.default_rng(0)
    frames = []
    for n in range(45):  # ~30 fps with jitter; frames 10-12 dropped by the camera
        stamp = T0 + int(n * 33_333_333 + rng.integers(-6_000_000, 6_000_000))
        frames.append((max(stamp, T0), max(stamp, T0) + 4_000_000))
    del frames[10:13]
    # frame 20 arrives (is logged) after frame 21: order of arrival must not matter
    frames[20], frames[21] = (frames[20][0], frames[21][1] + 1), frames[21]
    commands = _write_irregular_bag(tmp_path / "ep", frames)
    cfg = DatasetConfig(image_size=(16, 16), cache_dir=str(tmp_path / "cache"))
    ep = load_episodes(tmp_path / "ep", ROBOT, cfg, log=lambda m: None).episodes[0]

    stamps = np.array([s for s, _ in frames])
    ticks = ep.tick_ns
    assert np.all(np.diff(ticks) == 50_000_000)  # robot.yaml action_rate_hz = 20
    for cam in ("front", "wrist"):
        used = ep.images[cam][:, 0, 0, 0].astype(int)  # pixel value = frame number (index in `frames`)
        used_stamp = stamps[used]
        assert np.all(used_stamp <= ticks), "a tick used a frame captured after it"
        latest = np.array([stamps[stamps <= t].max() for t in ticks])
        np.testing.assert_array_equal(used_stamp, latest)
    # joint states are interpolated exactly for a linear motion: q_k(t) = k + 2 t
    t = (ticks - T0) / 1e9
    expected = np.arange(ROBOT.dof)[None, :] + 2.0 * t[:, None]
    np.testing.assert_allclose(ep.state, expected, atol=1e-5)
    # actions: the command in force at the tick (latest sent at or before it)
    log_times = np.array(sorted(commands))
    want = [commands[log_times[log_times <= tick].max()] for tick in ticks]
    np.testing.assert_allclose(ep.action[:, 0], want)
    assert ep.stats["cameras"]["front"]["dropped"] == 3
    period = np.median(np.diff(np.sort(stamps)))
    stale = int(np.sum(ticks - latest > 2.5 * period))
    assert stale >= 1  # the 3-frame gap leaves a tick with an old frame
    assert ep.stats["cameras"]["front"]["stale_ticks"] == stale


@pytest.mark.parametrize("lag_ms, drift_ms_per_s", [(300, 0), (2300, 10)])
def test_commands_move_onto_a_lagging_header_clock(tmp_path, lag_ms, drift_ms_per_s):
    """Sim time lags the wall clock the logger stamps with (and drifts: a sim slightly slower than real time);
    commands have no header, so their log times must be moved onto the header clock. 300 ms was below the old
    fixed threshold (commands then led the states by 6 ticks); joint states arrive with jittery delays and a burst."""
    frames = [(T0 + n * 33_333_333, T0 + n * 33_333_333 + 4_000_000) for n in range(45)]
    lag = lambda t: lag_ms * 1_000_000 + int(drift_ms_per_s * (t - T0) / 1e9 * 1e6)  # noqa: E731
    delays = np.random.default_rng(2).integers(1_000_000, 6_000_000, 200)
    delays[40:60] += 80_000_000  # a delivery stall: these arrive late together
    commands = _write_irregular_bag(tmp_path / "ep", frames, lag_ns=lag, js_delay_ns=lambda i: int(delays[i]))
    cfg = DatasetConfig(image_size=(16, 16), cache_dir=str(tmp_path / "cache"))
    ep = load_episodes(tmp_path / "ep", ROBOT, cfg, log=lambda m: None).episodes[0]
    sent = np.array(sorted(commands))
    want = [commands[sent[sent <= tick].max()] for tick in ep.tick_ns]
    # the estimate is off by the smallest delivery delay (1 ms) and the drift across its window (2.5 ms)
    np.testing.assert_allclose(ep.action[:, 0], want)
    t = (ep.tick_ns - T0) / 1e9
    np.testing.assert_allclose(ep.state, np.arange(ROBOT.dof)[None, :] + 2.0 * t[:, None], atol=1e-5)


def test_area_resize_matches_the_deployment_resize(tmp_path):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    diff = np.abs(area_resize(img, 64, 64).astype(int) - resize(img, 64, 64).astype(int))
    assert diff.max() <= 1


@pytest.fixture()
def good_episodes(tmp_path):
    synthetic.write_dataset(tmp_path / "eps", ROBOT, 3, image_hw=(24, 32), duration_s=1.0)
    return tmp_path / "eps"


def test_cache_hit_miss_copy_and_corruption(tmp_path, good_episodes):
    cfg = DatasetConfig(image_size=(16, 16), cache_dir=str(tmp_path / "cache"))
    quiet = lambda m: None  # noqa: E731
    first = load_episodes(good_episodes, ROBOT, cfg, log=quiet)
    assert [e.from_cache for e in first.episodes] == [False] * 3
    first_state = np.array(first.episodes[0].state)  # a copy: the mapped file is corrupted below
    second = load_episodes(good_episodes, ROBOT, cfg, log=quiet)
    assert [e.from_cache for e in second.episodes] == [True] * 3
    assert isinstance(second.episodes[0].images["front"], np.memmap)
    np.testing.assert_array_equal(first.episodes[1].action, second.episodes[1].action)

    # the same bag copied elsewhere: same content, same cache entry
    shutil.copytree(good_episodes / "episode_001", tmp_path / "copy" / "episode_001")
    copied = load_episodes(tmp_path / "copy", ROBOT, cfg, log=quiet).episodes[0]
    assert copied.key == second.episodes[1].key and copied.from_cache

    # new content under the same name: a miss
    shutil.rmtree(good_episodes / "episode_002")
    synthetic.write_episode(good_episodes / "episode_002", ROBOT,
                            synthetic.SyntheticEpisode(target=(0.9, 0.9), image_hw=(24, 32), duration_s=1.0))
    third = load_episodes(good_episodes, ROBOT, cfg, log=quiet)
    assert [e.from_cache for e in third.episodes] == [True, True, False]

    # a corrupt cache entry is reported in one line and rebuilt from the bag
    entry = Path(cfg.cache_dir) / third.episodes[0].key
    (entry / "state.npy").write_bytes((entry / "state.npy").read_bytes()[:100])
    lines = []
    fourth = load_episodes(good_episodes, ROBOT, cfg, log=lines.append)
    assert not fourth.episodes[0].from_cache
    assert len(lines) == 1 and "corrupt" in lines[0] and "episode_000" in lines[0]
    np.testing.assert_array_equal(fourth.episodes[0].state, first_state)
    assert load_episodes(good_episodes, ROBOT, cfg, log=quiet).episodes[0].from_cache


def _empty_bag(folder: Path) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    folder.mkdir(parents=True)
    with Writer(folder / "bag", version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for topic, msgtype in (("/camera/front/image_raw", "sensor_msgs/msg/Image"),
                               ("/camera/wrist/image_raw", "sensor_msgs/msg/Image"),
                               ("/joint_states", "sensor_msgs/msg/JointState"),
                               ("/forward_position_controller/commands", "std_msgs/msg/Float64MultiArray")):
            writer.add_connection(topic, msgtype, typestore=ts)
    (folder / "episode.yaml").write_text(yaml.safe_dump({"instruction": "reach", "success": True}))


def test_bad_bags_are_skipped_with_one_line_errors_and_strict_fails(tmp_path, good_episodes):
    root = good_episodes
    small = {"image_hw": (24, 32), "duration_s": 1.0}
    synthetic.write_episode(root / "no_wrist", ROBOT, synthetic.SyntheticEpisode(
        skip_topics=("/camera/wrist/image_raw",), **small))
    synthetic.write_episode(root / "no_label", ROBOT, synthetic.SyntheticEpisode(success=None, **small))
    names = list(ROBOT.joint_names)
    names[2] = "elbow"
    synthetic.write_episode(root / "other_robot", ROBOT, synthetic.SyntheticEpisode(joint_names=names, **small))
    _empty_bag(root / "empty")
    synthetic.write_episode(root / "truncated", ROBOT, synthetic.SyntheticEpisode(**small))
    mcap = next((root / "truncated" / "bag").glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    synthetic.write_episode(root / "killed", ROBOT, synthetic.SyntheticEpisode(**small))
    (root / "killed" / "bag" / "metadata.yaml").unlink()

    cfg = DatasetConfig(image_size=(16, 16), cache_dir=str(tmp_path / "cache"))
    lines: list[str] = []
    report = load_episodes(root, ROBOT, cfg, log=lines.append)
    assert sorted(e.bag.parent.name for e in report.episodes) == ["episode_000", "episode_001", "episode_002"]
    assert len(report.problems) == 6 and len(lines) == 6
    assert all("\n" not in p for p in report.problems)
    by_name = {Path(p.split(":")[0]).parent.name: p for p in report.problems}
    assert "missing required topics: /camera/wrist/image_raw" in by_name["no_wrist"]
    assert "no success label" in by_name["no_label"]
    assert "joint names do not match" in by_name["other_robot"] and "elbow" in by_name["other_robot"]
    assert "no messages" in by_name["empty"]
    assert "truncated" in by_name["truncated"] or "cannot open" in by_name["truncated"]
    assert "no metadata.yaml" in by_name["killed"] and "bag repair" in by_name["killed"]

    with pytest.raises(EpisodeProblem, match="empty|killed|no_label|no_wrist|other_robot|truncated"):
        load_episodes(root, ROBOT, cfg, strict=True, log=lambda m: None)


def test_sqlite3_and_trajectory_bags_give_the_same_arrays(tmp_path):
    base = {"image_hw": (24, 32), "duration_s": 1.0, "seed": 7}
    synthetic.write_episode(tmp_path / "mcap", ROBOT, synthetic.SyntheticEpisode(**base))
    synthetic.write_episode(tmp_path / "sqlite", ROBOT, synthetic.SyntheticEpisode(storage="sqlite3", **base))
    synthetic.write_episode(tmp_path / "traj", ROBOT, synthetic.SyntheticEpisode(
        command_topic="/arm_controller/joint_trajectory", **base))
    assert list((tmp_path / "sqlite" / "bag").glob("*.db3"))
    cfg = DatasetConfig(image_size=(16, 16), cache_dir=str(tmp_path / "cache"))
    eps = {e.bag.parent.name: e for e in load_episodes(tmp_path, ROBOT, cfg, log=lambda m: None).episodes}
    for other in ("sqlite", "traj"):
        np.testing.assert_array_equal(eps[other].images["front"], eps["mcap"].images["front"])
        np.testing.assert_allclose(eps[other].state, eps["mcap"].state)
        np.testing.assert_allclose(eps[other].action, eps["mcap"].action, atol=1e-6)
    assert eps["traj"].stats["action_topic"] == "/arm_controller/joint_trajectory"


def test_an_episode_written_by_the_logger_and_labelled_later_loads(tmp_path):
    """The logging area's own writer (raw CDR into MCAP) and labelling tool: the format the trainer gets."""
    from corft_ros.core.episodes import EpisodeMetadata, EpisodeWriter
    from corft_ros.core.episodes.label import set_episode_label

    ep = synthetic.SyntheticEpisode(image_hw=(24, 32), duration_s=1.0, success=None, seed=3)
    (tmp_path / "eps").mkdir()
    meta = EpisodeMetadata(episode_id="logged", instruction=ep.instruction, robot=ROBOT.name,
                           joint_names=ROBOT.joint_names, source="scripted")
    writer = EpisodeWriter(tmp_path / "eps" / "logged", meta, min_free_bytes=0)
    writer.start()
    messages = synthetic.episode_messages(ROBOT, ep)
    for topic, msgtype in {t: m for _, t, m, _ in messages}.items():
        writer.add_topic(topic, msgtype)
    for ns, topic, _, data in messages:
        assert writer.write(topic, data, ns)
    writer.stop()

    cfg = DatasetConfig(image_size=(16, 16), cache_dir=str(tmp_path / "cache"))
    lines: list[str] = []
    with pytest.raises(EpisodeProblem, match="no usable episodes"):
        load_episodes(tmp_path / "eps", ROBOT, cfg, log=lines.append)
    assert len(lines) == 1 and "logged/bag: episode has no success label" in lines[0]

    set_episode_label(tmp_path / "eps" / "logged", False)
    report = load_episodes(tmp_path / "eps", ROBOT, cfg, log=lambda m: None)
    episode = report.episodes[0]
    assert episode.success is False and episode.instruction == ep.instruction
    # the same messages through rosbags' own writer give the same arrays
    synthetic.write_episode(tmp_path / "ref", ROBOT, dataclasses.replace(ep, success=False))
    ref = load_episodes(tmp_path / "ref", ROBOT, cfg, log=lambda m: None).episodes[0]
    assert ref.key == episode.key  # same messages, same cache entry
    np.testing.assert_array_equal(episode.images["wrist"], ref.images["wrist"])
    np.testing.assert_allclose(episode.action, ref.action)


def test_the_ticks_an_operator_held_the_arm_are_flagged(tmp_path):
    """corft/intervention in a bag (the latched state, then each change) becomes a per-tick flag, cached with the
    rest; a bag without it has none."""
    base = {"image_hw": (24, 32), "duration_s": 2.0, "seed": 3}
    synthetic.write_episode(tmp_path / "eps" / "taken", ROBOT,
                            synthetic.SyntheticEpisode(interventions=((0.5, 1.0), (1.5, 2.5)), **base))
    synthetic.write_episode(tmp_path / "eps" / "plain", ROBOT, synthetic.SyntheticEpisode(**base))
    cfg = DatasetConfig(image_size=(16, 16), cache_dir=str(tmp_path / "cache"))
    for _ in range(2):  # built, then from the cache
        eps = {e.bag.parent.name: e for e in load_episodes(tmp_path / "eps", ROBOT, cfg, log=lambda m: None).episodes}
        taken = eps["taken"]
        t = (taken.tick_ns - taken.tick_ns[0]) / 1e9 + (taken.tick_ns[0] - 1_700_000_000_000_000_000) / 1e9
        expected = ((t >= 0.5) & (t < 1.0)) | (t >= 1.5)
        np.testing.assert_array_equal(taken.intervention, expected)
        assert taken.intervention.any() and not eps["plain"].intervention.any()
        assert eps["plain"].intervention.shape == (len(eps["plain"].state),)
    assert all(e.from_cache for e in eps.values())
