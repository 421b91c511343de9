"""Offline training: bags → chunked dataset → imitation learning → CO-RFT chunked offline RL.

Bags are read through `core/episodes` (the format's one owner). One concept per module: `resample`
(timestamps → control ticks), `dataset` (episodes, cache), `rewards`, `chunks` (chunked sampling),
`augment`, `il` and `corft` (the stages' configuration and target arithmetic), `learners` (every objective as
`update(batch, step) -> metrics`), `features` (the frozen backbone's features, encoded once), `trainer` (the one
stage loop, multi-process gradients, checkpoints, export).
No rclpy here.
"""
