"""Episodes → per-tick arrays: what the trainer learns from and the LeRobot export writes, one definition of "the
frame at tick t". Bags are read through `core/episodes` (the format's one owner). One concept per module:

config.py    DatasetConfig (cameras, image size, rate, topics, cache folder) and the command topics
resample.py  timestamps → control ticks (latest at or before, interpolation by name)
frames.py    camera frames decoded, converted to RGB and resized only where a tick uses them
build.py     one episode's arrays (build_episode), every episode of a folder (load_episodes), problems per episode
cache.py     memory-mapped .npy arrays keyed by the bag's content and the config
"""
