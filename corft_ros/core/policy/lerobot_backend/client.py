"""The policy node's `lerobot` backend: a LeRobot policy served from LeRobot's own venv (`serve.py`, started and
stopped here), with the interface the node uses of a PolicyRuntime (config, predict, warmup, close).

The chunk contract is the node's: h points of absolute joint positions in robot.yaml order, dt = 1 / the robot's
action_rate_hz (the fps `bag export-lerobot` writes by default), stamped by the node with the observation's stamp.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from corft_ros.core.paths import share_dir
from corft_ros.core.policy.lerobot_backend import protocol
from corft_ros.core.policy.lerobot_backend.protocol import IMAGE_PREFIX, STATE
from corft_ros.core.policy.model_files import ModelError
from corft_ros.core.policy.runtime import ModelInterface, NonFiniteOutputError, camera_frame, state_input
from corft_ros.core.robot import RobotConfig

SERVER = Path(__file__).with_name("serve.py")
LEROBOT_VENV = ".venv-lerobot"


def default_python() -> Path:
    """`make lerobot-env`'s interpreter."""
    return share_dir() / LEROBOT_VENV / "bin" / "python"


@dataclass
class LeRobotModelConfig:
    """What the node reads of a model's config (the fields a PolicyRuntime's config has)."""

    joint_names: list[str]
    camera_names: list[str]
    chunk_size: int
    action_dt: float
    image_size: tuple[int, int]
    camera_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    policy_type: str = ""

    @property
    def action_dim(self) -> int:
        return len(self.joint_names)


class _Instructions:
    """LeRobot policies take the task as text (or ignore it): nothing to embed ahead of time."""

    def add(self, texts: Sequence[str]) -> None:
        pass


class LeRobotRuntime(ModelInterface):
    backend = "lerobot"
    best_of_n = 1

    def __init__(self, policy_dir: str | Path, robot: RobotConfig, python: str | Path | None = None,
                 device: str = "cpu", start_timeout_s: float = 180.0) -> None:
        policy_dir = Path(policy_dir)
        if not (policy_dir / "config.json").is_file():
            raise ModelError(f"{policy_dir}: no config.json (a LeRobot policy folder is what save_pretrained writes)")
        python = Path(python) if python else default_python()
        if not python.is_file():
            raise ModelError(f"no LeRobot interpreter at {python}: run `make lerobot-env` or set lerobot_python")
        self.device_name = device
        self.instructions = _Instructions()
        self.prefix = 0
        self.last_selection = None
        self._dir = Path(tempfile.mkdtemp(prefix="corft-lerobot-"))
        self._log = self._dir / "server.log"
        path = self._dir / "policy.sock"
        with open(self._log, "wb") as log:
            self._proc = subprocess.Popen(
                [str(python), str(SERVER), "--policy", str(policy_dir), "--socket", str(path), "--device", device],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            self._sock = self._connect(path, start_timeout_s)
            info = self._call({"op": "info"})[0]
            self.config = self._config(info, robot, policy_dir)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ process
    def _server_error(self) -> str:
        lines = [ln for ln in self._log.read_text(errors="replace").splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("error:")]
        return (errors or lines or ["(no output)"])[-1]

    def _connect(self, path: Path, timeout_s: float) -> socket.socket:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ModelError(f"the LeRobot policy server exited ({self._proc.returncode}): {self._server_error()}")
            if path.exists():
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(str(path))
                    return sock
                except OSError:
                    sock.close()
            time.sleep(0.05)
        raise ModelError(f"the LeRobot policy server did not start within {timeout_s:.0f} s: {self._server_error()}")

    def _call(self, fields: dict, arrays: dict | None = None) -> tuple[dict, dict]:
        protocol.send(self._sock, fields, arrays)
        header, out = protocol.recv(self._sock)
        if "error" in header:
            raise RuntimeError(f"LeRobot policy server: {header['error']}")
        return header, out

    def close(self) -> None:
        sock = getattr(self, "_sock", None)
        if sock is not None:
            try:
                protocol.send(sock, {"op": "close"})
                protocol.recv(sock)
            except (OSError, ConnectionError, protocol.ProtocolError):
                pass
            sock.close()
            self._sock = None
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    # ------------------------------------------------------------------ model
    @staticmethod
    def _config(info: dict, robot: RobotConfig, policy_dir: Path) -> LeRobotModelConfig:
        inputs = info["input_features"]
        action = info["output_features"].get("action")
        state = inputs.get(STATE)
        if action is None or state is None:
            raise ModelError(f"{policy_dir}: the policy needs {STATE} in and action out, it has "
                             f"{sorted(inputs)} -> {sorted(info['output_features'])}")
        for what, shape in (("action", action["shape"]), (STATE, state["shape"])):
            if list(shape) != [robot.dof]:
                raise ModelError(f"{policy_dir}: {what} has shape {shape}; robot '{robot.name}' has {robot.dof} "
                                 f"joints ({', '.join(robot.joint_names)})")
        sizes = {k[len(IMAGE_PREFIX):]: (int(f["shape"][1]), int(f["shape"][2]))
                 for k, f in inputs.items() if k.startswith(IMAGE_PREFIX)}
        if not sizes:
            raise ModelError(f"{policy_dir}: the policy has no {IMAGE_PREFIX}* input")
        first = next(iter(sizes.values()))
        return LeRobotModelConfig(joint_names=list(robot.joint_names), camera_names=list(sizes),
                                  chunk_size=int(info["chunk_size"]), action_dt=1.0 / robot.action_rate_hz,
                                  image_size=first, camera_sizes=sizes, policy_type=str(info["type"]))

    @property
    def device(self) -> str:
        return f"lerobot:{self.device_name}"

    def inputs(self, images: Mapping[str, np.ndarray], joint_state: np.ndarray | Sequence[float]) -> dict:
        """The policy's batch: observation.state [1, d] and each camera [1, 3, H, W], float32, images in [0, 1]."""
        arrays = {STATE: state_input(joint_state, self.config.joint_names)}
        for cam, (h, w) in self.config.camera_sizes.items():
            rgb = camera_frame(images, cam, h, w)
            arrays[IMAGE_PREFIX + cam] = (rgb.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0))
        return arrays

    def predict(self, images: Mapping[str, np.ndarray], joint_state: np.ndarray | Sequence[float],
                instruction: str) -> np.ndarray:
        """The absolute chunk [h, d] (float64): the LeRobot policy's predict_action_chunk for this observation."""
        _, out = self._call({"op": "predict", "task": instruction or ""}, self.inputs(images, joint_state))
        chunk = np.asarray(out["action"], dtype=np.float64).reshape(-1, self.config.action_dim)
        if len(chunk) != self.config.chunk_size:
            raise RuntimeError(f"LeRobot policy returned {len(chunk)} actions, its config says "
                               f"{self.config.chunk_size}")
        if not np.isfinite(chunk).all():
            raise NonFiniteOutputError(f"lerobot model output contains NaN/Inf ({int((~np.isfinite(chunk)).sum())} "
                                       f"of {chunk.size} values)")
        return chunk

    def warmup(self) -> float:
        images = {c: np.zeros((h, w, 3), np.uint8) for c, (h, w) in self.config.camera_sizes.items()}
        start = time.perf_counter()
        self.predict(images, np.zeros(self.config.action_dim), "")
        return time.perf_counter() - start


if __name__ == "__main__":  # pragma: no cover - manual: python -m corft_ros.core.policy.lerobot_backend.client DIR
    from corft_ros.core.robot import load_robot_config

    rt = LeRobotRuntime(sys.argv[1], load_robot_config())
    print(rt.config, f"warm-up {rt.warmup() * 1e3:.1f} ms")
    rt.close()
