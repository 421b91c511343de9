"""A LeRobot policy as a chunk server. Runs in LeRobot's own venv (`make lerobot-env`), never in ours:

    .venv-lerobot/bin/python corft_ros/core/policy/lerobot_backend/serve.py --policy DIR --socket PATH [--device cpu]

DIR is what LeRobot's `save_pretrained` wrote (config.json + model.safetensors). The server answers, over a Unix
socket in `protocol.py`'s format (JSON + raw arrays, no pickle):
    {"op": "info"}     -> policy type, chunk_size, input/output features, lerobot version
    {"op": "predict"}  with arrays observation.state [1, d] and observation.images.<cam> [1, 3, H, W] (float32,
                       images in [0, 1]) and field "task" -> array "action" [1, h, d]: the policy's own
                       `predict_action_chunk` (its normalization included); for a policy with an observation
                       history (diffusion) its `select_action` with the action queue emptied first, i.e. this
                       observation joins the history and the whole newly planned n_action_steps come back
Errors in a request are answered as {"error": "..."}; the server keeps serving its one client and exits
when that client closes the connection (or dies).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import protocol  # noqa: E402  (this folder, not the corft_ros package: LeRobot's venv does not have it)


def load_policy(path: Path, device: str):
    from lerobot.policies.factory import get_policy_class

    config = json.loads((path / "config.json").read_text())
    policy = get_policy_class(config["type"]).from_pretrained(str(path))
    policy.to(device)
    policy.eval()
    return policy, config["type"]


def queued(policy) -> bool:
    """A policy that keeps an observation history and plans from it (diffusion: `_queues`, n_obs_steps)."""
    return isinstance(getattr(policy, "_queues", None), dict) and "action" in policy._queues


def describe(policy, kind: str) -> dict:
    import lerobot

    cfg = policy.config
    # a queue-based policy hands out n_action_steps of the horizon it plans; ACT-like ones their whole chunk
    chunk = int(cfg.n_action_steps if queued(policy) else getattr(cfg, "chunk_size", 0) or cfg.n_action_steps)

    def feats(features) -> dict:
        return {k: {"type": str(getattr(f.type, "value", f.type)), "shape": list(f.shape)} for k, f in features.items()}

    return {"type": kind, "chunk_size": chunk,
            "n_action_steps": int(getattr(cfg, "n_action_steps", 0)), "input_features": feats(cfg.input_features),
            "output_features": feats(cfg.output_features), "lerobot_version": lerobot.__version__}


def predict(policy, arrays: dict, task: str, device: str):
    import torch

    batch = {k: torch.from_numpy(v.copy()).to(device) for k, v in arrays.items()}
    batch["task"] = [task]
    with torch.inference_mode():
        if queued(policy):
            # LeRobot's own select_action, made to plan now: this observation joins the history (one per call),
            # a fresh chunk is planned, and we hand out all of it instead of one action at a time
            policy._queues["action"].clear()
            first = policy.select_action(batch)
            actions = torch.stack([first, *policy._queues["action"]], dim=1)
        else:
            actions = policy.predict_action_chunk(batch)
    return actions.detach().to("cpu", torch.float32).numpy()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", required=True, help="folder written by save_pretrained")
    ap.add_argument("--socket", required=True, help="Unix socket path to listen on")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("CORFT_LEROBOT_THREADS", "0")) or torch.get_num_threads()))
    try:
        policy, kind = load_policy(Path(args.policy), args.device)
    except Exception as exc:  # one line for the node's log: the folder, and why
        print(f"error: cannot load a LeRobot policy from {args.policy}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    info = describe(policy, kind)
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(args.socket)
    server.listen(1)
    server.settimeout(300.0)  # a client that never comes (it died starting) must not leave the server behind
    print(f"serving {kind} from {args.policy} on {args.socket}", flush=True)
    try:
        conn, _ = server.accept()  # one client (the policy node's runtime); when it goes, the server goes
    except TimeoutError:
        print("error: no client connected within 300 s", file=sys.stderr)
        return 1
    conn.settimeout(None)
    server.close()
    os.unlink(args.socket)
    with conn:
        while True:
            try:
                header, arrays = protocol.recv(conn)
            except (ConnectionError, protocol.ProtocolError):
                break
            op = header.get("op")
            if op == "close":
                protocol.send(conn, {"ok": True})
                return 0
            try:
                if op == "info":
                    protocol.send(conn, info)
                elif op == "predict":
                    protocol.send(conn, {"ok": True},
                                  {"action": predict(policy, arrays, str(header.get("task", "")), args.device)})
                else:
                    protocol.send(conn, {"error": f"unknown op {op!r}"})
            except Exception as exc:  # a bad request must not take the server down
                protocol.send(conn, {"error": f"{type(exc).__name__}: {exc}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
