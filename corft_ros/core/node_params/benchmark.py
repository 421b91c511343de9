"""The benchmark node's parameters (the one declaration)."""

from __future__ import annotations

from dataclasses import dataclass

from corft_ros.core.params import param
from corft_ros.core.sim.rollout import RolloutConfig


@dataclass
class BenchmarkParams:
    robot_config: str = param("", "robot.yaml path ('' = bundled)")
    sim: bool = param(True, "true: sim reset/success services; false: a real arm, the operator resets and labels")
    arm: str = param("", "name of what is benchmarked (policy id in the episodes; '' = policy); a path gives its "
                         "last part")
    trials: int = param(10, "trials per region (autostart)", min=1)
    regions: list = param(["seen"], "start regions: seen, unseen", array="string")
    timeout_s: float = param(30.0, "time limit of a trial (s, node clock)", above=0)
    first_seed: int = param(0, "sim reset seed of the first round (+1 per round)")
    output_dir: str = param("", "report folder ('' = bench/<date-time>); an existing trials.csv there is resumed")
    autostart: bool = param(True, "run the schedule on start (false: driven by corft-ros benchmark)")
    shutdown_when_done: bool = param(True, "autostart: exit when the schedule is done (the exit code says how it "
                                           "ended: 0 every trial ran, 1 errors, 2 no report folder, 130 quit)")
    stall_timeout_s: float = param(15.0, "wall s without progress of the node clock (/clock) before a trial is "
                                         "abandoned", above=0)
    max_errors: int = param(3, "consecutive trials without a signal before the run stops", min=1)
    settle_s: float = param(RolloutConfig.settle_s, "wait after reset before the episode starts (s)", min=0)
    service_timeout_s: float = param(20.0, "service wait/answer limit (s)", above=0)
    instruction: str = param("", "instruction published on /corft/instruction ('' = the sim's, from its reset "
                                 "reply)")
    sim_node: str = param("sim_arm", "sim node name (its region/seed are set)")
    executor_node: str = param("executor", "executor node name (~/clear)")
