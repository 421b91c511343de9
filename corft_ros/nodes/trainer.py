"""trainer node: runs a training job (IL, then CO-RFT, then export) from its ROS parameters and reports
progress on /diagnostics. The logic is corft_ros.core.rl.trainer; this is the ROS edge.

Parameters: every training parameter of config/train.yaml (dotted: corft.gamma, dataset.image_size, ...)
plus `bags`, `robot_config`, `steps` (cap per stage, 0 = none) and `shutdown_when_done`.
"""

from __future__ import annotations

import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node

from corft_ros.core import topics
from corft_ros.core.node_params.trainer import TrainerParams, training_parameters
from corft_ros.core.robot import ConfigError, load_robot_config
from corft_ros.nodes.common import declare, declare_params, diagnostic_status, run_node
from corft_ros.nodes.qos import RELIABLE


class TrainerNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("trainer", **kwargs)
        from corft_ros.core.rl.trainer import config_from_params

        p = self.params = declare_params(self, TrainerParams)
        self.bags, self.steps_cap, self.shutdown_when_done = p.bags, p.steps, p.shutdown_when_done
        params = {}
        for name, (default, info) in training_parameters().items():
            params[name] = declare(self, name, default, info.description)
        if not self.bags:
            raise ConfigError("parameter bags: empty (the folder of recorded episodes)")
        self.robot = load_robot_config(p.robot_config or None)
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

    @property
    def rc(self) -> int:
        """The exit code of the job: 1 when it failed, else 0."""
        return 1 if self.state == "failed" else 0

    def close(self, timeout: float = 30.0) -> None:
        """Ask the job to stop after its current step and wait for it."""
        self._stop.set()
        self._thread.join(timeout)


def main(args: list[str] | None = None) -> int:
    return run_node(lambda: TrainerNode(), args, threads=2,
                    until=lambda node: node.shutdown_when_done and node.finished.is_set(),
                    exit_code=lambda node: node.rc)


if __name__ == "__main__":
    sys.exit(main())
