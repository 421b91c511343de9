"""Offline training: bags → chunked dataset → imitation learning → CO-RFT chunked offline RL.

One concept per module: `bagio` (bags on disk), `cdr` (zero-copy image parsing), `resample`
(timestamps → control ticks), `dataset` (episodes, cache), `rewards`, `chunks` (chunked sampling),
`augment`, `il` (stage 1), `corft` (stage 2), `trainer` (the loop, DDP, checkpoints, export).
No rclpy here.
"""
