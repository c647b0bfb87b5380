"""The one root exception of ddctl.

Every failure a user can meet is raised as a DdctlError whose message is one sentence
that says what happened and what to do next; the CLI prints it on stderr and exits with
`exit_code`, with no traceback unless --debug is given.
"""

from typing import Optional


def one_line(text: object, limit: int = 300) -> str:
    """text on one line (white space folded), cut to `limit` characters with an ellipsis."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class DdctlError(Exception):
    exit_code = 1

    def __init__(self, message: str, exit_code: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class DockerUnavailable(DdctlError):
    """Docker did not answer, or answered in a way we cannot use."""


class UsageError(DdctlError):
    """The user's input cannot be used (bad argument, not a picture, unknown layer...)."""

    exit_code = 2


class Interrupted(DdctlError):
    """Ctrl-C: stopped cleanly."""

    exit_code = 130
