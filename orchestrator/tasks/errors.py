"""TaskError: a task file that cannot be evaluated, reported before any model runs."""

from __future__ import annotations


class TaskError(ValueError):
    """A malformed task source; the message names the file URL, the example index and the field.

    It is a ValueError so callers that only know "bad input" still catch it, and a
    class of its own so the CLI can print it as a user error instead of a traceback.
    """


def undecodable(url: str, e: UnicodeDecodeError) -> TaskError:
    """A file that is not UTF-8: name the line and the byte, which Python's message leaves out."""
    data = e.object if isinstance(e.object, bytes | bytearray) else b""
    line = bytes(data[: e.start]).count(b"\n") + 1
    return TaskError(
        f"{url}: line {line} is not UTF-8 text (byte {bytes(data[e.start:e.start + 1])!r} at offset {e.start}: "
        f"{e.reason}); save the file as UTF-8"
    )


def lone_surrogate(obj: object, path: str = "") -> str | None:
    """Where in decoded JSON a string holds a lone surrogate (JSON allows "\\ud800", UTF-8 cannot hold it), or None.

    Such a string cannot be hashed, written or tokenized, so it would fail later without naming the file.
    """
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError as e:
            return f"{path or 'value'} (character {e.start}: {obj[e.start]!r})"
        return None
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        where = lone_surrogate(value, f"{path}.{key}" if isinstance(key, str) and path else
                               f"{path}[{key}]" if isinstance(key, int) else str(key))
        if where:
            return where
    return None
