"""Run by LeRobot's own interpreter (.venv-lerobot, `make lerobot-env`) for the interop tests; never imports
corft_ros. Arrays go in and out as .npz files written and read without pickle.

    load DATASET OUT.npz        LeRobotDataset(root=DATASET): counts, fps, feature shapes, every frame's values
    make-act DATASET POLICY     a randomly initialised small ACT (features, stats from the dataset), save_pretrained
    make-diffusion DATASET POLICY   the same for a small diffusion policy
    predict POLICY IN.npz OUT.npz   the policy's predict_action_chunk for each observation in IN.npz
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np  # noqa: E402


def load(root: str, out: str) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("corft_ros/export", root=root)
    arrays: dict[str, np.ndarray] = {}
    items = [ds[i] for i in range(len(ds))]
    for key in items[0]:
        if key == "task":
            continue
        arrays[key] = np.stack([np.asarray(it[key]) for it in items])
    summary = {"num_frames": ds.num_frames, "num_episodes": ds.num_episodes, "fps": ds.fps,
               "camera_keys": ds.meta.camera_keys, "tasks": sorted({it["task"] for it in items}),
               "features": {k: list(v["shape"]) for k, v in ds.features.items()},
               "success": [ds.meta.episodes[i].get("success") for i in range(ds.num_episodes)]}
    np.savez(out, summary=np.frombuffer(json.dumps(summary).encode(), np.uint8), **arrays)


def _features(root: str):
    """(dataset metadata, input features, output features) of an exported dataset, as LeRobot's training makes them."""
    import torch
    from lerobot.configs.types import FeatureType
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata
    from lerobot.datasets.utils import dataset_to_policy_features

    torch.manual_seed(0)
    meta = LeRobotDatasetMetadata("corft_ros/export", root=root)
    feats = dataset_to_policy_features(meta.features)
    inputs = {k: f for k, f in feats.items() if f.type is not FeatureType.ACTION}
    return meta, inputs, {k: f for k, f in feats.items() if f.type is FeatureType.ACTION}


def make_act(root: str, policy_dir: str) -> None:
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy

    meta, inputs, outputs = _features(root)
    cfg = ACTConfig(input_features=inputs, output_features=outputs, chunk_size=10, n_action_steps=10, dim_model=64,
                    n_heads=2, dim_feedforward=128, n_encoder_layers=1, n_decoder_layers=1, use_vae=False,
                    pretrained_backbone_weights=None, device="cpu")
    ACTPolicy(cfg, dataset_stats=meta.stats).save_pretrained(policy_dir)


def make_diffusion(root: str, policy_dir: str) -> None:
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy

    meta, inputs, outputs = _features(root)
    cfg = DiffusionConfig(input_features=inputs, output_features=outputs, crop_shape=None, down_dims=(32, 64),
                          num_inference_steps=5, spatial_softmax_num_keypoints=8, diffusion_step_embed_dim=32,
                          device="cpu")
    DiffusionPolicy(cfg, dataset_stats=meta.stats).save_pretrained(policy_dir)


def predict(policy_dir: str, inp: str, out: str) -> None:
    import torch
    from lerobot.policies.act.modeling_act import ACTPolicy

    policy = ACTPolicy.from_pretrained(policy_dir)
    policy.eval()
    data = np.load(inp, allow_pickle=False)
    n = len(data["observation.state"])
    chunks = []
    with torch.inference_mode():
        for i in range(n):
            batch = {k: torch.from_numpy(data[k][i:i + 1].copy()) for k in data.files}
            chunks.append(policy.predict_action_chunk(batch)[0].numpy())
    np.savez(out, action=np.stack(chunks))


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"load": load, "make-act": make_act, "make-diffusion": make_diffusion, "predict": predict}[cmd](*args)
