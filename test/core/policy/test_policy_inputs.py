"""The policy node's input gating (core/policy/inputs.py): no chunk from a missing or stale input, and the line
that says which."""

from corft_ros.core.policy.inputs import input_problem

BASE = dict(instruction="pick", instruction_error=None, instruction_topic="/corft/instruction", joints_ok=True,
            missing_joints=[], never_received=set(), joint_stamps={"a": 9.9, "b": 9.95}, joint_error=None,
            joint_topic="/joint_states", camera_stamps={"front": 9.9, "wrist": 9.8},
            camera_topics={"front": "/camera/front/image_raw", "wrist": "/camera/wrist/image_raw"})


def check(**changes):
    return input_problem(10.0, 1.0, **{**BASE, **changes})


def test_fresh_inputs_pass():
    assert check() is None


def test_the_first_missing_input_is_named_with_why():
    assert check(instruction=None).message == "waiting for an instruction on /corft/instruction"
    bad = check(instruction=None, instruction_error="empty string")
    assert (bad.message, bad.level) == ("no usable instruction: empty string", "error")
    joints = check(joints_ok=False, missing_joints=["a", "b"], never_received={"b"}, joint_stamps={"a": 8.5})
    assert joints.message == "joints missing on /joint_states: a (1.50s old), b (never received)"
    assert joints.level == "warn"
    rejected = check(joints_ok=False, missing_joints=["a"], joint_error="3 names but 2 positions")
    assert (rejected.message, rejected.level) == ("no usable joint states: 3 names but 2 positions", "error")


def test_a_camera_older_than_max_age_counts_as_missing_like_one_never_seen():
    stale = check(camera_stamps={"front": 9.9, "wrist": 8.75})
    assert stale.camera == "wrist" and stale.message == "camera 'wrist' missing (image is 1.25s old on " \
                                                        "/camera/wrist/image_raw)"
    never = check(camera_stamps={"front": None, "wrist": 9.9})
    assert never.camera == "front" and "no image yet" in never.message
    assert check(camera_stamps={"front": 9.0, "wrist": 9.0}) is None  # exactly max_age old: still fresh
