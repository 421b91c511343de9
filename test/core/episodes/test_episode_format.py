"""Direct tests of the episode format's lower modules: the CDR field parser (cdr.py), the forgiving MCAP scanner
(scan.py), repair (repair.py) and the tick resampling the trainer builds frames with (core/dataset/resample.py)."""

from __future__ import annotations

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore
from test_episodes import image_cdr, joint_state_cdr, record

from corft_ros.core.dataset import resample
from corft_ros.core.episodes import CdrError, EpisodeReadError, read_episode, repair_episode
from corft_ros.core.episodes.cdr import header_stamp_ns, parse_image
from corft_ros.core.episodes.reader import bag_is_intact
from corft_ros.core.episodes.scan import scan_mcap

TS = get_typestore(Stores.ROS2_KILTED)


@pytest.mark.parametrize("frame_id", ["", "c", "cam", "camera_optical_frame"])  # every string padding
@pytest.mark.parametrize("little_endian", [True, False])
def test_cdr_image_fields_equal_the_full_deserializer(frame_id: str, little_endian: bool) -> None:
    Image, Header, Time = (TS.types[t] for t in ("sensor_msgs/msg/Image", "std_msgs/msg/Header",
                                                   "builtin_interfaces/msg/Time"))
    pixels = np.arange(5 * 7 * 3, dtype=np.uint8)
    msg = Image(header=Header(stamp=Time(sec=12, nanosec=345_678_901), frame_id=frame_id), height=5, width=7,
                encoding="rgb8", is_bigendian=0, step=21, data=pixels)
    data = bytes(TS.serialize_cdr(msg, "sensor_msgs/msg/Image", little_endian=little_endian))
    view = parse_image(data)
    assert (view.stamp_ns, view.height, view.width, view.encoding, view.step) == (12_345_678_901, 5, 7, "rgb8", 21)
    assert bytes(view.data) == pixels.tobytes()
    assert header_stamp_ns(data) == 12_345_678_901
    assert header_stamp_ns(joint_state_cdr(3_000_000_007, 0.5)) == 3_000_000_007


def test_cdr_truncated_or_foreign_bytes_are_one_line_episode_errors() -> None:
    data = image_cdr(1_000, 4, 4)
    for cut in (0, 3, 10, len(data) - 1):
        with pytest.raises(CdrError) as err:
            parse_image(data[:cut])
        assert isinstance(err.value, EpisodeReadError) and "\n" not in str(err.value)


def test_the_scanner_reads_an_intact_bag_whole_and_a_cut_one_up_to_its_last_intact_chunk(tmp_path) -> None:
    ep, sent = record(tmp_path, n=300, img_hw=(120, 160))
    mcap = ep / "bag" / "bag.mcap"
    scan, messages = scan_mcap(mcap)
    got = list(messages)
    assert scan.complete and not scan.damage and len(got) == len(sent) == scan.message_count
    assert {c.topic for c in scan.channels.values()} == {m[0] for m in sent}
    assert {s.name for s in scan.schemas.values()} == {m[1] for m in sent}
    assert scan.start_ns == min(m[2] for m in sent) and scan.end_ns == max(m[2] for m in sent)
    size = mcap.stat().st_size
    previous = -1
    for fraction in (0.2, 0.5, 0.8):
        cut = tmp_path / f"cut{fraction}.mcap"
        cut.write_bytes(mcap.read_bytes()[: int(size * fraction)])
        scan, messages = scan_mcap(cut)
        part = [(scan.channels[cid].topic, t, data) for cid, t, data in messages]
        assert not scan.complete and scan.damage and scan.valid_bytes <= int(size * fraction)
        assert previous <= len(part) < len(sent)  # more of the file, never fewer messages
        assert set(part) <= {(m[0], m[2], m[3]) for m in sent}  # only whole, unaltered messages
        previous = len(part)
    (tmp_path / "junk.mcap").write_bytes(b"not an mcap file at all")
    scan, messages = scan_mcap(tmp_path / "junk.mcap")
    assert list(messages) == [] and scan.damage


def test_repair_rewrites_a_forced_intact_bag_unchanged_and_refuses_a_folder_without_mcap(tmp_path) -> None:
    ep, sent = record(tmp_path, n=40)
    before = sorted(read_episode(ep), key=lambda m: (m[2], m[0]))
    report = repair_episode(ep, force=True)
    assert report.repaired and report.messages == len(sent) and report.bytes_lost == 0
    assert bag_is_intact(ep) and sorted(read_episode(ep), key=lambda m: (m[2], m[0])) == before
    (tmp_path / "empty" / "bag").mkdir(parents=True)
    with pytest.raises(EpisodeReadError, match="no .mcap file"):
        repair_episode(tmp_path / "empty")


def test_resample_ticks_never_use_a_future_sample() -> None:
    ticks = resample.make_ticks(1_000, 1_000 + 10 * 250, 250e-9)
    assert ticks.tolist() == list(range(1_000, 3_501, 250))
    assert resample.make_ticks(5, 4, 0.1).size == 0 and resample.make_ticks(0, 10, 0.0).size == 0
    stamps = np.array([900, 1_200, 1_700, 3_000], dtype=np.int64)
    idx = resample.latest_at_or_before(stamps, ticks)
    assert idx[0] == 0 and all(stamps[i] <= t for i, t in zip(idx, ticks, strict=True))
    assert resample.latest_at_or_before(stamps, np.array([899]))[0] == -1
    values = np.array([[0.0, 10.0], [3.0, 10.0], [8.0, 0.0], [8.0, 0.0]])
    out = resample.interpolate(stamps, values, np.array([800, 1_200, 1_450, 5_000]))
    assert np.allclose(out, [[0.0, 10.0], [3.0, 10.0], [5.5, 5.0], [8.0, 0.0]])  # held flat outside
    order = resample.sort_unique(np.array([30, 10, 20, 10, 30]))
    assert order.tolist() == [3, 2, 4]  # sorted, the last of equal stamps kept


def test_resample_clock_offsets_take_the_fastest_delivery_and_call_small_offsets_one_clock() -> None:
    rng = np.random.default_rng(0)
    log = np.sort(rng.integers(0, 5_000_000_000, 400))
    delay = rng.integers(1_000_000, 30_000_000, 400)
    offset = -2_000_000_000  # the header clock is 2 s behind the log clock (a sim started later)
    header = log + offset - delay
    est = resample.clock_offsets(log, header, np.array([1_000_000_000, 4_000_000_000]))
    assert np.all(np.abs(est - offset) < 3_000_000)  # within the fastest delivery's delay
    same = resample.clock_offsets(log, log - delay, np.array([2_500_000_000]))
    assert same.tolist() == [0]


def test_resample_frame_stats_count_gaps_as_drops_and_old_frames_as_stale() -> None:
    stamps = np.array([0, 100, 200, 500, 600], dtype=np.int64)  # two frames missing between 200 and 500
    ticks = np.array([50, 250, 460, 650], dtype=np.int64)
    chosen = resample.latest_at_or_before(stamps, ticks)
    stats = resample.frame_stats(stamps, ticks, chosen)
    assert (stats.frames, stats.dropped, stats.period_ms) == (5, 2, 100 / 1e6)
    assert stats.stale_ticks == 1  # tick 460 uses the frame of 200: 2.6 periods old (> 2.5)
    assert stats.repeated_ticks == 1  # ticks 250 and 460 both use the frame of 200
