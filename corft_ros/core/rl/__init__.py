"""Offline training: per-tick episodes → chunked samples → imitation learning → CO-RFT chunked offline RL.

Episodes become per-tick arrays in `core/dataset` (shared with the LeRobot export). One concept per module:
`config` (the training job's parameters), `rewards`, `chunks` (chunked sampling), `batches`, `augment`, `il` and
`corft` (the stages' target arithmetic), `learners` (every objective as `update(batch, step) -> metrics`), `features`
(the frozen backbone's features, encoded once), `diagnostics` (the critic checked on held-out episodes),
`training_data` (the job's episodes, instruction embeddings and policy config), `loop` (the one stage loop, its
batches, scalars and checkpoints), `trainer` (the job: stages, resume, multi-process gradients, export),
`distributed`.
No rclpy here.
"""
