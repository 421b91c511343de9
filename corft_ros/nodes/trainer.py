"""trainer node: runs a training job (IL, then CO-RFT, then export) from its ROS parameters and reports
progress on /diagnostics. The logic is corft_ros.core.rl.trainer; this is the ROS edge.

Parameters: every training parameter of config/train.yaml (dotted: corft.gamma, dataset.image_size, ...)
plus `bags`, `robot_config`, `steps` (cap per stage, 0 = none) and `shutdown_when_done`.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import asdict, fields

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node

from corft_ros.core import topics
from corft_ros.core.robot import ConfigError, load_robot_config
from corft_ros.nodes._common import declare, diagnostic_status, run_node
from corft_ros.nodes.qos import RELIABLE

# PolicyConfig fields a training run may set (the rest follow the robot and the dataset)
POLICY_KEYS = ("chunk_size", "d_model", "heads", "ff_dim", "encoder_layers", "decoder_layers", "critic_layers",
               "num_critics", "cnn_channels", "keypoints", "dropout")

DESCRIPTIONS = {
    "stage": "il | rl | all",
    "name": "exported model name: <models_dir>/<name>/",
    "output": "run folder: checkpoints/, tensorboard/, train.json",
    "il_steps": "gradient steps of stage 1 (imitation learning)",
    "rl_steps": "gradient steps of stage 2 (CO-RFT)",
    "init_checkpoint": "policy checkpoint to start from ('' = scratch, or resume)",
    "resume": "continue from <output>/checkpoints/latest.pt when it exists",
    "strict": "a bad bag stops the job instead of being skipped",
}


def default_parameters() -> dict:
    """Flat dotted name -> default value of every training parameter (ROS-typable: no None)."""
    from corft_ros.core.policy.config import PolicyConfig
    from corft_ros.core.rl.trainer import TrainConfig

    flat: dict = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
            return
        name = prefix[:-1]
        if value is None:
            value = 0.0 if name.endswith("rate_hz") else ""
        if isinstance(value, tuple):
            value = list(value)
        flat[name] = value

    data = asdict(TrainConfig())
    data.pop("policy")
    data["rewards"].pop("gamma")  # the discount is corft.gamma (one value for rewards and TD targets)
    walk("", data)
    defaults = {f.name: f.default for f in fields(PolicyConfig) if f.name in POLICY_KEYS}
    defaults["cnn_channels"] = PolicyConfig(joint_names=["j"]).cnn_channels
    for key in POLICY_KEYS:
        flat[f"policy.{key}"] = defaults[key]
    return flat


class TrainerNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("trainer", **kwargs)
        from corft_ros.core.rl.trainer import config_from_params

        self.bags = str(declare(self, "bags", "episodes", "folder of recorded episodes (or one episode)"))
        robot_path = str(declare(self, "robot_config", "", "robot.yaml path ('' = bundled)")) or None
        self.steps_cap = int(declare(self, "steps", 0, "cap on gradient steps per stage (0 = none)"))
        self.shutdown_when_done = bool(declare(self, "shutdown_when_done", True, "exit when the job ends"))
        params = {}
        for name, default in default_parameters().items():
            params[name] = declare(self, name, default, DESCRIPTIONS.get(name, f"training parameter {name}"))
        if not self.bags:
            raise ConfigError("parameter bags: empty (the folder of recorded episodes)")
        if self.steps_cap < 0:
            raise ConfigError(f"parameter steps: must be >= 0, got {self.steps_cap}")
        self.robot = load_robot_config(robot_path)
        self.config = config_from_params(params)
        self.config.validate()

        self.diag_pub = self.create_publisher(
            DiagnosticArray, topics.DIAGNOSTICS, RELIABLE)
        self._lock = threading.Lock()
        self.state = "starting"  # starting | running | done | failed | stopped
        self.stage = ""
        self.step = 0
        self.total = 0
        self.values: dict[str, float] = {}
        self.error = ""
        self.export = ""
        self._started = time.monotonic()
        self._stop = threading.Event()
        self.finished = threading.Event()
        self.create_timer(1.0, self.publish_diagnostics)
        self._thread = threading.Thread(target=self._run, name="trainer-job", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the job
    def _progress(self, stage: str, step: int, total: int, logs: dict) -> None:
        with self._lock:
            self.state, self.stage, self.step, self.total = "running", stage, step, total
            self.values = {k: float(v) for k, v in logs.items()}

    def _run(self) -> None:
        from corft_ros.core.rl.trainer import train

        self.state = "running"
        log = self.get_logger()
        try:
            summary = train(self.bags, self.config, self.robot, steps_cap=self.steps_cap or None,
                            log=lambda m: log.info(m), on_progress=self._progress, should_stop=self._stop.is_set)
            with self._lock:
                self.export = str(summary.get("export", ""))
                self.state = "stopped" if self._stop.is_set() else "done"
            log.info(f"training {self.state}" + (f": exported {self.export}" if self.export else ""))
        except Exception as exc:  # every failure ends the job with its one-line reason
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            with self._lock:
                self.state, self.error = "failed", message
            log.error(f"training failed: {message}")
        finally:
            self.publish_diagnostics()
            self.finished.set()

    # ------------------------------------------------------------------ diagnostics
    def publish_diagnostics(self) -> None:
        with self._lock:
            level = {"failed": DiagnosticStatus.ERROR}.get(self.state, DiagnosticStatus.OK)
            if self.state == "running" and self.total:
                message = f"{self.stage.upper()} step {self.step}/{self.total}"
            else:
                message = self.error or self.state
            values = {"state": self.state, "stage": self.stage, "step": self.step, "total": self.total,
                      "elapsed_s": round(time.monotonic() - self._started, 1), "bags": self.bags}
            if self.export:
                values["export"] = self.export
            values.update(self.values)
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [diagnostic_status(f"{self.get_name()}: training", self.get_name(), level, message, values)]
        self.diag_pub.publish(msg)

    def close(self, timeout: float = 30.0) -> None:
        """Ask the job to stop after its current step and wait for it."""
        self._stop.set()
        self._thread.join(timeout)


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: TrainerNode(), args, threads=2,
                    until=lambda node: node.shutdown_when_done and node.finished.is_set(),
                    exit_code=lambda node: 1 if node.state == "failed" else 0)


if __name__ == "__main__":
    sys.exit(main())
