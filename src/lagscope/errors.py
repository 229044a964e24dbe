"""The exit-code table and the one exception type that the CLI turns into a one-line error.

Every failure a user can cause or meet (bad input, unreachable target, misbehaving server)
is raised as :class:`LagscopeError` with an :class:`ExitCode`. The CLI prints
``lagscope: <phase>: <message>`` on one line and exits with the code; it never shows a
traceback for these. Codes are part of the documented interface (README's exit-code table):
never renumber them.
"""

from __future__ import annotations

import enum

from lagscope.console import printable


class ExitCode(enum.IntEnum):
    # The run completed and every gate passed.
    OK = 0
    # The run completed but a gate failed (e.g. probe --budget exceeded).
    GATE_FAILED = 1
    # Bad command-line input or bad configuration file (click uses 2 for usage errors too).
    USAGE = 2
    # A host name could not be resolved.
    RESOLVE = 3
    # No address accepted a TCP connection (refused or unreachable).
    CONNECT = 4
    # A phase exceeded its timeout.
    TIMEOUT = 5
    # The TLS handshake failed (certificate, protocol).
    TLS = 6
    # The peer spoke something other than valid HTTP/1.x, closed mid-message,
    # or sent more than the configured cap.
    PROTOCOL = 7
    # A local resource problem: port in use, file not writable, missing binary.
    ENVIRONMENT = 8
    # Something lagscope did not expect: a bug, reported in one line (sysexits' EX_SOFTWARE).
    INTERNAL = 70
    # Interrupted by the user (Ctrl+C / SIGTERM); 130 follows the shell convention.
    INTERRUPTED = 130


class LagscopeError(Exception):
    """A failure with a one-line, user-facing explanation.

    ``phase`` names what failed ("resolve", "connect", "tls", "wait", "config", ...), so the
    line reads ``lagscope: connect: 127.0.0.1:9 refused the connection``.
    """

    def __init__(self, phase: str, message: str, exit_code: ExitCode) -> None:
        super().__init__(f"{phase}: {message}")
        self.phase = phase
        self.message = message
        self.exit_code = exit_code

    def one_line(self) -> str:
        # Newlines from wrapped OS errors would break the one-line contract; a message may
        # quote a server or a file, so no control character reaches the terminal.
        return printable(f"{self.phase}: {' '.join(self.message.split())}")
