"""Single key presses from the terminal (cbreak mode), read in a thread: the one keyboard reader of teleop, record
and the benchmark's real-arm labelling. Nothing is read when stdin is not a terminal (`interactive` is False)."""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable


class TerminalKeys:
    """Keys go to `on_key` when given (called on the reader thread), else into a queue read with `get()`."""

    def __init__(self, on_key: Callable[[str], None] | None = None, name: str = "terminal-keys") -> None:
        self.interactive = sys.stdin.isatty()
        self._queue: queue.Queue[str] = queue.Queue()
        self._on_key = on_key or self._queue.put
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.interactive:
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        import select
        import termios
        import tty

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            while not self._stop.is_set():
                if select.select([sys.stdin], [], [], 0.1)[0]:
                    self._on_key(sys.stdin.read(1))
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    def get(self, timeout: float = 0.0) -> str | None:
        """The next key pressed (waiting up to `timeout` s), None when there is none."""
        try:
            return self._queue.get(timeout=timeout) if timeout else self._queue.get_nowait()
        except queue.Empty:
            return None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
