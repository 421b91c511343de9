"""The executor's diagnostics status (core/chunking/status.py): the line an operator reads, and the repeated
warning about an output nobody listens to."""

from corft_ros.core.chunking.executor import TickState
from corft_ros.core.chunking.status import ListenerWatch, executor_status


def test_status_line_by_state_lifecycle_missing_joints_and_deaf_outputs():
    assert executor_status(TickState.TRACKING, True, [], []) == ("ok", "tracking chunks")
    assert executor_status(TickState.STALE, True, [], [])[0] == "warn"
    assert executor_status(TickState.NO_STATE, True, ["finger_joint"], []) == (
        "warn", "no recent /joint_states for finger_joint: not commanding")
    assert executor_status(TickState.STALE, False, ["finger_joint"], ["/x"]) == (
        "ok", "inactive (lifecycle): commanding nothing")
    level, message = executor_status(TickState.TRACKING, True, [], ["/gripper_controller/commands"])
    assert level == "warn" and "no subscriber on /gripper_controller/commands" in message


def test_a_deaf_output_is_warned_at_once_then_every_repeat_while_it_lasts():
    watch = ListenerWatch(repeat_s=10.0)
    assert watch.update({"arm": 1, "gripper": 0}, 0.0, warn=False) == (["gripper"], [])  # inactive: no warning
    assert watch.update({"arm": 1, "gripper": 0}, 1.0) == (["gripper"], ["gripper"])
    assert watch.update({"arm": 1, "gripper": 0}, 5.0) == (["gripper"], [])
    assert watch.update({"arm": 1, "gripper": 0}, 11.0) == (["gripper"], ["gripper"])
    assert watch.update({"arm": 1, "gripper": 1}, 12.0) == ([], [])
    assert watch.update({"arm": 1, "gripper": 0}, 13.0) == (["gripper"], ["gripper"])  # back: warned at once
