"""The harness itself: real DDS round trips and robot config validation."""

import os

import pytest
from std_msgs.msg import String

from corft_ros.core.robot import ConfigError, load_robot_config, robot_config_from_dict


def test_dds_is_isolated_and_round_trips(ros):
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    import domains

    lo, hi = domains.block()
    assert lo <= domains.session() < domains.own(domains.OWN) <= hi  # the session stays in its block
    bench_lo, bench_hi = (int(x) for x in os.environ["CORFT_DOMAIN_RANGE"].split("-"))
    assert domains.own(domains.OWN) < bench_lo <= bench_hi <= hi
    log = ros.subscribe(String, "/harness/echo")
    pub = ros.publisher(String, "/harness/echo")
    ros.wait_for_subscribers(pub)
    pub.publish(String(data="hello"))
    messages = log.wait(lambda m: len(m) >= 1, timeout=5.0)
    assert messages[0].data == "hello"


def test_robot_config_is_the_single_source_of_truth():
    robot = load_robot_config()
    assert robot.dof == len(robot.joint_names) == len(robot.home)
    assert (robot.lower < robot.upper).all()
    assert robot.action_dt == pytest.approx(1.0 / robot.action_rate_hz)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.update(action_rate_hz=-5), "action_rate_hz must be a positive number"),
        (lambda r: r["joints"][0].update(lower=3, upper=1), "lower >= upper"),
        (lambda r: r["joints"][1].pop("max_velocity"), "lacks field 'max_velocity'"),
        (lambda r: r.update(home=[9.0] * 7), "outside the limits"),
    ],
)
def test_bad_robot_config_is_refused_with_the_field_named(mutate, message):
    import copy

    import yaml

    from corft_ros.core.paths import config_path

    data = yaml.safe_load(config_path("robot").read_text())
    data = copy.deepcopy(data)
    mutate(data["robot"])
    with pytest.raises(ConfigError, match=message):
        robot_config_from_dict(data)
