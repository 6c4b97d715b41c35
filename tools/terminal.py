"""Terminal helpers shared by the operator tools (status, teleop), made for a plain SSH session: no
display, no window system, only the tty.

- ``KeyReader``: stdin in cbreak mode (keys arrive one at a time, unechoed; Ctrl-C still signals) for
  as long as it is entered. The saved terminal settings are restored on every way out: a normal exit,
  an exception, Ctrl-C, and SIGTERM / SIGHUP (turned into ``SystemExit`` while it is entered, so the
  ``finally`` blocks of the tool run: the lease returned, the cursor shown). When stdin is not a tty
  it reads nothing and leaves the terminal alone.
- ``Screen``: a redrawn block of lines on a tty (cursor home, each line erased to its end, the rest
  of the screen cleared: no flicker from a full clear), or plain blocks of lines when stdout is not
  a tty (a log, a pipe).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import sys
from types import FrameType, TracebackType
from typing import Any, TextIO

CURSOR_HOME = "\x1b[H"
ERASE_LINE_END = "\x1b[K"
ERASE_BELOW = "\x1b[J"
HIDE_CURSOR = "\x1b[?25l"
SHOW_CURSOR = "\x1b[?25h"
RESET = "\x1b[0m"
BOLD_RED = "\x1b[1;31m"
REVERSE = "\x1b[7m"

ALERT_PREFIX = "!"   # a rendered line that needs the operator's eyes (a fault, a stale lease)
WORST_PREFIX = ">"   # the worst row of a table


def terminal_size(default: tuple[int, int] = (100, 40)) -> tuple[int, int]:
    """(columns, lines) of the terminal, `default` when there is none."""
    size = shutil.get_terminal_size(default)
    return max(1, size.columns), max(1, size.lines)


def clip(line: str, width: int) -> str:
    """`line` cut to `width` characters (at least one), the cut marked with '~'."""
    width = max(1, width)
    if len(line) <= width:
        return line
    return line[: width - 1] + "~" if width > 1 else line[:1]


def highlight(line: str) -> str:
    """ANSI colour for a rendered line by its prefix (alerts red, the worst row reversed)."""
    if line.startswith(ALERT_PREFIX):
        return BOLD_RED + line + RESET
    if line.startswith(WORST_PREFIX):
        return REVERSE + line + RESET
    return line


class KeyReader:
    """Keys from stdin in cbreak mode while entered (only when stdin is a tty; else `enabled` is False
    and `read` returns nothing after waiting)."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stdin
        try:
            self.fd: int | None = self.stream.fileno()
        except (AttributeError, OSError, ValueError):
            self.fd = None
        self.enabled = self.fd is not None and os.isatty(self.fd)
        self._saved: list[Any] | None = None
        self._old_handlers: dict[int, Any] = {}

    def __enter__(self) -> KeyReader:
        self._install_signals()  # also without a tty: the tool's finally blocks run on SIGTERM
        if self.enabled and self.fd is not None:
            import termios
            import tty

            self._saved = termios.tcgetattr(self.fd)
            try:
                tty.setcbreak(self.fd, termios.TCSANOW)
            except BaseException:
                self.restore()
                raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.restore()

    def _install_signals(self) -> None:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers belong to the main thread; the caller's own handling applies

        def terminate(signum: int, _frame: FrameType | None) -> None:
            raise SystemExit(128 + signum)

        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, terminate)

    def restore(self) -> None:
        """Put the terminal settings and signal handlers back (idempotent)."""
        if self._saved is not None and self.fd is not None:
            import termios

            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            except (OSError, termios.error):
                pass  # the terminal went away (a dropped SSH session): nothing left to restore
            self._saved = None
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers = {}

    def read(self, timeout_s: float) -> list[str]:
        """The keys typed within `timeout_s` (returns as soon as some arrive; [] after the timeout)."""
        if not self.enabled or self.fd is None:
            if timeout_s > 0:
                select.select([], [], [], timeout_s)
            return []
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout_s))
        if not ready:
            return []
        data = os.read(self.fd, 1024)
        if not data:  # end of input (the terminal closed)
            self.enabled = False
            return []
        return list(data.decode("utf-8", errors="replace"))


class Screen:
    """Draws blocks of lines: redrawn in place on a tty, appended as plain text otherwise."""

    def __init__(self, out: TextIO | None = None, tty: bool | None = None):
        self.out = out if out is not None else sys.stdout
        if tty is None:
            try:
                tty = os.isatty(self.out.fileno())
            except (AttributeError, OSError, ValueError):
                tty = False
        self.tty = bool(tty)
        self._started = False

    def __enter__(self) -> Screen:
        if self.tty:
            self.out.write(HIDE_CURSOR)
            self.out.flush()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.tty:
            try:
                self.out.write(SHOW_CURSOR + "\n")
                self.out.flush()
            except (OSError, ValueError):
                pass

    def size(self) -> tuple[int, int]:
        return terminal_size() if self.tty else (160, 1000)  # a log or a pipe: long lines are fine

    def draw(self, lines: list[str]) -> None:
        if self.tty:
            _, rows = self.size()
            room = max(1, rows - 1)  # the last line's newline must not scroll the screen
            if len(lines) > room:
                more = len(lines) - room + 1
                lines = lines[: room - 1] + [clip(f"... {more} more line(s): enlarge the terminal", self.size()[0])]
            body = "".join(highlight(line) + ERASE_LINE_END + "\r\n" for line in lines)
            self.out.write(CURSOR_HOME + body + ERASE_BELOW)
        else:
            if self._started:
                self.out.write("\n")
            self.out.write("\n".join(lines) + "\n")
        self._started = True
        self.out.flush()
