"""The embedded default robot: OGBench's MuJoCo cube scene (UR5e + Robotiq 2F-85) behind joint-level
interfaces, plus a scripted human-like operator for recording demos with no person."""
