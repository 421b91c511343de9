"""`torchrun --nproc_per_node 2` trains both stages with DistributedDataParallel (gloo on CPU): the two ranks
see different shards of the data yet end with identical weights."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from corft_ros.core.dataset import synthetic
from corft_ros.core.robot import load_robot_config

WORKER = textwrap.dedent("""
    import json, os, sys
    import torch
    torch.set_num_threads(1)
    from corft_ros.core.rl.trainer import config_from_params, train
    from corft_ros.core.robot import load_robot_config

    root = sys.argv[1]
    params = {
        "output": root + "/run", "export": False, "progress": False, "batch_size": 8, "log_every": 2,
        "checkpoint_every": 1000, "il_steps": 4, "rl_steps": 4, "stage": "all",
        "dataset": {"cache_dir": root + "/cache", "image_size": [32, 32]},
        "corft": {"actor_warmup_steps": 0},  # actor updates at steps 0 and 2: both DDP update kinds run
        "policy": {"d_model": 32, "heads": 2, "ff_dim": 64, "encoder_layers": 1, "decoder_layers": 1,
                   "cnn_channels": [8, 16], "chunk_size": 4},
    }
    seen = []  # chunk-table rows this rank trained on (recorded around the real batch gatherer)
    import corft_ros.core.rl.batches as batches
    original = batches.ChunkData.batch
    def recording(self, rows, with_next=False):
        seen.extend(int(r) for r in rows)
        return original(self, rows, with_next)
    batches.ChunkData.batch = recording
    summary, policy = train(root + "/eps", config_from_params(params), load_robot_config(), log=lambda m: None,
                            return_policy=True)
    rank = int(os.environ["RANK"])
    state = {k: v.detach().cpu() for k, v in policy.state_dict().items()}
    torch.save({"state": state, "world": summary["world_size"], "rows": seen}, f"{root}/rank{rank}.pt")
""")


def test_torchrun_two_processes_keep_weights_synchronized(tmp_path):
    robot = load_robot_config()
    synthetic.write_dataset(tmp_path / "eps", robot, 3, image_hw=(24, 32), duration_s=1.0)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["world"] == r1["world"] == 2
    # different shards of the chunk table on each rank
    assert set(r0["rows"]) and set(r1["rows"]) and set(r0["rows"]) != set(r1["rows"])
    # identical weights everywhere, and training did change them
    assert r0["state"].keys() == r1["state"].keys()
    for key in r0["state"]:
        assert torch.equal(r0["state"][key], r1["state"][key]), key
    init = torch.load(tmp_path / "run" / "checkpoints" / "il_0000004.pt", weights_only=True)["state_dict"]
    assert any(not torch.equal(init[k], r0["state"][k]) for k in init)  # the RL stage moved them on
