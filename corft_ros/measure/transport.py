"""`corft-ros measure transport`: camera images between two processes over real DDS — raw vs JPEG vs PNG.

What a policy on another machine costs: a publisher process plays the cameras (frames rendered by the bundled MuJoCo
scene at the requested size, optionally with sensor-like noise), encodes them with the camera node's code
(`corft_ros.core.images.encode_compressed`) and publishes sensor_msgs/Image or sensor_msgs/CompressedImage with
SensorDataQoS; this process subscribes, takes the serialized bytes (what crossed DDS), deserializes and decodes them
to RGB as the policy node does. Stamps are the capture time (before encoding), read from the clock both processes
share. By default Fast DDS is restricted to UDPv4 (FASTDDS_BUILTIN_TRANSPORTS=UDPv4, which rmw_fastrtps ignores
under ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, so that is left unset: discovery on the subnet, in a random domain),
the path two machines use, here over loopback; `--dds default` keeps Fast DDS's own choice with discovery limited to
localhost: shared memory between the two processes, as on one host. The JSON says which was used (shared-memory
segments mapped, loopback bytes counted by the kernel).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from corft_ros.measure._common import cpu_name, isolated_domain
from corft_ros.measure._transport_child import WARMUP_S, _render_frames
from corft_ros.measure._transport_endpoints import _PublisherLink, _Subscriber

CODECS = ("raw", "jpeg", "png")


def register(benches: argparse._SubParsersAction) -> None:
    p = benches.add_parser(
        "transport", help="camera images between two processes over DDS: raw vs JPEG/PNG bandwidth and latency",
        description=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--cameras", type=int, default=2, help="cameras published at once (default 2)")
    p.add_argument("--width", type=int, default=640, help="image width (px)")
    p.add_argument("--height", type=int, default=480, help="image height (px)")
    p.add_argument("--fps", type=float, default=30.0, help="frames per second per camera")
    p.add_argument("--seconds", type=float, default=8.0, help="measured seconds per case (after 1 s warm-up)")
    p.add_argument("--codecs", nargs="+", choices=CODECS, default=list(CODECS), help="raw, jpeg, png")
    p.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality (camera node default 95)")
    p.add_argument("--png-level", type=int, default=3, help="PNG level (camera node default 3)")
    p.add_argument("--noise", type=float, nargs="+", default=[0.0, 2.0], metavar="STD",
                   help="Gaussian noise std (grey levels) added to the rendered frames, one case set per value: "
                        "0 = clean renders; a real sensor's noise makes JPEG/PNG frames larger (default 0 2)")
    p.add_argument("--dds", choices=("udp", "default"), default="udp",
                   help="udp: Fast DDS over UDPv4 only (the path between two machines); default: Fast DDS's own "
                        "choice (shared memory between two processes on one host)")
    p.add_argument("--socket-buffer", type=int, default=0, metavar="BYTES",
                   help="--dds udp: UDP send/receive socket buffer size for Fast DDS (an XML profile; the kernel caps "
                        "it at net.core.rmem_max/wmem_max); 0 = Fast DDS's default")
    p.add_argument("--qos", choices=("sensor_data", "reliable"), default="sensor_data",
                   help="sensor_data: best effort, depth 5 (what the camera and policy nodes use); reliable: "
                        "reliable, depth 5 on both ends")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_bench_transport)


def _pct(values: list[float], q: float) -> float | None:
    import numpy as np

    return round(float(np.percentile(values, q)), 3) if values else None


def _shm_segments(pid: int | str = "self") -> int:
    """Fast DDS shared-memory segments mapped by a process (0 when its data goes over UDP only)."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return -1
    return len({line.split()[-1] for line in maps.splitlines() if "/dev/shm/fast" in line})


_UDP_PROFILE = """<?xml version="1.0" encoding="UTF-8" ?>
<profiles xmlns="http://www.eprosima.com">
  <transport_descriptors>
    <transport_descriptor>
      <transport_id>udp_buffers</transport_id>
      <type>UDPv4</type>
      <sendBufferSize>{size}</sendBufferSize>
      <receiveBufferSize>{size}</receiveBufferSize>
    </transport_descriptor>
  </transport_descriptors>
  <participant profile_name="corft_bench_transport" is_default_profile="true">
    <rtps>
      <userTransports><transport_id>udp_buffers</transport_id></userTransports>
      <useBuiltinTransports>false</useBuiltinTransports>
    </rtps>
  </participant>
</profiles>
"""


def _sysctl(name: str) -> int | None:
    try:
        return int(Path("/proc/sys/net/core", name).read_text())
    except (OSError, ValueError):
        return None


def _loopback_bytes() -> int | None:
    """Bytes received on the loopback interface so far (kernel counter; every process's traffic)."""
    try:
        for line in Path("/proc/net/dev").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name.strip() == "lo":
                return int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return None


def cmd_bench_transport(args: argparse.Namespace) -> int:
    from corft_ros.core.images import ImageError, check_compression

    if args.cameras < 1 or args.width < 16 or args.height < 16 or args.fps <= 0 or args.seconds <= 0:
        print("error: --cameras >= 1, --width/--height >= 16, --fps and --seconds > 0", file=sys.stderr)
        return 2
    try:
        check_compression("jpeg", args.jpeg_quality, args.png_level)
    except ImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if any(s < 0 for s in args.noise):
        print("error: --noise values must be >= 0", file=sys.stderr)
        return 2
    # DDS setup before rclpy starts, here and (inherited) in the publisher process
    if args.socket_buffer < 0 or (args.socket_buffer and args.dds != "udp"):
        print("error: --socket-buffer takes bytes >= 0 and applies to --dds udp", file=sys.stderr)
        return 2
    os.environ["ROS_DOMAIN_ID"] = str(isolated_domain(120, 200))
    os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    if args.dds == "udp":
        # measured: with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST rmw_fastrtps sets the transports itself (shared
        # memory between local processes) and FASTDDS_BUILTIN_TRANSPORTS has no effect
        os.environ["FASTDDS_BUILTIN_TRANSPORTS"] = "UDPv4"
        os.environ.pop("ROS_AUTOMATIC_DISCOVERY_RANGE", None)
        os.environ.pop("ROS_LOCALHOST_ONLY", None)
    else:
        os.environ.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    import numpy as np

    count = 30
    frames, content = _render_frames(args.cameras, args.width, args.height, count)
    with tempfile.TemporaryDirectory(prefix="corft-bench-transport-") as tmp:
        if args.socket_buffer:
            profile = Path(tmp) / "fastdds_udp.xml"
            profile.write_text(_UDP_PROFILE.format(size=args.socket_buffer))
            os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
            os.environ.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
        frames_path = Path(tmp) / "frames.npz"
        np.savez(frames_path, **{f"cam{i}": np.stack(f) for i, f in enumerate(frames)})
        del frames
        prefix = f"/corft_bench_transport_{os.getpid()}"
        config = {"cameras": args.cameras, "fps": args.fps, "jpeg_quality": args.jpeg_quality,
                  "png_level": args.png_level, "prefix": prefix, "qos": args.qos}
        child = subprocess.Popen(
            [sys.executable, "-m", "corft_ros.measure._transport_child", "--publisher", str(frames_path),
             json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dict(os.environ))
        try:
            result = _measure(args, child, prefix, content)
        finally:
            if child.poll() is None:
                try:
                    child.stdin.write('"quit"\n')
                    child.stdin.flush()
                    child.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    child.kill()
                    child.wait()
    if result is None:
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for noise, cases in result["results"].items():
            for codec, r in cases.items():
                size = f"{r['bytes_per_frame_mean'] / 1e3:8.1f}" if r["bytes_per_frame_mean"] else "     n/a"
                print(f"noise {noise:>4} {codec:5s} {size} kB/frame {r['received_mb_per_s']:7.2f} MB/s received "
                      f"({r['received_fps']:.1f} fps, lost {r['lost_fraction']:.1%}) latency p50 "
                      f"{r['capture_to_decoded_ms']['p50']} ms p95 {r['capture_to_decoded_ms']['p95']} ms, added vs "
                      f"raw p50 {(r.get('added_vs_raw_ms') or {}).get('p50', 'n/a')} ms")
    return 0


def _measure(args: argparse.Namespace, child: subprocess.Popen, prefix: str, content: str) -> dict | None:
    link = _PublisherLink(child)
    subscriber = _Subscriber(args, prefix)
    try:
        link.answer(120)  # ready: frames loaded, publishers created
        subscriber.wait_for_publishers(30)
        load = [round(x, 2) for x in os.getloadavg()]
        results: dict = {}
        for noise in args.noise:
            results[f"{noise:g}"] = _noise_cases(args, link, subscriber, noise)
        load_after = [round(x, 2) for x in os.getloadavg()]
        shm = {"subscriber": _shm_segments(), "publisher": _shm_segments(child.pid)}
    except TimeoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    finally:
        subscriber.close()
    return _report(args, content, {"before": load, "after": load_after}, shm, results)


def _noise_cases(args: argparse.Namespace, link: _PublisherLink, subscriber: _Subscriber, noise: float) -> dict:
    """Every codec's case at one noise level, each compressed one with its latency added over raw's."""
    cases: dict = {}
    for codec in args.codecs:
        subscriber.clear()
        lo_start = _loopback_bytes()
        link.send({"codec": codec, "noise": noise, "seconds": args.seconds + WARMUP_S})
        sent = link.answer(args.seconds + 120)
        got = subscriber.settled_records()
        lo_end = _loopback_bytes()
        cases[codec] = _case_stats(args, codec, noise, sent, got)
        if lo_start is not None and lo_end is not None:
            seconds = (time.time_ns() - sent["start_ns"]) / 1e9
            cases[codec]["loopback_mb_per_s_all_traffic"] = round((lo_end - lo_start) / seconds / 1e6, 3)
    raw = cases.get("raw")
    for codec, case in cases.items():
        if raw is None or codec == "raw":
            continue
        if raw["received"] and raw["lost_fraction"] <= 0.1:
            case["added_vs_raw_ms"] = {  # difference of the percentiles
                q: round(case["capture_to_decoded_ms"][q] - raw["capture_to_decoded_ms"][q], 3)
                for q in ("p50", "p95")}
        else:  # the few raw frames that got through are no baseline
            case["added_vs_raw_ms"] = None
    return cases


def _report(args: argparse.Namespace, content: str, loadavg: dict, shm: dict, results: dict) -> dict:
    return {
        "bench": "transport",
        "what": "camera frames publisher process -> subscriber process over real DDS (Fast DDS), SensorDataQoS; "
                "latency = capture stamp -> received (encode + publish + DDS) and -> decoded to RGB (+ deserialize "
                "+ decode, what the policy node needs); bandwidth = serialized CDR bytes received per second "
                "(RTPS/UDP/IP headers not included)",
        "content": content,
        "cameras": args.cameras, "size": f"{args.width}x{args.height}", "fps": args.fps,
        "seconds_per_case": args.seconds, "warmup_s": WARMUP_S,
        "jpeg_quality": args.jpeg_quality, "png_level": args.png_level,
        "qos": "SensorDataQoS (best effort, keep last 5)" if args.qos == "sensor_data" else "reliable, keep last 5",
        "dds": {"transport": ("Fast DDS default, discovery range LOCALHOST (shared memory between processes on "
                              "one host)" if args.dds == "default" else
                              f"UDPv4 only (an XML profile: {args.socket_buffer}-byte socket buffers), over loopback"
                              if args.socket_buffer else
                              "UDPv4 only (FASTDDS_BUILTIN_TRANSPORTS=UDPv4), over loopback"),
                "rmw": os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp (default)"),
                "udp_socket_buffer_bytes": args.socket_buffer or "Fast DDS default",
                "net_core_rmem_max": _sysctl("rmem_max"), "net_core_wmem_max": _sysctl("wmem_max"),
                "fastdds_shm_segments_mapped": shm},
        "cpu": cpu_name(), "cpus": os.cpu_count(), "loadavg_1_5_15": loadavg,
        "results": results,
        "noise_std": {f"{n:g}": "clean renders" if n == 0 else f"Gaussian sensor-like noise, std {n:g} grey levels"
                      for n in args.noise},
    }


def _case_stats(args: argparse.Namespace, codec: str, noise: float, sent: dict, got: list[tuple]) -> dict:
    start = sent["start_ns"] + int(WARMUP_S * 1e9)
    got = [r for r in got if r[2] >= start]
    n_sent = sum(c["sent"] for c in sent["cameras"])
    total_bytes = sum(r[1] for r in got)
    encode = [x for c in sent["cameras"] for x in c["encode_ms"]]
    publish = [x for c in sent["cameras"] for x in c["publish_ms"]]
    return {
        "sent": n_sent, "received": len(got), "lost_fraction": round(1 - len(got) / n_sent, 4) if n_sent else None,
        "late_frames": sum(c["late"] for c in sent["cameras"]),
        "received_fps": round(len(got) / args.seconds, 2),
        "bytes_per_frame_mean": round(total_bytes / len(got)) if got else None,
        "received_mb_per_s": round(total_bytes / args.seconds / 1e6, 3),
        f"needed_mb_per_s_at_{args.cameras}x{args.fps:g}fps": round(
            total_bytes / len(got) * args.cameras * args.fps / 1e6, 3) if got else None,
        "encode_ms": {"p50": _pct(encode, 50), "p95": _pct(encode, 95)},
        "publish_call_ms": {"p50": _pct(publish, 50), "p95": _pct(publish, 95)},
        "capture_to_received_ms": {"p50": _pct([(r[3] - r[2]) / 1e6 for r in got], 50),
                                   "p95": _pct([(r[3] - r[2]) / 1e6 for r in got], 95)},
        "deserialize_and_decode_ms": {"p50": _pct([r[5] * 1e3 for r in got], 50),
                                      "p95": _pct([r[5] * 1e3 for r in got], 95)},
        "capture_to_decoded_ms": {"p50": _pct([(r[4] - r[2]) / 1e6 for r in got], 50),
                                  "p95": _pct([(r[4] - r[2]) / 1e6 for r in got], 95)},
    }


    print("usage: corft-ros measure transport [--json] (this module's own entry point is the publisher process)",
          file=sys.stderr)
    raise SystemExit(2)
