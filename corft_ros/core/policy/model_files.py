"""models/<name>/ read back: the format's file names and constants, ModelError, policy.yaml parsed and checked
(PolicyMeta, with its deploy section), each file checked against its sha256, the ONNX graphs' inputs and outputs
checked against the config, and the torch ChunkPolicy loaded from weights.safetensors; export.py writes the folder
and documents its files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from corft_ros.core.policy.config import PolicyConfig
from corft_ros.core.policy.proposals import PROPOSALS
from corft_ros.core.policy.text import InstructionEmbeddings
from corft_ros.core.robot import ConfigError

FORMAT = "corft_ros.policy/1"
ACTOR_FILE = "actor.onnx"
CRITIC_FILE = "critic.onnx"
SAMPLER_FILE = "sampler.onnx"  # models exported before 0.2 have none: the runtime then calls actor + critic
WEIGHTS_FILE = "weights.safetensors"
META_FILE = "policy.yaml"
NORM_KEYS = ("state_mean", "state_std", "action_mean", "action_std")


class ModelError(ConfigError):
    """A model file is missing, corrupt or does not match the others; the message names the file and why."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def io_shapes(config: PolicyConfig) -> dict[str, dict[str, list[Any]]]:
    """The ONNX graphs' input/output shapes (symbolic dims as names), as stored in policy.yaml and checked on load."""
    cams, (h, w), d = config.num_cameras, config.image_size, config.action_dim
    return {
        "actor": {
            "images": ["batch", cams, 3, h, w], "state": ["batch", d], "text": ["batch", config.text_dim],
            "chunk": ["batch", config.chunk_size, d],
        },
        "critic": {
            "images": [1, cams, 3, h, w], "state": [1, d], "text": [1, config.text_dim],
            "chunk": ["n", config.chunk_size, d], "q": [config.num_critics, "n", config.chunk_size],
        },
        "sampler": {
            "images": [1, cams, 3, h, w], "state": [1, d], "text": [1, config.text_dim],
            "noise": ["n", config.chunk_size, d], "chunk": ["n", config.chunk_size, d],
            "q": [config.num_critics, "n", config.chunk_size],
        },
    }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _load_state(model: Any, state: Mapping[str, Any], filename: str) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        raise ModelError(f"{filename}: missing tensor '{missing[0]}' (weights do not match the config)")
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        raise ModelError(f"{filename}: unexpected tensor '{unexpected[0]}' (weights do not match the config)")
    for key, ref in expected.items():
        if tuple(state[key].shape) != tuple(ref.shape):
            raise ModelError(f"{filename}: tensor '{key}' has shape {tuple(state[key].shape)}, "
                             f"the config needs {tuple(ref.shape)}")
    model.load_state_dict(dict(state), strict=True)


def deploy_section(deploy: Mapping[str, Any] | None) -> dict[str, Any]:
    """policy.yaml's `deploy`: best_of_n (1: the policy's own chunk), selection_beta (pessimism), proposals (the
    candidates around the regression head's chunk), noise_std (their size, in action standard deviations) and
    selection (critic | random: the control)."""
    d = deploy or {}
    return {"best_of_n": int(d.get("best_of_n", 1)), "selection_beta": float(d.get("selection_beta", 1.0)),
            "proposals": str(d.get("proposals", "white")), "noise_std": float(d.get("noise_std", 0.1)),
            "selection": str(d.get("selection", "critic"))}


@dataclass
class PolicyMeta:
    """policy.yaml, parsed and checked."""

    directory: Path
    config: PolicyConfig
    normalization: dict[str, np.ndarray]
    instructions: dict[str, np.ndarray]
    files: dict[str, dict[str, Any]]
    versions: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        return self.directory / name

    @property
    def deploy(self) -> dict[str, Any]:
        """How the model is meant to be deployed (policy.yaml `deploy`): best_of_n (1 = no selection) and
        selection_beta; a CO-RFT model asks for critic-guided selection, an IL model for none."""
        deploy = deploy_section(self.raw.get("deploy"))
        if deploy["proposals"] not in PROPOSALS or deploy["selection"] not in ("critic", "random"):
            raise ModelError(f"{self.directory / META_FILE}: deploy.proposals must be one of {', '.join(PROPOSALS)} "
                             f"and deploy.selection critic or random, got {deploy['proposals']!r}, "
                             f"{deploy['selection']!r}")
        return deploy


def load_metadata(model_dir: str | Path, verify_hashes: bool = True) -> PolicyMeta:
    """Read and validate models/<name>/policy.yaml (and, by default, every file's sha256)."""
    directory = Path(model_dir)
    if not directory.is_dir():
        raise ModelError(f"{directory}: model directory not found")
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise ModelError(f"{meta_path}: missing ({META_FILE} describes the model)")
    try:
        raw = yaml.safe_load(meta_path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelError(f"{meta_path}: not valid YAML ({_first_line(exc)})") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{meta_path}: expected a mapping at the top level")
    if raw.get("format") != FORMAT:
        raise ModelError(f"{meta_path}: format is {raw.get('format')!r}, this corft_ros reads {FORMAT!r}")
    for key in ("config", "normalization", "files"):
        if key not in raw:
            raise ModelError(f"{meta_path}: missing field '{key}'")
    try:
        config = PolicyConfig.from_dict(raw["config"], source=str(meta_path))
    except ConfigError as exc:
        raise ModelError(str(exc)) from None
    for key, value in (("joint_names", config.joint_names), ("chunk_size", config.chunk_size),
                       ("action_dt", config.action_dt)):
        if key in raw and raw[key] != value:
            raise ModelError(f"{meta_path}: {key} {raw[key]!r} contradicts config.{key} {value!r}")
    normalization = {}
    for key in NORM_KEYS:
        values = np.asarray(raw["normalization"].get(key, []), dtype=np.float64)
        if values.shape != (config.action_dim,) or not np.isfinite(values).all():
            raise ModelError(f"{meta_path}: normalization.{key} must be {config.action_dim} finite numbers")
        normalization[key] = values.astype(np.float32)
    try:
        instructions = InstructionEmbeddings(raw.get("instructions") or {}, dim=config.text_dim).table()
    except ValueError as exc:
        raise ModelError(f"{meta_path}: instructions: {exc}") from None
    files = raw["files"]
    if not isinstance(files, dict) or not all(isinstance(v, dict) and "sha256" in v for v in files.values()):
        raise ModelError(f"{meta_path}: files must map each file name to its sha256")
    meta = PolicyMeta(directory, config, normalization, instructions, files, dict(raw.get("versions") or {}), raw)
    if verify_hashes:
        for name in files:
            verify_file(meta, name)
    return meta


def verify_file(meta: PolicyMeta, name: str) -> Path:
    """The path of model file `name`, after checking it exists and matches policy.yaml's sha256."""
    path = meta.path(name)
    if name not in meta.files:
        raise ModelError(f"{path}: not listed in {META_FILE}")
    if not path.is_file():
        raise ModelError(f"{path}: missing")
    digest = _sha256(path)
    if digest != meta.files[name]["sha256"]:
        raise ModelError(f"{path}: sha256 {digest[:12]}… does not match {META_FILE} "
                         f"({str(meta.files[name]['sha256'])[:12]}…): the file is corrupt or from another model")
    return path


def check_onnx_io(meta: PolicyMeta, name: str, inputs: Mapping[str, list[Any]],
                  outputs: Mapping[str, list[Any]]) -> None:
    """Compare an ONNX session's inputs/outputs (name → shape) with what policy.yaml's config implies."""
    kind = {ACTOR_FILE: "actor", CRITIC_FILE: "critic", SAMPLER_FILE: "sampler"}[name]
    expected = io_shapes(meta.config)[kind]
    expected_inputs = ["images", "state", "text"] + {"actor": [], "critic": ["chunk"], "sampler": ["noise"]}[kind]
    expected_outputs = {"actor": ["chunk"], "critic": ["q"], "sampler": ["chunk", "q"]}[kind]
    path = meta.path(name)
    if list(inputs) != expected_inputs:
        raise ModelError(f"{path}: inputs {list(inputs)}, expected {expected_inputs}")
    if list(outputs) != expected_outputs:
        raise ModelError(f"{path}: outputs {list(outputs)}, expected {expected_outputs}")
    for key, shape in {**inputs, **outputs}.items():
        want = expected[key]
        got = list(shape)
        ok = len(got) == len(want) and all(
            isinstance(w, str) or not isinstance(g, int) or g == w for g, w in zip(got, want, strict=True)
        )
        if not ok:
            raise ModelError(f"{path}: '{key}' has shape {got}, {META_FILE} implies {want}")


def load_torch_policy(model_dir: str | Path | PolicyMeta) -> Any:
    """The ChunkPolicy of models/<name>/ from weights.safetensors (eval mode, CPU)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from corft_ros.core.policy.model import ChunkPolicy

    meta = model_dir if isinstance(model_dir, PolicyMeta) else load_metadata(model_dir)
    path = verify_file(meta, WEIGHTS_FILE)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a valid safetensors file ({_first_line(exc)})") from None
    model = ChunkPolicy(meta.config)
    _load_state(model, state, str(path))
    for key in NORM_KEYS:
        if not np.allclose(getattr(model, key).numpy(), meta.normalization[key], rtol=1e-5, atol=1e-6):
            raise ModelError(f"{path}: {key} differs from {META_FILE}'s normalization.{key}")
    return model.eval()
