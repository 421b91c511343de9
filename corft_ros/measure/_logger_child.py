"""The publisher process of `corft-ros measure logger`: cameras and /joint_states at given rates with the QoS real
drivers use (joint_state_broadcaster: reliable, system-default depth; usb_cam: reliable depth 100; SensorDataQoS
for best effort), on a fixed schedule; prints what it published as one JSON line.
`python -m corft_ros.measure._logger_child CONFIG_JSON`."""

from __future__ import annotations

import json
import sys
import time

from corft_ros.core import topics
from corft_ros.core.topics import canonical

JOINT_STATES = canonical(topics.JOINT_STATES)


def main(cfg: dict) -> int:
    import rclpy
    from rclpy.qos import qos_profile_sensor_data, qos_profile_system_default
    from sensor_msgs.msg import Image, JointState

    rclpy.init()
    node = rclpy.create_node("bench_publisher")
    pubs, msgs, periods = {}, {}, {}
    w, h = cfg["width"], cfg["height"]
    for topic, rate in cfg["rates"].items():
        if topic == JOINT_STATES:
            # depth 0: joint_state_broadcaster's rclcpp::SystemDefaultsQoS() (reliable, keep-last, middleware depth)
            js_qos = cfg["js_depth"] or qos_profile_system_default
            pubs[topic] = node.create_publisher(JointState, topic, js_qos)
            m = JointState(name=[f"j{i}" for i in range(7)], position=[0.0] * 7, velocity=[0.0] * 7, effort=[0.0] * 7)
        else:
            # usb_cam's default is reliable, depth 100; best_effort is SensorDataQoS.
            qos = 100 if cfg["image_qos"] == "reliable" else qos_profile_sensor_data
            pubs[topic] = node.create_publisher(Image, topic, qos)
            m = Image(height=h, width=w, encoding="rgb8", step=3 * w)
            m.data = bytes(range(256)) * (h * w * 3 // 256) + bytes(h * w * 3 % 256)
        msgs[topic] = m
        periods[topic] = 1.0 / rate if rate > 0 else 0.0
    deadline = time.monotonic() + 20
    while any(p.get_subscription_count() < cfg["subscribers"] for p in pubs.values()):
        if time.monotonic() > deadline:
            print(json.dumps({"error": "no subscriber"}), flush=True)
            return 1
        time.sleep(0.01)
    time.sleep(cfg["warmup"])
    counts = {t: 0 for t in pubs}
    failed = {t: 0 for t in pubs}
    start = time.monotonic()
    nxt = {t: start for t in pubs}
    end = start + cfg["seconds"]
    while True:
        now = time.monotonic()
        if now >= end:
            break
        topic = min(nxt, key=nxt.get)
        if nxt[topic] > now:
            time.sleep(min(nxt[topic] - now, end - now))
            continue
        m = msgs[topic]
        ns = time.time_ns()
        m.header.stamp.sec, m.header.stamp.nanosec = ns // 10**9, ns % 10**9
        try:
            pubs[topic].publish(m)
            counts[topic] += 1
        except Exception:  # a reliable writer whose history is full (reader too slow): a lost frame
            failed[topic] += 1
        # Fixed schedule (no drift); a flood (period 0) publishes back to back.
        nxt[topic] = max(nxt[topic] + periods[topic], now - 0.05) if periods[topic] else now
    elapsed = time.monotonic() - start
    print(json.dumps({"counts": counts, "failed": failed, "elapsed": elapsed}), flush=True)
    time.sleep(3.0)  # stay up for reliable resends (a real camera or robot does not exit after its last frame)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(json.loads(sys.argv[1])))
