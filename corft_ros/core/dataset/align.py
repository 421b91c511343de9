"""A bag's streams resampled onto the control ticks: the tick grid (whole multiples of dt while every stream runs),
command and takeover times moved onto the header clock, joint positions interpolated at each tick, the command in
force at each tick (array commands, or JointTrajectories evaluated with ros2_control's replace semantics), the latest
camera frame at or before each tick (never a future one) and the per-camera frame stats.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from corft_ros.core.dataset import resample
from corft_ros.core.dataset.episode import EpisodeProblem
from corft_ros.core.dataset.frames import FrameCells
from corft_ros.core.dataset.streams import Streams


def onto_header_clock(streams: Streams) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray, int]:
    """(log time -> header-clock offsets, command times on the header clock, the median offset); unstamped
    trajectories are moved onto the header clock in place."""
    # Commands carry no header: their time is the bag's log time. The header stamps may live on another clock
    # (sim time, which also drifts from the wall clock when the sim runs slower than real time): move command
    # times onto the header clock with the offset the joint states show around each command (about zero on a
    # real robot, where both are the same clock). A trajectory with a header stamp is already on it.
    to_header = functools.partial(resample.clock_offsets, np.asarray(streams.js_log, np.int64),
                                  np.asarray(streams.js_header, np.int64))
    cmd_h = np.asarray(streams.cmd_t, dtype=np.int64)
    trajectories = streams.trajectories
    if streams.cmd_t:
        cmd_offsets = to_header(cmd_h)
        cmd_h = cmd_h + cmd_offsets
        offset = int(np.median(cmd_offsets))
    else:
        unstamped = [i for i, tr in enumerate(trajectories) if not tr[3]]
        shifts = to_header(np.array([trajectories[i][0] for i in unstamped], dtype=np.int64)) if unstamped else []
        for i, shift in zip(unstamped, shifts, strict=True):
            start, times, pos, _ = trajectories[i]
            trajectories[i] = (start + int(shift), times + int(shift), pos, True)
        offset = int(np.median(shifts)) if len(shifts) else 0
    return to_header, cmd_h, offset


def tick_grid(bag: Path, streams: Streams, cmd_h: np.ndarray, dt: int, min_ticks: int) -> np.ndarray:
    """The control ticks (whole multiples of dt) from when every stream has started until the first one ends;
    raises EpisodeProblem when there are fewer than `min_ticks`."""
    names = streams.robot.joint_names
    cells = streams.cells.values()
    starts = [min(c.stamps) for c in cells] + [min(streams.js_t[n][0] for n in names)]
    stops = [max(c.stamps) for c in cells] + [min(max(streams.js_t[n]) for n in names)]
    if streams.cmd_t:
        starts.append(int(cmd_h.min()))
    else:
        starts.append(min(t[0] for t in streams.trajectories))
    first_tick = -(-max(starts) // dt) * dt
    ticks = resample.make_ticks(first_tick, min(stops), dt / 1e9)
    if len(ticks) < min_ticks:
        raise EpisodeProblem(
            f"{bag}: only {len(ticks)} control ticks where all streams overlap (need {min_ticks})"
        )
    return ticks


def state_at(streams: Streams, ticks: np.ndarray) -> np.ndarray:
    """[T, d] float64 joint positions interpolated at the ticks, in robot.yaml order."""
    state = np.empty((len(ticks), streams.robot.dof), dtype=np.float64)
    for k, n in enumerate(streams.robot.joint_names):
        t = np.asarray(streams.js_t[n], dtype=np.int64)
        q = np.asarray(streams.js_q[n], dtype=np.float64)
        keep = resample.sort_unique(t)
        state[:, k] = resample.interpolate(t[keep], q[keep, None], ticks)[:, 0]
    return state


def action_at(streams: Streams, cmd_h: np.ndarray, ticks: np.ndarray) -> np.ndarray:
    """[T, d] the command in force at each tick: the latest array command, else the trajectories evaluated."""
    if streams.cmd_t:
        q = np.stack(streams.cmd_q)
        keep = resample.sort_unique(cmd_h)
        idx = resample.latest_at_or_before(cmd_h[keep], ticks)
        return q[keep][np.maximum(idx, 0)]
    return _evaluate_trajectories(streams.trajectories, ticks)


def images_at(bag: Path, cells: dict[str, FrameCells], frames_of: dict, ticks: np.ndarray, dt: int,
               stale_factor: float) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """(camera -> [T, H, W, 3] the latest frame at or before each tick, camera -> frame stats); raises
    EpisodeProblem when a camera has no frame by the first tick."""
    images: dict[str, np.ndarray] = {}
    frame_report: dict[str, dict] = {}
    for cam, cell in cells.items():
        decoded = frames_of[cam]
        keys = np.array(sorted(decoded), dtype=np.int64)
        idx = np.searchsorted(keys, ticks // dt, side="right") - 1
        if np.any(idx < 0):
            raise EpisodeProblem(f"{bag}: camera {cam} has no frame at or before tick {int(ticks[0])}")
        frames = [decoded[int(keys[i])] for i in idx]
        images[cam] = np.stack([f[1] for f in frames])
        chosen_stamps = np.array([f[0] for f in frames], dtype=np.int64)
        if np.any(chosen_stamps > ticks):  # the invariant the whole pipeline rests on
            raise AssertionError(f"{bag}: camera {cam} picked a future frame")
        all_stamps = np.sort(np.asarray(cell.stamps, dtype=np.int64))
        chosen_idx = np.searchsorted(all_stamps, chosen_stamps, side="left")
        frame_report[cam] = resample.frame_stats(all_stamps, ticks, chosen_idx, stale_factor).as_dict()
    return images, frame_report


def takeover_flags(changes: list[tuple[int, bool]], ticks: np.ndarray, to_header) -> np.ndarray:
    """[T] bool: whether a takeover held the arm at each tick (the latest corft/intervention state at or before the
    tick, its log time moved onto the header clock like the commands'; the bag starts with the latched state)."""
    flags = np.zeros(len(ticks), dtype=bool)
    if not changes:
        return flags
    times = np.array([t for t, _ in changes], dtype=np.int64)
    states = np.array([v for _, v in changes], dtype=bool)
    times = times + to_header(times)
    keep = resample.sort_unique(times)
    idx = resample.latest_at_or_before(times[keep], ticks)
    flags[idx >= 0] = states[keep][idx[idx >= 0]]
    return flags


def _evaluate_trajectories(trajs: list, ticks: np.ndarray) -> np.ndarray:
    """Each new trajectory replaces the previous one (ros2_control semantics); points interpolated."""
    trajs = sorted(trajs, key=lambda x: x[0])
    starts = np.array([t[0] for t in trajs], dtype=np.int64)
    which = np.maximum(np.searchsorted(starts, ticks, side="right") - 1, 0)
    out = np.empty((len(ticks), trajs[0][2].shape[1]))
    for i, tick in enumerate(ticks):
        _, times, pos, _ = trajs[which[i]]
        out[i] = resample.interpolate(times, pos, np.array([tick]))[0] if len(times) > 1 else pos[0]
    return out
