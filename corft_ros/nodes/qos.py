"""Every QoS profile corft_ros publishes or subscribes with, in one place (the topic names: core/topics.py).

- RELIABLE: services' companions, events, status, diagnostics (reliable, keep-last 10).
- RECORDED: data the episode logger records (joint states, chunks, commands): reliable, keep-last 1000. A reliable
  keep-last writer drops samples a reader has not acknowledged once its history is full, so a logger process
  stalled for a few seconds (swap, a busy machine) would lose them. 1000 = 10 s of /joint_states at 100 Hz.
  Measured: the logger paused 5 s while the sim arm published /joint_states with depth 10 lost 141 of 186
  (test_faults.py).
- LATCHED: /corft/instruction: reliable + transient local, depth 1 (a late joiner gets the current instruction); and
  /corft/episode/events, published by the logger (start | stop: the scripted teleop subscribes latched, so one whose
  subscription matched after the episode started still gets its "start"; seen under load in `ros2 launch corft_ros
  record.launch.py`: a start called as soon as the nodes were in the graph reached the logger but not the teleop,
  which never moved). A volatile reader (the executor) gets only what comes after it matched, as before.
- SENSOR_RELIABLE: the logger's reader of reliable cameras (usb_cam's depth 100).
- Cameras publish with rclpy's qos_profile_sensor_data.
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
RECORDED = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
SENSOR_RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
CLOCK = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
