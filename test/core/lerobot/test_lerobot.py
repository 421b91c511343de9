"""LeRobot interop: sim and synthetic episodes -> `bag export-lerobot` -> the real `lerobot` package loads them (its
own venv) -> `bag import-lerobot` -> the trainer's dataset equals the original's; the policy server's protocol."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
from pathlib import Path

import domains
import numpy as np
import pyarrow.parquet as pq
import pytest

from corft_ros.cli import main
from corft_ros.core.dataset.build import build_episode
from corft_ros.core.dataset.config import TRAJECTORY_COMMANDS, DatasetConfig
from corft_ros.core.dataset.synthetic import SyntheticEpisode, write_episode
from corft_ros.core.episodes import find_bags
from corft_ros.core.episodes.reader import training_metadata
from corft_ros.core.lerobot import v21
from corft_ros.core.lerobot.export import export_dataset
from corft_ros.core.lerobot.importer import import_dataset
from corft_ros.core.policy.lerobot_backend import protocol
from corft_ros.core.policy.lerobot_backend.client import default_python
from corft_ros.core.robot import load_robot_config

ROBOT = load_robot_config()
ROOT = Path(__file__).resolve().parents[3]
CLI = ROOT / ".venv" / "bin" / "corft-ros"
LEROBOT = default_python()
needs_lerobot = pytest.mark.skipif(not LEROBOT.is_file(), reason="no LeRobot venv (make lerobot-env)")


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> Path:
    """One sim demo (the real arm, recorded through the stack) and two synthetic episodes: a failure commanded with
    JointTrajectory in a sqlite3 bag with an operator's takeover from 0.6 to 1.3 s, and one with smaller frames
    (resized on export)."""
    root = tmp_path_factory.mktemp("episodes")
    env = domains.own_env(3)
    run = subprocess.run([str(CLI), "record", "--sim", "--episodes", "1", "--task", "put the cube on the target",
                          "--output", str(root), "--max-seconds", "30"], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=400, env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    write_episode(root / "synthetic-failure", ROBOT, SyntheticEpisode(
        success=False, storage="sqlite3", command_topic=TRAJECTORY_COMMANDS, image_hw=(64, 64), seed=1,
        instruction="push the cube", interventions=((0.6, 1.3),)))
    write_episode(root / "synthetic-small", ROBOT, SyntheticEpisode(image_hw=(48, 64), seed=2, start_ns=1_700_000_100 *
                                                                    1_000_000_000))
    assert len(find_bags(root)) == 3
    return root


@pytest.fixture(scope="module")
def exported(episodes, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lerobot") / "dataset"
    assert main(["bag", "export-lerobot", str(episodes), "--output", str(out)]) == 0
    return out


def trainer_arrays(bag: Path, size=(64, 64)) -> dict[str, np.ndarray]:
    arrays, _ = build_episode(bag, ROBOT, DatasetConfig(image_size=size))
    return arrays


def test_export_writes_the_v21_layout(exported, episodes):
    info = json.loads((exported / v21.INFO_PATH).read_text())
    assert info["codebase_version"] == "v2.1" and info["fps"] == int(ROBOT.action_rate_hz)
    assert info["total_episodes"] == 3 and info["total_tasks"] == 3
    assert info["features"][v21.STATE]["names"] == ROBOT.joint_names == info["features"][v21.ACTION]["names"]
    assert info["features"]["observation.images.front"]["shape"] == [64, 64, 3]
    rows = v21.read_jsonl(exported / v21.EPISODES_PATH)
    labels = {r["corft_ros"]["episode"]: r["success"] for r in rows}
    assert labels["synthetic-failure"] is False and labels["synthetic-small"] is True
    for i, row in enumerate(rows):
        assert (exported / v21.data_path(i)).is_file()
        for cam in ("front", "wrist"):
            assert (exported / v21.video_path(i, v21.image_key(cam))).is_file()
        arrays = trainer_arrays(find_bags(episodes)[i])
        assert row["length"] == len(arrays["state"])
        flags = pq.read_table(exported / v21.data_path(i)).column(v21.INTERVENTION).to_numpy()
        np.testing.assert_array_equal(flags, arrays["intervention"].astype(np.float32))
        assert flags.any() == (row["corft_ros"]["episode"] == "synthetic-failure")  # the takeover, per frame
    assert not Path(str(exported) + ".partial").exists()


def test_round_trip_gives_the_trainer_the_same_dataset(exported, episodes, tmp_path):
    back = tmp_path / "imported"
    assert main(["bag", "import-lerobot", str(exported), "--output", str(back)]) == 0
    originals, imported = find_bags(episodes), find_bags(back)
    assert len(imported) == len(originals) == 3
    by_name = {bag.parent.name: bag for bag in imported}  # an export from corft_ros keeps the episode names
    for bag in originals:
        name = bag.parent.name
        a, b = trainer_arrays(bag), trainer_arrays(by_name[name])
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}: {key}")
        ma, mb = training_metadata(bag), training_metadata(by_name[name])
        assert (ma["instruction"], ma["success"]) == (mb["instruction"], mb["success"])
        assert mb["joint_names"] == ROBOT.joint_names


@needs_lerobot
def test_lerobot_loads_the_export_with_the_bags_values(exported, episodes, tmp_path):
    out = tmp_path / "loaded.npz"
    run = subprocess.run([str(LEROBOT), str(ROOT / "test" / "lerobot_env.py"), "load", str(exported), str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    data = np.load(out, allow_pickle=False)
    summary = json.loads(bytes(data["summary"]).decode())
    bags = find_bags(episodes)
    arrays = [trainer_arrays(b) for b in bags]
    assert summary["num_episodes"] == 3 and summary["fps"] == int(ROBOT.action_rate_hz)
    assert summary["num_frames"] == sum(len(a["state"]) for a in arrays)
    assert summary["features"]["observation.images.wrist"] == [64, 64, 3]
    assert summary["success"] == [training_metadata(b)["success"] for b in bags]
    state = np.concatenate([a["state"] for a in arrays])
    np.testing.assert_array_equal(data["observation.state"], state)
    np.testing.assert_array_equal(data["action"], np.concatenate([a["action"] for a in arrays]))
    held = np.concatenate([a["intervention"] for a in arrays]).astype(np.float32)
    assert held.sum() > 5
    np.testing.assert_array_equal(data[v21.INTERVENTION].reshape(-1), held)
    for cam in ("front", "wrist"):
        frames = np.concatenate([a[f"image_{cam}"] for a in arrays]).transpose(0, 3, 1, 2)
        decoded = np.rint(data[f"observation.images.{cam}"] * 255.0).astype(np.int64)
        np.testing.assert_array_equal(decoded, frames, err_msg=cam)  # lossless video: every pixel of every frame
    np.testing.assert_allclose(data["timestamp"][: len(arrays[0]["state"])],
                               np.arange(len(arrays[0]["state"])) / ROBOT.action_rate_hz, atol=1e-6)


def test_bad_inputs_get_one_line_errors(exported, episodes, tmp_path, capsys):
    assert main(["bag", "export-lerobot", str(episodes), "--output", str(exported)]) == 1
    assert "exists and is not empty" in capsys.readouterr().err
    assert main(["bag", "export-lerobot", str(episodes), "--output", str(tmp_path / "x"), "--format", "v3.0"]) == 2
    assert "only v2.1" in capsys.readouterr().err
    assert main(["bag", "export-lerobot", str(tmp_path / "none"), "--output", str(tmp_path / "y")]) == 1
    assert "no such folder" in capsys.readouterr().err
    assert main(["bag", "import-lerobot", str(episodes), "--output", str(tmp_path / "z")]) == 1
    err = capsys.readouterr().err
    assert "not a LeRobotDataset" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="whole number"):
        export_dataset(episodes, tmp_path / "w", dataclasses.replace(ROBOT, action_rate_hz=12.5))
    info = json.loads((exported / v21.INFO_PATH).read_text())
    old = tmp_path / "old"
    (old / "meta").mkdir(parents=True)
    (old / v21.INFO_PATH).write_text(json.dumps({**info, "codebase_version": "v3.0"}))
    with pytest.raises(v21.DatasetFormatError, match="only v2.1"):
        import_dataset(old, tmp_path / "o", ROBOT)


def test_protocol_carries_arrays_and_refuses_what_is_not_json_and_numbers():
    a, b = socket.socketpair()
    with a, b:
        arrays = {"x": np.arange(12, dtype=np.float32).reshape(3, 4), "img": np.zeros((1, 3, 2, 2), np.uint8)}
        protocol.send(a, {"op": "predict", "task": "pick"}, arrays)
        header, got = protocol.recv(b)
        assert header == {"op": "predict", "task": "pick"}
        for k, v in arrays.items():
            np.testing.assert_array_equal(got[k], v)
            assert got[k].dtype == v.dtype
        with pytest.raises(protocol.ProtocolError, match="dtype"):
            protocol.send(a, {}, {"o": np.array([object()])})
        a.sendall(b"\x00\x00\x00\x05hello")
        with pytest.raises(protocol.ProtocolError, match="not JSON"):
            protocol.recv(b)
        a.sendall(b"\xff\xff\xff\xff")
        with pytest.raises(protocol.ProtocolError, match="limit"):
            protocol.recv(b)
    source = (ROOT / "corft_ros" / "core" / "policy" / "lerobot_backend" / "protocol.py").read_text()
    assert "pickle" not in source.split('"""')[2]


def test_the_server_script_runs_without_corft_ros(tmp_path):
    """serve.py runs in LeRobot's venv, where corft_ros is not installed: it imports only protocol.py beside it."""
    script = ROOT / "corft_ros" / "core" / "policy" / "lerobot_backend" / "serve.py"
    imports = [ln.split("#")[0] for ln in script.read_text().splitlines() if ln.startswith(("import ", "from "))]
    assert not any("corft_ros" in ln for ln in imports), imports
    if LEROBOT.is_file():
        run = subprocess.run([str(LEROBOT), "-c", "import corft_ros"], capture_output=True, text=True, timeout=60,
                             cwd=tmp_path)
        assert run.returncode != 0  # the venv it runs in really lacks the package
        run = subprocess.run([str(LEROBOT), str(script), "--help"], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and "--policy" in run.stdout, run.stderr


@needs_lerobot
def test_a_diffusion_policy_serves_its_planned_steps(exported, tmp_path):
    """Diffusion keeps an observation history: each request joins it and returns the n_action_steps just planned."""
    from corft_ros.core.policy.lerobot_backend.client import LeRobotRuntime

    run = subprocess.run([str(LEROBOT), str(ROOT / "test" / "lerobot_env.py"), "make-diffusion", str(exported),
                          str(tmp_path / "policy")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    runtime = LeRobotRuntime(tmp_path / "policy", ROBOT)
    try:
        assert runtime.config.policy_type == "diffusion" and runtime.chunk_size == 8
        rng = np.random.default_rng(0)
        images = {c: rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for c in ("front", "wrist")}
        chunks = [runtime.predict(images, ROBOT.home_array, "push the cube") for _ in range(2)]
        for chunk in chunks:
            assert chunk.shape == (8, ROBOT.dof) and np.isfinite(chunk).all()
        assert not np.array_equal(chunks[0], chunks[1])  # planned anew each time (a sample), not a queue's leftovers
        with pytest.raises(ValueError, match="joint_state has 3 values"):
            runtime.predict(images, [0.0, 0.0, 0.0], "")
    finally:
        runtime.close()
    assert runtime._proc.poll() is not None  # the server went with its client
