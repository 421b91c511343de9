"""The executor node's parameters (the one declaration: the node declares from it, config YAMLs are checked
against it). Per-output parameters `<output>.kind`, `<output>.controller`, `<output>.joints` are `OutputParams`."""

from __future__ import annotations

from dataclasses import dataclass

from corft_ros.core.chunking import MODES, ExecutorConfig
from corft_ros.core.chunking.outputs import KINDS
from corft_ros.core.params import param

TIMINGS = ("thread", "timer")


@dataclass
class ExecutorParams:
    robot_config: str = param("", "robot.yaml path ('' = bundled config/robot.yaml)")
    managed: bool = param(False, "true: a lifecycle manager configures and activates this node (commanding only "
                                 "while active); false: it activates itself")
    mode: str = param(ExecutorConfig.mode, "blending mode", choices=MODES, dynamic=True)
    m: float = param(ExecutorConfig.m,
                     "temporal ensembling: weight exp(-m*i), i = 0 the oldest chunk (m < 0: newest weighs "
                     "more)", dynamic=True)
    k: int = param(ExecutorConfig.k,
                   "receding_horizon: actions of a chunk played before switching to the newest", dynamic=True,
                   min=1)
    staleness_timeout: float = param(ExecutorConfig.staleness_timeout,
                                     "s; newest chunk's stamp older than this -> hold (open_loop with one "
                                     "chunk per horizon needs >= horizon * dt)", dynamic=True, above=0)
    max_lead: float = param(ExecutorConfig.max_lead,
                            "s; chunks stamped further in the future are refused (clock mismatch)",
                            dynamic=True, min=0)
    intervention_timeout: float = param(ExecutorConfig.intervention_timeout,
                                        "s; a takeover source (sensor_msgs/JointState on "
                                        "corft/intervention/command) silent this long hands the arm back to "
                                        "the policy", dynamic=True, above=0)
    start_idle: bool = param(ExecutorConfig.start_idle,
                             "command nothing until the first episode 'start' on /corft/episode/events "
                             "(after a 'stop' it is idle until the next 'start' anyway)")
    control_rate_hz: float = param(0.0, "control loop rate (0 = robot.yaml control_rate_hz)", min=0)
    output: str = param("forward", "kind of the first output (forward: std_msgs/Float64MultiArray, jtc: "
                                   "trajectory_msgs/JointTrajectory)", choices=KINDS)
    controller: str = param("", "the first output's controller name ('' = forward_position_controller for "
                                "forward, arm_controller for jtc)")
    controller_joints: list = param([], "the first output's joints, in the controller's order (default: "
                                        "robot.yaml joint names)", array="string")
    outputs: list = param(["arm"], "command outputs; each has <name>.kind, <name>.controller and <name>.joints "
                                   "(the first defaults to output, controller, controller_joints)", array="string")
    jtc_point_spacing: float = param(0.0, "s between jtc waypoints after the first (0 = robot action dt)",
                                     dynamic=True, min=0)
    jtc_max_points: int = param(50, "most waypoints per jtc message", dynamic=True, min=1)
    joint_state_max_age: float = param(1.0, "s; a joint whose latest /joint_states value is older counts as "
                                            "missing (joint states may come from several publishers)", above=0)
    timing: str = param("thread", "control loop (thread: own thread sleeping to each tick on ROS time; timer: "
                                  "an rclpy timer)", choices=TIMINGS)
    thread_priority: int = param(50, "SCHED_FIFO priority of the loop thread (1-99; 0 = normal scheduling; falls "
                                     "back with a warning if refused)", min=0, max=99)
    gil_switch_interval_ms: float = param(0.25, "process-wide sys.setswitchinterval (ms) so the loop thread gets "
                                                "the GIL soon after waking (0 = leave Python's 5 ms)", min=0)


@dataclass
class OutputParams:
    """`<output>.kind`, `<output>.controller`, `<output>.joints` of each name in `outputs`."""

    kind: str = param("forward", "the output's kind", choices=KINDS)
    controller: str = param("", "the output's controller name ('' = the default for its kind)")
    joints: list = param([], "the output's joints in the controller's order", array="string")


def executor_config(p: ExecutorParams, control_period: float, start_idle: bool) -> ExecutorConfig:
    """The chunk executor's config from the node's parameters; the control period and start_idle are fixed when the
    node starts (a parameter change keeps them)."""
    return ExecutorConfig(control_period=control_period, mode=p.mode, m=p.m, k=p.k,
                          staleness_timeout=p.staleness_timeout, max_lead=p.max_lead, start_idle=start_idle,
                          intervention_timeout=p.intervention_timeout)
