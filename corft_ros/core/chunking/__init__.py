"""Action-chunk execution without ROS: time-keyed buffer, blending modes, safety, loop statistics."""

from corft_ros.core.chunking.blending import MODES, Blender, make_blender
from corft_ros.core.chunking.buffer import ChunkBuffer, ControlGrid, GridChunk, resample
from corft_ros.core.chunking.chunk import Chunk, ChunkError, make_chunk
from corft_ros.core.chunking.executor import ChunkExecutor, ExecutorConfig, Tick, TickState
from corft_ros.core.chunking.safety import SafetyFilter, SafetyLimits
from corft_ros.core.chunking.stats import LoopReport, LoopStats

__all__ = [
    "MODES",
    "Blender",
    "Chunk",
    "ChunkBuffer",
    "ChunkError",
    "ChunkExecutor",
    "ControlGrid",
    "ExecutorConfig",
    "GridChunk",
    "LoopReport",
    "LoopStats",
    "SafetyFilter",
    "SafetyLimits",
    "Tick",
    "TickState",
    "make_blender",
    "make_chunk",
    "resample",
]
