"""The policy node's `lerobot` backend: a LeRobot policy (ACT, diffusion, ...) served from LeRobot's own venv.

client.py   LeRobotRuntime: starts serve.py with LeRobot's interpreter, the PolicyRuntime interface over a socket
protocol.py length-prefixed JSON + raw array bytes over a local socket (no pickle); LeRobot's feature names
serve.py    the server (runs in LeRobot's venv, imports only protocol.py beside it)
"""
