"""models/<name>/: a policy exported to it (ONNX graphs, weights, policy.yaml), verified against torch.

    actor.onnx           (images [B, n_cams, 3, H, W] float [0, 1], state [B, d], text [B, E]) → chunk [B, h, d]
                         absolute joint targets
    critic.onnx          (images [1, ...], state [1, d], text [1, E], chunk [N, h, d] absolute) → q [num_critics, N, h]
                         every head's value of every chunk prefix; the conservative value is the min over heads
    sampler.onnx         (images [1, ...], state [1, d], text [1, E], noise [N, h, d]) → chunk [N, h, d] absolute,
                         q [num_critics, N, h]: N candidates and their values in one batched call (best-of-N);
                         written for a flow head and for a model whose deploy asks for best_of_n > 1 (a regression
                         model deployed plainly never samples; the runtime's fallback is actor + critic)
    weights.safetensors  the torch weights, normalization buffers included (the torch backend and fine-tuning)
    policy.yaml          config (joints, dt, h, cameras and sizes, architecture), normalization, instruction
                         embeddings, versions, sha256 of every file

Reading the folder back (policy.yaml checked, file hashes, ONNX I/O, the torch policy) is model_files.py's.
A checkpoint (what the trainer writes, core/policy/checkpoint.py) is a torch file {format, config, state_dict,
instructions}.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import logging
import os
import platform
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from corft_ros.core.policy.config import PolicyConfig
from corft_ros.core.policy.model_files import (
    ACTOR_FILE,
    CRITIC_FILE,
    FORMAT,
    META_FILE,
    NORM_KEYS,
    SAMPLER_FILE,
    WEIGHTS_FILE,
    ModelError,
    _sha256,
    deploy_section,
    io_shapes,
    load_metadata,
)
from corft_ros.core.policy.text import InstructionEmbeddings

OPSET = 18


def _versions() -> dict[str, str]:
    import onnx
    import torch

    import corft_ros

    versions = {"corft_ros": str(corft_ros.__version__), "torch": str(torch.__version__),
                "onnx": str(onnx.__version__), "python": platform.python_version()}
    try:
        import onnxruntime

        versions["onnxruntime"] = str(onnxruntime.__version__)
    except ImportError:
        pass
    return versions


def _instruction_table(instructions: Mapping[str, Any] | Iterable[str] | None) -> dict[str, np.ndarray]:
    if instructions is None:
        return {}
    if isinstance(instructions, Mapping):
        return InstructionEmbeddings(instructions).table()
    embeddings = InstructionEmbeddings()
    embeddings.add(list(instructions))
    return embeddings.table()


# ---------------------------------------------------------------------------------------------------- export
class _FlowListDumper(yaml.SafeDumper):
    """Lists of numbers/strings on one line: policy.yaml stays readable with 384-float embeddings in it."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(isinstance(x, int | float | str) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_FlowListDumper.add_representer(list, _represent_list)


def export_policy(model: Any, out_dir: str | Path, instructions: Mapping[str, Any] | Iterable[str] | None = None,
                  verify: bool = True, deploy: Mapping[str, Any] | None = None) -> Path:
    """Write models/<name>/ (see the module docstring) for `model`; returns the directory.

    `instructions`: a mapping text → embedding, or texts to embed now with the sentence encoder.
    `deploy`: how to run it (best_of_n, selection_beta), stored in policy.yaml for the policy node and benchmarks.
    The directory is written next to its final place and swapped in whole, so a failed export leaves no half model.
    """
    import copy

    from safetensors.torch import save_file

    # The exporter logs one warning per missing torchvision op it could translate: not our concern.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    out_dir = Path(out_dir)
    cfg: PolicyConfig = model.config
    table = _instruction_table(instructions)
    cpu_model = copy.deepcopy(model).to("cpu").eval()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        state = {k: v.detach().contiguous().clone() for k, v in cpu_model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT})
        images, joint, text, chunks, noise = _example_inputs(cpu_model, cfg)
        _export_graphs(cpu_model, tmp, (images, joint, text, chunks, noise), needs_sampler(cfg, deploy))
        files = {name: {"sha256": _sha256(tmp / name), "bytes": (tmp / name).stat().st_size}
                 for name in (ACTOR_FILE, CRITIC_FILE, SAMPLER_FILE, WEIGHTS_FILE) if (tmp / name).exists()}
        meta = _policy_meta(cpu_model, cfg, table, deploy, files)
        with open(tmp / META_FILE, "w") as f:
            yaml.dump(meta, f, Dumper=_FlowListDumper, sort_keys=False, width=120)
        os.chmod(tmp, 0o755)
        for file in tmp.iterdir():
            os.chmod(file, 0o644)
        if verify:
            _verify_export(cpu_model, tmp, images, joint, text, chunks, noise)
        _swap_in(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _example_inputs(model: Any, cfg: PolicyConfig) -> tuple[Any, Any, Any, Any, Any]:
    """The tensors the graphs are traced (and verified) with: (images, state, text, absolute chunks [3, h, d],
    noise [3, h, d]); random but for the state, the mean action."""
    import torch

    cams, (h, w), d = cfg.num_cameras, cfg.image_size, cfg.action_dim
    images = torch.rand(1, cams, 3, h, w)
    joint = model.action_mean.reshape(1, d).clone()
    text = torch.randn(1, cfg.text_dim)
    chunks = model.unnormalize_action(torch.randn(3, cfg.chunk_size, d))
    noise = torch.randn(3, cfg.chunk_size, d)
    return images, joint, text, chunks, noise


def _export_graphs(model: Any, folder: Path, inputs: tuple[Any, Any, Any, Any, Any], with_sampler: bool) -> None:
    """Write actor.onnx and critic.onnx (and sampler.onnx when `with_sampler`) into `folder`, traced on `inputs`."""
    import torch

    from corft_ros.core.policy.model import ActorGraph, CriticGraph, SamplerGraph

    images, joint, text, chunks, noise = inputs
    # The TorchScript exporter: the same graphs as torch.export's (verified below on other batch sizes), the same
    # ONNX Runtime latency, and 0.5 s per graph instead of 10-20 s.
    batch = {0: "batch"}
    n = {0: "n"}
    with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        # The exporter narrates its passes on stdout and warns about its own internals: keep CLIs quiet.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            ActorGraph(model).eval(), (images, joint, text), str(folder / ACTOR_FILE),
            input_names=["images", "state", "text"], output_names=["chunk"],
            dynamic_axes={"images": batch, "state": batch, "text": batch, "chunk": batch},
            dynamo=False, opset_version=OPSET, verbose=False,
        )
        torch.onnx.export(
            CriticGraph(model).eval(), (images, joint, text, chunks), str(folder / CRITIC_FILE),
            input_names=["images", "state", "text", "chunk"], output_names=["q"],
            dynamic_axes={"chunk": n, "q": {1: "n"}},
            dynamo=False, opset_version=OPSET, verbose=False,
        )
        if with_sampler:
            torch.onnx.export(
                SamplerGraph(model).eval(), (images, joint, text, noise), str(folder / SAMPLER_FILE),
                input_names=["images", "state", "text", "noise"], output_names=["chunk", "q"],
                dynamic_axes={"noise": n, "chunk": n, "q": {1: "n"}},
                dynamo=False, opset_version=OPSET, verbose=False,
            )


def _policy_meta(model: Any, cfg: PolicyConfig, table: Mapping[str, np.ndarray], deploy: Mapping[str, Any] | None,
                 files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """policy.yaml's content: config, normalization, ONNX shapes, instruction embeddings, deploy, versions, files."""
    (h, w) = cfg.image_size
    return {
        "format": FORMAT,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "joint_names": list(cfg.joint_names),
        "action_dt": float(cfg.action_dt),
        "chunk_size": int(cfg.chunk_size),
        "cameras": [{"name": c, "height": h, "width": w, "encoding": "rgb8"} for c in cfg.camera_names],
        "config": cfg.to_dict(),
        "normalization": {k: [float(x) for x in getattr(model, k).tolist()] for k in NORM_KEYS},
        "onnx": {"opset": OPSET, **io_shapes(cfg),
                 "critic_output": "q[m, n, j]: critic head m's value of chunk n's prefix a[0..j]; "
                                  "min over heads m is the conservative value"},
        "instructions": {k: [float(x) for x in v.tolist()] for k, v in table.items()},
        "deploy": deploy_section(deploy),
        "versions": _versions(),
        "files": files,
    }


def _swap_in(tmp: Path, out_dir: Path) -> None:
    """Move the finished export `tmp` to `out_dir`, replacing an existing model whole."""
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out_dir)


def copy_with_deploy(source: str | Path, target: str | Path, **changes: Any) -> Path:
    """A copy of the exported model `source` at `target` deployed differently (policy.yaml's `deploy` updated with
    `changes`, e.g. best_of_n=1 or selection='random'): the same weights, another way to run them. The new deploy
    is validated as the runtimes will read it."""
    source, target = Path(source), Path(target)
    meta = load_metadata(source)
    unknown = set(changes) - set(deploy_section(None))
    if unknown:
        raise ModelError(f"unknown deploy setting(s): {', '.join(sorted(unknown))}")
    if int(changes.get("best_of_n", 1)) > 1 and SAMPLER_FILE not in meta.files and meta.config.stochastic:
        raise ModelError(f"{source}: no {SAMPLER_FILE} for best-of-N with a flow head")
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    try:
        raw = yaml.safe_load((tmp / META_FILE).read_text())
        raw["deploy"] = deploy_section({**deploy_section(raw.get("deploy")), **changes})
        with open(tmp / META_FILE, "w") as f:
            yaml.dump(raw, f, Dumper=_FlowListDumper, sort_keys=False, width=120)
        load_metadata(tmp).deploy  # noqa: B018 (validates the new deploy section)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    tmp.replace(target)
    return target


def needs_sampler(config: PolicyConfig, deploy: Mapping[str, Any] | None) -> bool:
    """sampler.onnx is written where it will be used: a flow head (its chunks come only from sampling) or a deploy
    that asks for best-of-N selection. Saves a third of the export time of every plain regression model."""
    return bool(config.stochastic) or int((deploy or {}).get("best_of_n", 1)) > 1


def _verify_export(model: Any, folder: Path, images: Any, joint: Any, text: Any, chunks: Any, noise: Any,
                   tol: float = 1e-4) -> None:
    """The exported graphs must reproduce torch, on batch sizes other than the traced ones (a shape the tracer
    baked in shows here, not in the field)."""
    import onnxruntime as ort
    import torch

    from corft_ros.core.policy.model import CriticGraph, SamplerGraph

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    chunks = torch.cat([chunks, chunks.flip(0)[:2] + 0.01])  # N = 5, traced with 3
    noise = torch.cat([noise, torch.randn_like(noise[:2])])
    feeds = {"images": images.numpy(), "state": joint.numpy(), "text": text.numpy()}
    two = [torch.cat([x, x.flip(-1)]) for x in (images, joint, text)]  # batch 2, traced with 1
    with torch.no_grad():
        ref_chunk = model(*two).numpy()
        ref_q = CriticGraph(model)(images, joint, text, chunks).numpy()
    actor = ort.InferenceSession(str(folder / ACTOR_FILE), options, providers=["CPUExecutionProvider"])
    critic = ort.InferenceSession(str(folder / CRITIC_FILE), options, providers=["CPUExecutionProvider"])
    two_feeds = dict(zip(("images", "state", "text"), (x.numpy() for x in two), strict=True))
    diff_a = float(np.abs(actor.run(None, two_feeds)[0] - ref_chunk).max())
    diff_q = float(np.abs(critic.run(None, {**feeds, "chunk": chunks.numpy()})[0] - ref_q).max())
    diff_s = 0.0
    if (folder / SAMPLER_FILE).exists():
        with torch.no_grad():
            ref_s = [t.numpy() for t in SamplerGraph(model)(images, joint, text, noise)]
        sampler = ort.InferenceSession(str(folder / SAMPLER_FILE), options, providers=["CPUExecutionProvider"])
        got_s = sampler.run(None, {**feeds, "noise": noise.numpy()})
        diff_s = max(float(np.abs(g - r).max()) for g, r in zip(got_s, ref_s, strict=True))
    if not (diff_a <= tol and diff_q <= tol and diff_s <= tol):
        raise ModelError(f"export verification failed: ONNX differs from torch by "
                         f"{max(diff_a, diff_q, diff_s):.2e} > {tol}")
