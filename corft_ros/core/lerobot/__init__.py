"""LeRobot interop without importing LeRobot: episodes out as a LeRobotDataset (format v2.1), datasets in as our
episodes, and the wire protocol of the LeRobot policy server (`serve.py`, run in LeRobot's own venv).

v21.py      the v2.1 layout and schema (paths, info.json, features, parquet schema, per-episode stats)
video.py    frames <-> mp4 (PyAV): lossless RGB H.264 by default, LeRobot's own AV1 setting on request
export.py   `corft-ros bag export-lerobot`: bags -> dataset, frames resampled by the trainer's own code
importer.py `corft-ros bag import-lerobot`: dataset -> episodes, written by the logger's own writer
protocol.py length-prefixed JSON + raw array bytes over a local socket (no pickle)
serve.py    the policy server (LeRobot's venv: a LeRobot policy answers chunk requests)
"""
