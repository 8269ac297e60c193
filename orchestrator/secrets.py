"""Keep secrets out of MLflow params, artifacts and logs.

Config keys that name a credential are dropped, and user:password parts of
URLs are masked, before anything leaves the process.
"""

from __future__ import annotations

import re
from typing import Any

SECRET_KEY = re.compile(r"(token|password|passwd|secret|credential|api[_-]?key|access[_-]?key|private[_-]?key)", re.I)
URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/@\s]+)@")
MASK = "***"


def redact_text(text: str) -> str:
    """Mask `user:pass@` in any URL inside `text`."""
    return URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)


def redact(obj: Any) -> Any:
    """A copy of nested dicts/lists with secret-named keys masked and URL credentials removed."""
    if isinstance(obj, dict):
        return {k: (MASK if SECRET_KEY.search(str(k)) else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj)
    return obj
