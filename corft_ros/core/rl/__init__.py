"""Offline training: bags → chunked dataset → imitation learning → CO-RFT chunked offline RL.

One concept per module: `bagio` (bags on disk), `cdr` (zero-copy image parsing), `resample`
(timestamps → control ticks), `dataset` (episodes, cache), `rewards`, `chunks` (chunked sampling),
`augment`, `il` and `corft` (the stages' configuration and target arithmetic), `learners` (every objective as
`update(batch, step) -> metrics`), `features` (the frozen backbone's features, encoded once), `trainer` (the one
stage loop, multi-process gradients, checkpoints, export).
No rclpy here.
"""
