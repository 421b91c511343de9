"""Policy runtimes: one interface, two backends (ONNX Runtime, torch) over an exported models/<name>/.

    runtime = load_runtime("models/default", backend="onnx")
    chunk = runtime.predict({"front": rgb, "wrist": rgb}, joint_positions, "pick up the cube")  # [h, d] absolute
    q = runtime.score(Observation(images, joint_positions, instruction), chunks)                # [num_critics, N, h]

ONNX Runtime picks its execution providers by availability, in the order TensorRT, CUDA, CPU (the `gpu` extra
installs onnxruntime-gpu; the code is the same). The torch backend runs on CUDA when present.
Critic-guided chunk selection (best_of_n > 1): N candidates — the flow head's chunks from N noise draws, or the
regression head's chunk and `proposals` around it (core/policy/proposals.py: white noise of `noise_std` action
standard deviations, smooth offsets, time-warped copies) — candidate 0 always the policy's own; each scored by the
pessimistic value of the prefix that will execute (`prefix` actions: the policy period / the chunk dt; 0 = the whole
chunk): mean over critic heads − `beta` · their std. `selection: random` picks a candidate at random instead (the
control that tells what the critic's choice adds); the values are computed either way and `last_selection` says
what was chosen and how the values spread. White noise runs as one batched call of sampler.onnx (models exported
before it, and the other proposals: actor + critic).
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from corft_ros.core.images import ImageError, check_rgb8, resize
from corft_ros.core.policy.model_files import (
    ACTOR_FILE,
    CRITIC_FILE,
    SAMPLER_FILE,
    ModelError,
    PolicyMeta,
    check_onnx_io,
    load_torch_policy,
    verify_file,
)
from corft_ros.core.policy.proposals import PROPOSALS, propose
from corft_ros.core.policy.text import InstructionEmbeddings
from corft_ros.core.robot import check_finite

PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


class NonFiniteOutputError(RuntimeError):
    """The model produced NaN/Inf; the chunk must not be used."""


class MissingCameraError(ImageError):
    """An image the model needs was not given; the message names the camera."""


@dataclass
class Observation:
    images: Mapping[str, np.ndarray]  # camera name → HxWx3 uint8 RGB
    joint_state: np.ndarray  # [d] absolute joint positions, canonical order
    instruction: str


# The policy node's selection message (std_msgs/Float64MultiArray): the chunk's stamp, then Selection.as_array()
SELECTION_FIELDS = ("stamp_s", "index", "value", "best_value", "worst_value", "candidates")


@dataclass
class Selection:
    """What best-of-N chose in the last predict(): the candidate's index (0 = the policy's own chunk), its value and
    every candidate's value (the spread tells how much the critic cares)."""

    index: int
    value: float
    candidates: int
    values: np.ndarray | None = None

    @property
    def spread(self) -> float:
        """max − min of the finite candidate values (0 with fewer than two)."""
        v = self.values[np.isfinite(self.values)] if self.values is not None else np.empty(0)
        return float(v.max() - v.min()) if len(v) > 1 else 0.0

    def as_array(self) -> list[float]:
        """[index, chosen value, best value, worst value, candidates] (the policy node's selection message)."""
        v = self.values[np.isfinite(self.values)] if self.values is not None else np.array([self.value])
        return [float(self.index), self.value, float(v.max()), float(v.min()), float(self.candidates)]


SELECTIONS = ("critic", "random")


def camera_frame(images: Mapping[str, np.ndarray], name: str, height: int, width: int) -> np.ndarray:
    """Camera `name`'s frame as HxWx3 uint8 RGB at the model's size; MissingCameraError / ImageError naming it."""
    if name not in images or images[name] is None:
        raise MissingCameraError(f"no image from camera '{name}'")
    return resize(check_rgb8(images[name], f"camera '{name}'"), height, width)


def state_input(joint_state: np.ndarray | Sequence[float], joint_names: Sequence[str]) -> np.ndarray:
    """The joint state as the model's [1, d] float32 input; ValueError for a wrong size or a NaN/Inf joint."""
    state = np.asarray(joint_state, dtype=np.float64).reshape(-1)
    if state.shape != (len(joint_names),):
        raise ValueError(f"joint_state has {state.size} values, the model needs {len(joint_names)} "
                         f"({', '.join(joint_names)})")
    check_finite(state, list(joint_names), "joint_state")
    return state.astype(np.float32)[None]


class ModelInterface:
    """What the policy node reads of a runtime, derived from its `config` (ours: PolicyConfig; the lerobot backend's
    LeRobotModelConfig)."""

    config: Any

    @property
    def joint_names(self) -> list[str]:
        return list(self.config.joint_names)

    @property
    def camera_names(self) -> list[str]:
        return list(self.config.camera_names)

    @property
    def chunk_size(self) -> int:
        return self.config.chunk_size

    @property
    def action_dt(self) -> float:
        return self.config.action_dt

    @property
    def device(self) -> str:
        return "cpu"


class PolicyRuntime(ModelInterface, ABC):
    backend = ""

    def __init__(self, meta: PolicyMeta, best_of_n: int = 1, noise_std: float = 0.1, seed: int | None = None,
                 allow_encoder: bool = True, beta: float = 1.0, prefix: int = 0, proposals: str = "white",
                 selection: str = "critic") -> None:
        if proposals not in PROPOSALS:
            raise ValueError(f"proposals must be one of {', '.join(PROPOSALS)}, got {proposals!r}")
        if selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}, got {selection!r}")
        if proposals != "white" and meta.config.stochastic:
            raise ValueError(f"proposals {proposals!r} need a regression head: a flow head's candidates are its own "
                             "samples (proposals: white)")
        if best_of_n < 1:
            raise ValueError(f"best_of_n must be >= 1, got {best_of_n}")
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if not 0 <= prefix <= meta.config.chunk_size:
            raise ValueError(f"prefix must be 0..{meta.config.chunk_size} (0 = the whole chunk), got {prefix}")
        self.meta = meta
        self.config = meta.config
        self.best_of_n = int(best_of_n)
        self.noise_std = float(noise_std)
        self.beta = float(beta)
        self.prefix = int(prefix) or meta.config.chunk_size
        self.proposals = proposals
        self.selection = selection
        self.rng = np.random.default_rng(seed)
        self.instructions = InstructionEmbeddings(meta.instructions, dim=meta.config.text_dim,
                                                  allow_encoder=allow_encoder)
        self.last_selection: Selection | None = None
        self._action_std = meta.normalization["action_std"].astype(np.float32)


    # ------------------------------------------------------------------ inputs
    def prepare(self, images: Mapping[str, np.ndarray], joint_state: np.ndarray | Sequence[float],
                instruction: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Model inputs (images [1, n, 3, H, W] float32 in [0, 1], state [1, d], text [1, E]); wrong sizes resized."""
        h, w = self.config.image_size
        stacked = np.empty((1, self.config.num_cameras, 3, h, w), dtype=np.float32)
        for i, name in enumerate(self.config.camera_names):
            stacked[0, i] = camera_frame(images, name, h, w).transpose(2, 0, 1)
        stacked *= 1.0 / 255.0
        state = state_input(joint_state, self.config.joint_names)
        text = self.instructions.get(instruction)
        return stacked, state, text[None]

    # ------------------------------------------------------------------ API
    def predict(self, images: Mapping[str, np.ndarray], joint_state: np.ndarray | Sequence[float],
                instruction: str) -> np.ndarray:
        """The absolute chunk [h, d] (float64) for one observation; NonFiniteOutputError on NaN/Inf."""
        inputs = self.prepare(images, joint_state, instruction)
        if self.best_of_n == 1:
            chunk = self._actor(*inputs)[0]
            self.last_selection = None
        else:
            candidates, q = self.sample(*inputs)
            values = self.selection_values(q)
            pick = int(self.rng.integers(len(candidates))) if self.selection == "random" else int(np.argmax(values))
            chunk = candidates[pick]
            self.last_selection = Selection(pick, float(values[pick]), len(candidates), values)
        if not np.isfinite(chunk).all():
            raise NonFiniteOutputError(f"{self.backend} model output contains NaN/Inf "
                                       f"({int((~np.isfinite(chunk)).sum())} of {chunk.size} values)")
        return chunk.astype(np.float64)

    def sample(self, images: np.ndarray, state: np.ndarray, text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """best_of_n candidate chunks [N, h, d] (candidate 0 the noiseless one) and their q [M, N, h]."""
        n = self.best_of_n
        if self.proposals != "white":
            base = self._actor(images, state, text)[0]
            candidates = propose(base, n, self.proposals, self.rng, self.noise_std, self._action_std)
            return candidates, self._critic(images, state, text, candidates)
        noise = self.rng.standard_normal((n, *self._chunk_shape)).astype(np.float32)
        noise[0] = 0.0
        if not self.config.stochastic:
            noise *= self.noise_std
        if self.has_sampler:
            return self._sampler(images, state, text, noise)
        if self.config.stochastic:
            raise ModelError(f"{self.meta.directory}: a flow-head model needs sampler.onnx for best_of_n > 1")
        base = self._actor(images, state, text)[0]
        candidates = base[None] + noise * self._action_std
        return candidates, self._critic(images, state, text, candidates)

    def selection_values(self, q: np.ndarray) -> np.ndarray:
        """[N] pessimistic value of each candidate's executed prefix: mean over heads − beta · std (NaN → −inf)."""
        prefix_q = q[:, :, self.prefix - 1]
        values = prefix_q.mean(axis=0) - (self.beta * prefix_q.std(axis=0, ddof=1) if q.shape[0] > 1 else 0.0)
        return np.where(np.isfinite(values), values, -np.inf)

    @property
    def has_sampler(self) -> bool:
        return SAMPLER_FILE in self.meta.files

    def score(self, obs: Observation, chunks: np.ndarray) -> np.ndarray:
        """Q [num_critics, N, h] of absolute chunks [N, h, d] (or one [h, d]) at `obs`: every head, every prefix."""
        arr = np.asarray(chunks, dtype=np.float32)
        if arr.ndim == 2:
            arr = arr[None]
        want = (self.config.chunk_size, self.config.action_dim)
        if arr.ndim != 3 or arr.shape[1:] != want:
            raise ValueError(f"chunks must be [N, {want[0]}, {want[1]}], got {list(np.shape(chunks))}")
        inputs = self.prepare(obs.images, obs.joint_state, obs.instruction)
        q = self._critic(*inputs, arr)
        if not np.isfinite(q).all():
            raise NonFiniteOutputError(f"{self.backend} critic output contains NaN/Inf")
        return q

    def warmup(self) -> float:
        """Run one inference on blank inputs (cold start: allocations, kernel selection); returns its seconds."""
        h, w = self.config.image_size
        images = np.zeros((1, self.config.num_cameras, 3, h, w), np.float32)
        state = self.meta.normalization["state_mean"][None].astype(np.float32)
        text = np.zeros((1, self.config.text_dim), np.float32)
        start = time.perf_counter()
        self._actor(images, state, text)
        if self.best_of_n > 1:
            seeded = self.rng
            self.rng = np.random.default_rng(0)  # the warm-up must not use up the seeded candidate draws
            try:
                self.sample(images, state, text)
            finally:
                self.rng = seeded
        return time.perf_counter() - start

    @property
    def _chunk_shape(self) -> tuple[int, int]:
        return (self.config.chunk_size, self.config.action_dim)

    @abstractmethod
    def _actor(self, images: np.ndarray, state: np.ndarray, text: np.ndarray) -> np.ndarray:
        """Absolute chunks [B, h, d] float32."""

    @abstractmethod
    def _critic(self, images: np.ndarray, state: np.ndarray, text: np.ndarray, chunks: np.ndarray) -> np.ndarray:
        """Q [num_critics, N, h] float32 for absolute chunks [N, h, d] at one observation."""

    @abstractmethod
    def _sampler(self, images: np.ndarray, state: np.ndarray, text: np.ndarray,
                 noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(absolute chunks [N, h, d], q [num_critics, N, h]) for noise [N, h, d] at one observation."""


def select_providers(preferred: Sequence[str] | None = None) -> list[str]:
    """ONNX Runtime execution providers to use, best first, among those this onnxruntime build has."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    order = list(preferred) if preferred else list(PROVIDER_PREFERENCE)
    chosen = [p for p in order if p in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


class OnnxPolicyRuntime(PolicyRuntime):
    backend = "onnx"

    def __init__(self, meta: PolicyMeta, threads: int = 0, providers: Sequence[str] | None = None, **kwargs) -> None:
        super().__init__(meta, **kwargs)
        import onnxruntime as ort

        self.providers = select_providers(providers)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = max(0, int(threads))
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        provider_args = []
        for p in self.providers:
            if p == "TensorrtExecutionProvider":
                cache = Path(os.environ.get("CORFT_TRT_CACHE", Path.home() / ".cache" / "corft_ros" / "tensorrt"))
                cache.mkdir(parents=True, exist_ok=True)
                provider_args.append((p, {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)}))
            else:
                provider_args.append(p)
        self.actor_session = self._session(ACTOR_FILE, options, provider_args)
        self.critic_session = self._session(CRITIC_FILE, options, provider_args)
        self.sampler_session = self._session(SAMPLER_FILE, options, provider_args) if self.has_sampler else None
        self.active_providers = self.actor_session.get_providers()

    def _session(self, name: str, options, providers):  # noqa: ANN001 - onnxruntime types
        import onnxruntime as ort

        path = verify_file(self.meta, name)
        try:
            session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception classes for invalid graphs
            msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{path}: ONNX Runtime cannot load it ({msg})") from None
        check_onnx_io(self.meta, name, {i.name: i.shape for i in session.get_inputs()},
                      {o.name: o.shape for o in session.get_outputs()})
        return session

    def _actor(self, images: np.ndarray, state: np.ndarray, text: np.ndarray) -> np.ndarray:
        return self.actor_session.run(None, {"images": images, "state": state, "text": text})[0]

    def _critic(self, images: np.ndarray, state: np.ndarray, text: np.ndarray, chunks: np.ndarray) -> np.ndarray:
        feeds = {"images": images, "state": state, "text": text, "chunk": np.ascontiguousarray(chunks, np.float32)}
        return self.critic_session.run(None, feeds)[0]

    def _sampler(self, images: np.ndarray, state: np.ndarray, text: np.ndarray,
                 noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feeds = {"images": images, "state": state, "text": text, "noise": np.ascontiguousarray(noise, np.float32)}
        chunks, q = self.sampler_session.run(None, feeds)
        return chunks, q


class TorchPolicyRuntime(PolicyRuntime):
    backend = "torch"

    def __init__(self, meta: PolicyMeta, device: str = "auto", threads: int = 0, **kwargs) -> None:
        super().__init__(meta, **kwargs)
        import torch

        if threads > 0:
            torch.set_num_threads(int(threads))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._device = torch.device(device)
        self.model = load_torch_policy(meta).to(self._device).eval()
        self._torch = torch

    @property
    def device(self) -> str:
        return str(self._device)

    def _tensors(self, *arrays: np.ndarray):  # noqa: ANN202
        return [self._torch.from_numpy(np.ascontiguousarray(a)).to(self._device) for a in arrays]

    def _actor(self, images: np.ndarray, state: np.ndarray, text: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self.model(*self._tensors(images, state, text)).float().cpu().numpy()

    def _critic(self, images: np.ndarray, state: np.ndarray, text: np.ndarray, chunks: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            img, st, tx, ch = self._tensors(images, state, text, np.asarray(chunks, np.float32))
            features = self.model.encode(img, st, tx)
            return self.model.critic(features, self.model.normalize_action(ch)).float().cpu().numpy()

    def _sampler(self, images: np.ndarray, state: np.ndarray, text: np.ndarray,
                 noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from corft_ros.core.policy.model import SamplerGraph

        with self._torch.inference_mode():
            chunks, q = SamplerGraph(self.model)(*self._tensors(images, state, text, noise))
            return chunks.float().cpu().numpy(), q.float().cpu().numpy()

    @property
    def has_sampler(self) -> bool:
        return True  # the torch model always has the sampler's graph
