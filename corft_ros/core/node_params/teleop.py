"""The teleop node's parameters (the one declaration)."""

from __future__ import annotations

from dataclasses import dataclass

from corft_ros.core import topics
from corft_ros.core.params import param

SOURCES = ("leader", "joy", "keyboard", "scripted")


@dataclass
class TeleopParams:
    robot_config: str = param("", "robot.yaml path (empty = the package's)")
    source: str = param("leader", "where commands come from", choices=SOURCES)
    command_topic: str = param(topics.controller_commands(topics.FORWARD_CONTROLLER), "forward controller input")
    rate_hz: float = param(0.0, "command rate (0 = robot.yaml action_rate_hz)", min=0)
    velocity_scale: float = param(1.0, "fraction of each joint's max_velocity allowed, in (0, 1]", above=0, max=1)
    leader_topic: str = param(topics.LEADER_JOINT_STATES, "leader arm joint states")
    leader_joint_map: list = param([], "'leader_name=follower_name' pairs (identity when absent)", array="string")
    leader_offsets: list = param([], "added to mapped leader positions, robot order ([] = zeros)", array="double")
    leader_scales: list = param([], "multiplies leader positions, robot order ([] = ones)", array="double")
    joy_topic: str = param(topics.JOY, "sensor_msgs/Joy input")
    joy_axes: list = param([0, 1, 4, 3, 6, 7, -1], "axis per robot joint (-1 = none)", array="integer")
    joy_speed: float = param(0.5, "rad/s at full stick deflection")
    joy_deadzone: float = param(0.1, "stick dead zone, in [0, 1)", min=0)
    joy_enable_button: int = param(-1, "dead-man button (-1 = none)")
    joy_gripper_open_button: int = param(0, "button opening the gripper (-1 = none)")
    joy_gripper_close_button: int = param(1, "button closing the gripper (-1 = none)")
    gripper_joint: str = param("finger_joint", "the gripper joint ('' = none)")
    keyboard_step: float = param(0.05, "rad per key press", above=0)
    seed: int = param(0, "scripted: seed of the first demo (incremented per demo)")
    human_like: bool = param(True, "scripted: slow, uneven, hesitant, like a person")
    input_timeout_s: float = param(0.5, "hold position when the input is older than this", above=0)
    intervention: bool = param(False, "take over a deployed policy through the executor instead of commanding the "
                                      "controller: targets go to corft/intervention/command while engaged (joy, "
                                      "leader: intervention_button held; keyboard: space toggles; scripted, in the "
                                      "sim: when the policy is stuck), one empty message when let go")
    intervention_button: int = param(-1, "Joy button held to take over (a dead-man or a pedal on joy_topic; -1 = "
                                         "joy_enable_button)")
    stuck_window_s: float = param(3.0, "intervention with source scripted (sim): take over when the task's progress "
                                       "(|pinch - cube| + |cube - goal|) made no new best for this long (sim s)",
                                  above=0)
    stuck_min_progress_m: float = param(0.01, "scripted intervention: what counts as progress (m)", above=0)
    takeover_s: float = param(3.0, "scripted intervention: how long a takeover lasts (or until its plan ends)",
                              above=0)
    takeover_cooldown_s: float = param(2.0, "scripted intervention: after handing back, no takeover for this long",
                                       min=0)
    leader_max_offset: float = param(0.2, "intervention with a leader: taking over is refused while any leader "
                                          "joint is further than this (rad) from the follower (move it there first)",
                                     above=0)
