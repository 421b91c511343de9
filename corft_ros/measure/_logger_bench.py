"""The contestants of `corft-ros measure logger`: camera and /joint_states publishers, each in a process of its own
as the real drivers run; the episode logger as it runs, timed (each message's receive latency); and a bare raw
subscriber that only counts, each spun in the bench's rclpy context while the publishers play."""

from __future__ import annotations

import argparse
import contextlib
import json
import struct
import sys
import time
from pathlib import Path

from corft_ros.measure._logger_child import JOINT_STATES


def _publish(
    rates: dict[str, float], seconds: float, width: int, height: int, subscribers: int = 1, image_qos: str = "reliable",
    warmup: float = 1.5, js_depth: int = 0,
) -> dict:
    """Publish each topic from its own process (its own DDS participant), as the real drivers do: each camera
    driver and ros2_control's joint_state_broadcaster run apart and do not share a transport."""
    import subprocess

    procs = {}
    for topic, rate in rates.items():
        cfg = {"rates": {topic: rate}, "seconds": seconds, "width": width, "height": height,
               "subscribers": subscribers, "image_qos": image_qos, "warmup": warmup, "js_depth": js_depth}
        procs[topic] = subprocess.Popen([sys.executable, "-m", "corft_ros.measure._logger_child", json.dumps(cfg)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    result: dict = {"counts": {}, "failed": {}, "elapsed": 0.0}
    problems = []
    for topic, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        lines = [x for x in stdout.splitlines() if x.startswith("{")]
        if not lines:
            problems.append(f"{topic}: {stderr.strip()[-300:]}")
            continue
        one = json.loads(lines[-1])
        if "error" in one:
            problems.append(f"{topic}: {one['error']}")
            continue
        result["counts"].update(one["counts"])
        result["failed"].update(one["failed"])
        result["elapsed"] = max(result["elapsed"], one["elapsed"])
    if problems:
        raise RuntimeError("bench publisher failed: " + "; ".join(problems))
    return result


def _timed_logger_class(latencies: dict[str, list[int]]) -> type:
    from corft_ros.nodes.episode_logger import EpisodeLoggerNode

    class TimedLogger(EpisodeLoggerNode):
        """The logger as it runs, plus each message's receive latency: the time its callback ran minus the header
        stamp the publisher set just before publishing (one machine, one wall clock)."""

        def _enqueue(self, topic: str, data: bytes) -> None:
            now = time.time_ns()
            sec, nanosec = struct.unpack_from("<iI", data, 4)  # CDR: 4-byte encapsulation, then header.stamp
            latencies.setdefault(topic, []).append(now - (sec * 1_000_000_000 + nanosec))
            super()._enqueue(topic, data)

    return TimedLogger


class _LoggerBench:
    """The contestants, each under publisher processes of its own: the logger (with one `writer` design), timed, and a
    bare raw subscriber; every node spun in `context`, every bag written under `out_root`."""

    def __init__(self, args: argparse.Namespace, context, out_root: Path) -> None:
        from corft_ros.core.topics import camera_image, canonical

        self.args = args
        self.context = context
        self.out_root = out_root
        self.cams = [canonical(camera_image(name)) for name in ("front", "wrist")]
        self.image_bytes = args.width * args.height * 3
        self.latencies: dict[str, list[int]] = {}
        self._logger_class = _timed_logger_class(self.latencies)

    @contextlib.contextmanager
    def spinning(self, node):
        """`node` spun by its own single-threaded executor (as episode_logger's main() does) until the block ends;
        then it is destroyed."""
        import threading

        from corft_ros.nodes.common import make_executor, spin

        executor = make_executor(self.context, threads=1)
        executor.add_node(node)
        stop = threading.Event()
        thread = threading.Thread(target=spin, args=(executor, self.context, stop), daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            executor.remove_node(node)
            node.destroy_node()
            executor.shutdown()

    def with_logger(self, topics: list[str], rates: dict[str, float], seconds: float, writer: str) -> dict:
        """The logger recording `topics` published at `rates` for `seconds`: per topic published, recorded, losses
        and receive latency."""
        import shutil

        from rclpy.parameter import Parameter

        from corft_ros.core.episodes import load_episode_metadata

        args = self.args
        self.latencies.clear()
        node = self._logger_class(context=self.context, parameter_overrides=[
            Parameter("writer", value=writer),
            Parameter("output_dir", value=str(self.out_root)), Parameter("topics", value=topics),
            Parameter("compression", value=args.compression), Parameter("min_free_bytes", value=1 << 30),
            Parameter("instruction", value="bench logger"),
        ])
        with self.spinning(node):
            ok, message = node.start_episode()
            if not ok:
                raise RuntimeError(message)
            pub = _publish(rates, seconds, args.width, args.height, image_qos=args.camera_qos, js_depth=args.js_depth)
            _wait_until_recorded(node, pub["counts"])
            ep = node._writer.episode_dir  # noqa: SLF001
            ok, message = node.stop_episode()
            meta = load_episode_metadata(ep)
        topics_meta = meta["topics"]
        per_topic = {t: {"published": n + pub["failed"][t], "recorded": topics_meta.get(t, {}).get("count", 0),
                         "publish_failed": pub["failed"][t], "queue_dropped": topics_meta.get(t, {}).get("dropped", 0)}
                     for t, n in pub["counts"].items()}
        shutil.rmtree(ep, ignore_errors=True)
        self._add_latencies(per_topic)
        return {"elapsed": pub["elapsed"], "topics": per_topic}

    def _add_latencies(self, per_topic: dict) -> None:
        import numpy as np

        for topic, values in self.latencies.items():
            if topic in per_topic and values:
                ms = np.asarray(values, dtype=np.float64) / 1e6
                per_topic[topic]["receive_latency_ms"] = {
                    "p50": round(float(np.percentile(ms, 50)), 2), "p99": round(float(np.percentile(ms, 99)), 2),
                    "max": round(float(ms.max()), 2)}

    def bare(self, topic: str, seconds: float, rate: float) -> dict:
        """A bare raw subscriber (count only) under one camera publisher at `rate` (0 = flood)."""
        import rclpy
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        from corft_ros.nodes.qos import SENSOR_RELIABLE

        args = self.args
        node = rclpy.create_node("bench_bare_subscriber", context=self.context)
        count = [0]

        def cb(data: bytes) -> None:
            count[0] += 1

        qos = SENSOR_RELIABLE if args.camera_qos == "reliable" else qos_profile_sensor_data
        node.create_subscription(Image, topic, cb, qos, raw=True)
        with self.spinning(node):
            pub = _publish({topic: rate}, seconds, args.width, args.height, image_qos=args.camera_qos)
            deadline = time.monotonic() + (0.5 if rate == 0 else 6.0)
            while count[0] < pub["counts"][topic] and time.monotonic() < deadline:
                time.sleep(0.1)
        return {"published": pub["counts"][topic] + pub["failed"][topic], "received": count[0],
                "elapsed": pub["elapsed"]}

    def nominal(self, writers: list[str]) -> dict:
        """1. Nominal load: 2 cameras x 30 fps + /joint_states at 500 Hz, --runs times per writer design (--hog busy
        processes beside), the designs interleaved run by run."""
        args, cams = self.args, self.cams
        runs: dict[str, list] = {w: [] for w in writers}
        for run in range(args.runs):
            for writer in writers:
                nominal = self.with_logger(cams + [JOINT_STATES], {cams[0]: 30.0, cams[1]: 30.0, JOINT_STATES: 500.0},
                                           args.seconds, writer)
                t = nominal["topics"]
                runs[writer].append({
                    "run": run + 1,
                    "seconds": round(nominal["elapsed"], 2),
                    "published": sum(v["published"] for v in t.values()),
                    "recorded": sum(v["recorded"] for v in t.values()),
                    "dropped": sum(v["published"] - v["recorded"] for v in t.values()),
                    "queue_dropped": sum(v["queue_dropped"] for v in t.values()),
                    "topics": t,
                })
                if not args.json:
                    r = runs[writer][-1]
                    print(f"nominal run {run + 1}/{args.runs} writer={writer}: {r['dropped']} of {r['published']} lost "
                          + ", ".join(f"{k} {v['published'] - v['recorded']}" for k, v in t.items()), flush=True)
        per_writer = {w: {"runs": args.runs, "hog": args.hog, "dropped": sum(r["dropped"] for r in rs),
                          "runs_with_loss": sum(r["dropped"] > 0 for r in rs), "per_run": rs}
                      for w, rs in runs.items()}
        return {"nominal": dict(per_writer[writers[0]], writer=writers[0]), "nominal_by_writer": per_writer}

    def flood(self) -> dict:
        """The bare raw subscriber under a publisher flooding the front camera topic for --ramp-seconds."""
        flood = self.bare(self.cams[0], self.args.ramp_seconds, 0.0)
        flood_rate = flood["received"] / flood["elapsed"]
        return {
            "received_per_s": round(flood_rate, 1),
            "mb_per_s": round(flood_rate * self.image_bytes / 1e6, 1),
            "published_per_s": round(flood["published"] / flood["elapsed"], 1),
        }


def _wait_until_recorded(node, counts: dict[str, int]) -> None:
    """Lets DDS deliver what is in flight (a reliable resend can wait for the next heartbeat, ~3 s): until the logger
    has recorded (or dropped) all `counts` published per topic, 6 s at most."""
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        s = node._writer.stats()  # noqa: SLF001
        recorded = {t: v.count + v.dropped for t, v in s.topics.items()}
        if all(recorded.get(t, 0) >= n for t, n in counts.items()):
            break
        time.sleep(0.1)

