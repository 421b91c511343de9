"""LeRobot datasets without importing LeRobot: episodes out as a LeRobotDataset (format v2.1), datasets in as our
episodes. (A LeRobot *policy* served to the policy node is a policy backend: core/policy/lerobot_backend/.)

v21.py      the v2.1 layout and schema (paths, info.json, features, parquet schema, per-episode stats)
video.py    frames <-> mp4 (PyAV): lossless RGB H.264 by default, LeRobot's own AV1 setting on request
export.py   `corft-ros bag export-lerobot`: bags -> dataset, frames resampled by the trainer's own code
importer.py `corft-ros bag import-lerobot`: dataset -> episodes, written by the logger's own writer
"""
