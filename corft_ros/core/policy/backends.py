"""The policy runtimes behind one name: `load_runtime(model_dir, backend)` opens a model with the backend the policy
node's `backend` parameter names.

    onnx     OnnxPolicyRuntime (runtime.py): ONNX Runtime, TensorRT/CUDA/CPU providers by availability (the default)
    torch    TorchPolicyRuntime (runtime.py): the same exported weights in eager torch
    lerobot  LeRobotRuntime (lerobot_backend/): a LeRobot policy folder, served from LeRobot's own venv
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from corft_ros.core.policy.model_files import ModelError, load_metadata
from corft_ros.core.policy.runtime import ModelInterface, OnnxPolicyRuntime, PolicyRuntime, TorchPolicyRuntime
from corft_ros.core.robot import RobotConfig

BACKENDS = {
    "onnx": "ONNX Runtime on the exported actor/critic graphs",
    "torch": "eager torch on the exported weights",
    "lerobot": "a LeRobot policy folder, served from LeRobot's venv (make lerobot-env)",
}


def load_runtime(model_dir: str | Path, backend: str = "onnx", threads: int = 0, best_of_n: int | None = 1,
                 noise_std: float | None = None, seed: int | None = None, allow_encoder: bool = True,
                 device: str = "auto", providers: Sequence[str] | None = None, beta: float | None = None,
                 prefix: int = 0, robot: RobotConfig | None = None,
                 lerobot_python: str = "", proposals: str | None = None,
                 selection: str | None = None) -> PolicyRuntime | ModelInterface:
    """Validate models/<name>/ and open it with `backend` ('onnx' or 'torch'); ModelError names a bad file.
    best_of_n / beta / noise_std / proposals / selection None: what the model's policy.yaml `deploy` section asks
    for.
    Backend 'lerobot': `model_dir` is a LeRobot policy folder, served from LeRobot's venv for `robot`
    (core/policy/lerobot_backend/client.py)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "lerobot":
        if best_of_n is not None and best_of_n > 1:
            raise ModelError("backend lerobot serves the policy's own chunk: best_of_n must be 0 or 1")
        from corft_ros.core.policy.lerobot_backend.client import LeRobotRuntime

        return LeRobotRuntime(model_dir, robot, python=lerobot_python or None,
                              device="cpu" if device == "auto" else device)
    meta = load_metadata(model_dir)
    best_of_n = meta.deploy["best_of_n"] if best_of_n is None else best_of_n
    beta = meta.deploy["selection_beta"] if beta is None else beta
    noise_std = meta.deploy["noise_std"] if noise_std is None else noise_std
    proposals = meta.deploy["proposals"] if proposals is None else proposals
    selection = meta.deploy["selection"] if selection is None else selection
    common = {"best_of_n": best_of_n, "noise_std": noise_std, "seed": seed, "allow_encoder": allow_encoder,
              "beta": beta, "prefix": prefix, "proposals": proposals, "selection": selection}
    if backend == "onnx":
        return OnnxPolicyRuntime(meta, threads=threads, providers=providers, **common)
    return TorchPolicyRuntime(meta, device=device, threads=threads, **common)
