"""Training checkpoints: a torch file {format, config, state_dict, instructions, extra} (never a pickle of objects:
read with weights_only=True)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from corft_ros.core.policy.config import PolicyConfig
from corft_ros.core.policy.export import _instruction_table
from corft_ros.core.policy.model_files import FORMAT, ModelError, _first_line, _load_state


def save_checkpoint(model: Any, path: str | Path, instructions: Mapping[str, Any] | Iterable[str] | None = None,
                    extra: Mapping[str, Any] | None = None) -> Path:
    """Save a ChunkPolicy (config + state_dict + instruction embeddings) as a torch checkpoint."""
    import torch

    table = _instruction_table(instructions)
    data = {
        "format": FORMAT,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "instructions": {k: v.tolist() for k, v in table.items()},
    }
    if extra:
        data["extra"] = dict(extra)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, path)
    return path


def load_checkpoint(path: str | Path) -> tuple[Any, dict[str, np.ndarray]]:
    """(ChunkPolicy, instruction embeddings) from a checkpoint written by save_checkpoint."""
    from corft_ros.core.policy.model import ChunkPolicy

    path = Path(path)
    data = read_checkpoint(path)
    config = PolicyConfig.from_dict(data["config"], source=str(path))
    model = ChunkPolicy(config)
    _load_state(model, data["state_dict"], path.name)
    table = {str(k): np.asarray(v, dtype=np.float32) for k, v in (data.get("instructions") or {}).items()}
    return model.eval(), table


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict (tensors and plain data only); a one-line ModelError when it is not one of ours."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path}: not a readable torch checkpoint ({_first_line(exc)})") from None
    if not isinstance(data, dict) or "config" not in data or "state_dict" not in data:
        raise ModelError(f"{path}: not a corft_ros policy checkpoint (needs 'config' and 'state_dict')")
    return data
