"""The policy node's parameters (the one declaration)."""

from __future__ import annotations

from dataclasses import dataclass

from corft_ros.core import topics
from corft_ros.core.params import param
from corft_ros.core.sim.rollout import RolloutConfig

IMAGE_TRANSPORTS = ("raw", "compressed")


@dataclass
class PolicyParams:
    robot_config: str = param("", "robot.yaml path ('' = bundled)")
    model_path: str = param("", "exported model directory ('' = models/default)")
    backend: str = param("onnx", "inference backend (lerobot: model_path is a LeRobot policy folder, served from "
                                 "LeRobot's venv; docs/lerobot.md)", choices=("onnx", "torch", "lerobot"))
    lerobot_python: str = param("", "backend lerobot: the interpreter of LeRobot's venv ('' = .venv-lerobot, "
                                    "`make lerobot-env`)")
    rate_hz: float = param(RolloutConfig.policy_rate_hz, "inferences per second (one chunk each)", above=0)
    best_of_n: int = param(0, "candidate chunks ranked by the critic (1 = off; 0 = what the model's policy.yaml "
                              "asks for: CO-RFT models rank, IL models don't)", min=0)
    noise_std: float = param(-1.0, "best-of-N proposals' size around the regression head's chunk (action standard "
                                   "deviations; -1 = the model's; the flow head samples its own noise)")
    selection_beta: float = param(-1.0, "best-of-N pessimism: rank by mean - beta*std of the critic heads (>= 0; "
                                        "-1 = the model's)")
    proposals: str = param("", "best-of-N candidates around the regression head's chunk ('' = the model's): white | "
                               "smooth | warp | mixed (core/policy/proposals.py)",
                           choices=("", "white", "smooth", "warp", "mixed"))
    selection: str = param("", "best-of-N choice ('' = the model's): critic, or random (the control arm)",
                           choices=("", "critic", "random"))
    selection_topic: str = param(topics.POLICY_SELECTION, "std_msgs/Float64MultiArray out, one per best-of-N "
                                 "chunk: [chunk stamp s, chosen index, its value, best value, worst value, candidates]")
    selection_prefix: int = param(0, "best-of-N: actions of a chunk whose value ranks it (0 = those that execute "
                                     "before the next chunk: 1 / (rate_hz * chunk dt))", min=0)
    threads: int = param(0, "inference threads (0 = the runtime's default)", min=0)
    device: str = param("auto", "torch backend device: auto | cpu | cuda[:i]")
    max_observation_age: float = param(1.0, "inputs older than this (s) count as missing", above=0)
    allow_encoder: bool = param(True, "embed instructions the model does not know")
    seed: int = param(-1, "best-of-N noise seed (-1 = random)")
    camera_topic_format: str = param(topics.CAMERA_IMAGE_FORMAT, "camera image topic, {name} = camera name "
                                                                 "(relative: in the node's namespace)")
    image_transport: str = param("raw", "raw: sensor_msgs/Image on the camera topic; compressed: JPEG/PNG "
                                        "sensor_msgs/CompressedImage on <camera topic>/compressed (policy on another "
                                        "machine)", choices=IMAGE_TRANSPORTS)
    joint_states_topic: str = param(topics.JOINT_STATES, "sensor_msgs/JointState input (several publishers may each "
                                                         "give some joints)")
    instruction_topic: str = param(topics.INSTRUCTION, "std_msgs/String input")
    chunk_topic: str = param(topics.ACTION_CHUNK, "trajectory_msgs/JointTrajectory out")
    instruction: str = param("", "instruction to start with ('' = wait for the topic)")
    cameras: list = param([], "cameras to subscribe to ([] = the model's cameras)", array="string")
