"""The episode format's error types, in one place. Every message names the path (or type) and what is wrong on one
line, so a command can print it as is.

- `EpisodeReadError`: an episode, its bag or a message in it cannot be read or used (the readers, the trainer's
  dataset, label and repair raise it; `CdrError` and the dataset's `EpisodeProblem` are kinds of it).
- `DiskFullError`: recording stopped because free space fell below the configured minimum.
- `TypeResolutionError`: a topic's message type has no known definition, so it cannot be recorded.
"""

from __future__ import annotations


class EpisodeReadError(ValueError):
    """An episode folder or bag cannot be read; the message names the path and the reason."""


class CdrError(EpisodeReadError):
    """A serialized message is not what its type says (truncated or malformed)."""


class DiskFullError(OSError):
    """Free space on the output file system fell below the configured minimum."""


class TypeResolutionError(LookupError):
    """A message type has no known definition."""
