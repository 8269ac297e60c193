"""TaskError: a task file that cannot be evaluated, reported before any model runs."""

from __future__ import annotations


class TaskError(ValueError):
    """A malformed task source; the message names the file URL, the example index and the field.

    It is a ValueError so callers that only know "bad input" still catch it, and a
    class of its own so the CLI can print it as a user error instead of a traceback.
    """
