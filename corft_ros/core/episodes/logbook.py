"""The episode logger's bookkeeping, without ROS: its output folder checks, what it keeps between and during episodes
(the latched messages each bag starts with, the executor's takeover changes, the topics reported missing, when the
episode started, the last episode), what a stopped episode's metadata gains from them (`extra.missing_topics`,
`extra.interventions`), and labelling the running or the last episode. The node (nodes/episode_logger.py) owns the
writer and the lock, calls these under it, and turns the messages returned here into its log lines and replies.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from corft_ros.core.episodes.interventions import segments
from corft_ros.core.episodes.interventions import summary as intervention_summary
from corft_ros.core.episodes.label import set_episode_label
from corft_ros.core.episodes.metadata import EpisodeMetadata


def create_output_dir(folder: Path) -> bool:
    """Create a missing output folder with its parents; True when this call created it (False when it exists, or
    another logger created it meanwhile). An OSError is the caller's to report. The logger calls it at startup
    (relative: to the folder the node was started from, as `ros2 bag record` does), so `ros2 launch` works from any
    folder; later, a folder that went away (an unmounted disk) is reported at the next start (`output_dir_problem`)
    instead of being created again elsewhere."""
    if folder.exists():
        return False
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        return False
    return True


def output_dir_problem(folder: Path) -> str:
    """Why episodes cannot be written under `folder` ("" when they can)."""
    if not folder.exists():
        return f"output folder {folder} does not exist"
    if not folder.is_dir():
        return f"output folder {folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"output folder {folder} is not writable"
    return ""


def stop_report(episode_dir: Path, meta: EpisodeMetadata) -> tuple[bool, str, str]:
    """(stopped cleanly, the one line a stopped episode is logged and answered with, the error to report or "")."""
    summary = (f"{episode_dir}: {meta.message_total} messages, {meta.dropped_total} dropped, "
               f"{meta.duration_s or 0:.1f} s, status {meta.status}")
    problem = "" if meta.status == "stopped" else (f"episode {episode_dir.name} ended with status {meta.status}: "
                                                   f"{meta.error}")
    return meta.status == "stopped", summary, problem


def label_running(meta: EpisodeMetadata, name: str, success: bool, cycle_time_s: float) -> tuple[bool, str]:
    """Label the running episode `name` (its writer's `meta`; success also sets the cycle time)."""
    meta.success = success
    if success:
        meta.cycle_time_s = cycle_time_s
    return True, f"episode {name} labelled {'success' if success else 'failure'}"


def label_closed(last: Path | None, success: bool, cycle_time_s: float | None) -> tuple[bool, str]:
    """Label the last (closed) episode; without a cycle time a success takes the episode's duration."""
    if last is None:
        return False, "no episode to label: nothing recorded yet"
    try:
        meta = set_episode_label(last, success, cycle_time_s if success else None)
        if success and meta.cycle_time_s is None and meta.duration_s is not None:
            set_episode_label(last, success, cycle_time_s=meta.duration_s)
    except Exception as exc:
        return False, f"cannot label {last}: {exc}"
    return True, f"episode {last.name} labelled {'success' if success else 'failure'}"


class LoggerBook:
    """What the logger keeps between and during episodes; the node calls it under its own lock."""

    def __init__(self) -> None:
        self.last_episode: Path | None = None
        self.missing_reported: set[str] = set()
        self.start_mono = 0.0  # time.monotonic() at the episode's start
        self.start_clock = 0.0  # the node clock (s) at the episode's start
        self.latched: dict[str, bytes] = {}
        self.latched_in_episode: dict[str, bytes] = {}  # what this episode's bag already holds per latched topic
        self.intervening = False  # the executor's takeover state (corft/intervention), and its changes this episode
        self.intervention_changes: list[tuple[float, bool]] = []
        self.intervention_seen = False  # an executor that can be taken over is in the graph
        self.intervening_at_start = False

    def intervention(self, engaged: bool, now_s: float, recording: bool) -> None:
        """The executor's takeover state: its changes during an episode become the episode's intervention segments."""
        self.intervention_seen = True
        if engaged != self.intervening:
            self.intervening = engaged
            if recording:
                self.intervention_changes.append((now_s, engaged))

    def keep_latched(self, topic: str, data: bytes) -> bool:
        """Keep a latched topic's last message for the next episode; True when this episode's bag holds these bytes
        already: the same bytes again within an episode are the latched sample delivered twice (seen with Fast DDS as
        a reader matches while the writer publishes), not a new message, and are recorded once."""
        repeat = self.latched_in_episode.get(topic) == data
        self.latched[topic] = self.latched_in_episode[topic] = data
        return repeat

    def begin(self, writer: Any, subscribed: Mapping[str, str], add_topic: Callable[[Any, str, str], None],
              clock_s: Callable[[], float], mono_s: Callable[[], float]) -> str | None:
        """Start an episode's `writer`: its topics (`add_topic(writer, topic, msgtype)` for each subscribed one), then
        the latched messages (the state it starts in); `clock_s()`/`mono_s()` read the node clock and
        time.monotonic() once it runs. Returns why it could not start (nothing changed then), None when it did."""
        try:
            writer.start()
        except (OSError, ValueError) as exc:
            return str(exc)
        for topic, msgtype in list(subscribed.items()):
            add_topic(writer, topic, msgtype)
        for topic, data in list(self.latched.items()):
            writer.write(topic, data)
        self.latched_in_episode = dict(self.latched)
        self.intervening_at_start, self.intervention_changes = self.intervening, []
        self.start_clock = clock_s()
        self.missing_reported.clear()
        self.start_mono = mono_s()
        return None

    def newly_missing(self, required: list[str], counts: Mapping[str, Any], failed: Mapping[str, str],
                      count_publishers: Callable[[str], int]) -> list[str]:
        """Each required topic, not reported yet this episode nor failing to resolve, that has no publisher and
        nothing recorded (`counts`: the writer's per-topic statistics); these count as reported from now on."""
        out = []
        for topic in required:
            if topic in self.missing_reported or topic in failed:
                continue
            stats = counts.get(topic)
            if (stats is None or stats.count == 0) and count_publishers(topic) == 0:
                self.missing_reported.add(topic)
                out.append(topic)
        return out

    def finish(self, extra: dict, stop_clock_s: float) -> None:
        """What the stopping episode's metadata (`extra`) gains: the topics missing in it, its intervention
        segments (when an executor that can be taken over was seen)."""
        missing = sorted(self.missing_reported)
        if missing:
            extra["missing_topics"] = missing
        spans = segments(self.intervention_changes, self.start_clock, stop_clock_s, self.intervening_at_start)
        if spans or self.intervention_seen:
            extra["interventions"] = intervention_summary(spans)
