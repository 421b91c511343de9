"""Episodes → per-tick arrays: what the trainer learns from and the LeRobot export writes, one definition of "the
frame at tick t". Bags are read through `core/episodes` (the format's one owner). One concept per module:

config.py    DatasetConfig (cameras, image size, rate, topics, cache folder) and the command topics
resample.py  timestamps → control ticks (latest at or before, interpolation by name)
frames.py    camera frames decoded, converted to RGB and resized only where a tick uses them
episode.py   Episode (one episode's tick arrays, label, stats) and EpisodeProblem (an episode the trainer cannot use)
streams.py   one pass over a bag: every wanted message hashed and filed under its stream
align.py     the streams resampled onto the control ticks (tick grid, clocks, state, action, frames, takeovers)
build.py     one episode's arrays (build_episode): the streams read, checked and aligned
load.py      episodes from the cache or built (load_episode), every episode of a folder (load_episodes), problems
cache.py     memory-mapped .npy arrays keyed by the bag's content and the config
synthetic.py episodes written without a robot (real rosbag2 bags): `corft-ros measure dataset`'s workload, the tests'
             fixtures
"""
