"""Keep credentials out of MLflow params, artifacts, manifest.json, printed lines and logs.

Two nets, both needed:

- **By name.** A key is a credential when its last word says so (`password`,
  `secret`, `token`, `api_key`, `aws_secret_access_key`, `X-Amz-Signature`...),
  split on `_ - .` and camelCase, so `HF_TOKEN`, `hub_token`, `apiKey` and
  `tracking.password` are masked while `max_new_tokens`, `tokenizer`,
  `token_edit_distance`, `n_tokens` (other words) and `pad_token`, `eos_token`
  (a tokenizer's special tokens) are kept: a mask on a real parameter loses a
  number a scientist needs.
- **By value.** Strings that look like a credential are masked wherever they
  appear, whatever their key: Hugging Face (`hf_...`), GitHub (`ghp_...`,
  `github_pat_...`), OpenAI-style (`sk-...`), Slack (`xox?-...`), AWS access key
  ids (`AKIA...`), Google API keys (`AIza...`), JWTs, `Bearer ...` headers,
  PEM private keys; inside URLs the `user:password@` part and credential-named
  query parameters (`?token=...`, `X-Amz-Signature=...`); and `name=value` /
  `name: value` pairs in free text whose name is a credential.

The formats come from the vendors' documentation of their token prefixes
(huggingface.co/docs/hub/security-tokens, GitHub's "About authentication"
token prefixes, AWS IAM "unique ID prefixes").
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"

# last words that make a key a credential on their own
_SECRET_WORDS = frozenset({
    "password", "passwd", "pwd", "passphrase", "secret", "secrets", "credential", "credentials",
    "apikey", "authorization", "cookie", "signature", "sig", "privatekey",
})
# `..._token`: a credential unless it is a tokenizer's special token or a count
_NOT_CREDENTIAL_TOKEN = frozenset({
    "pad", "eos", "bos", "unk", "sep", "cls", "mask", "start", "end", "stop", "special", "begin", "image",
    "audio", "video", "placeholder", "decoder", "max", "min", "num", "n", "total", "first", "last", "new",
    "prefix", "suffix", "middle", "fim", "system", "user", "assistant", "eot", "eom",
})
# `..._key`: a credential only with a qualifier that says so (`sort_key`, `cache_key` are not)
_KEY_QUALIFIERS = frozenset({
    "api", "secret", "access", "private", "account", "signing", "encryption", "master", "client", "auth",
    "ssh", "license", "subscription", "storage", "sas", "service", "hmac", "app", "consumer", "session",
    "shared", "admin", "deploy", "write", "read",
})
# exact names (after normalisation) that are credentials though their last word is not
_SECRET_NAMES = frozenset({"access_key_id", "aws_access_key_id", "connection_string"})
# URL query parameters that carry credentials though the name alone is generic (Google `?key=`, OAuth `?code=`)
_QUERY_NAMES = frozenset({"key", "code", "auth"})

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def _words(key: str) -> list[str]:
    return [w.lower() for part in re.split(r"[\s_\-./:\[\]]+", key) for w in _WORD.findall(part)]


def is_secret_key(key: object) -> bool:
    """True when a config key, query parameter or header names a credential (see the module docstring)."""
    words = _words(str(key))
    if not words:
        return False
    if "_".join(words) in _SECRET_NAMES or "_".join(words[-4:]) in _SECRET_NAMES:
        return True
    last, before = words[-1], words[-2] if len(words) > 1 else None
    if last in _SECRET_WORDS:
        return True
    if last == "token":
        return before not in _NOT_CREDENTIAL_TOKEN
    if last == "key":
        return before in _KEY_QUALIFIERS
    return False


_VALUE_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S),
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),  # Hugging Face user access token
    re.compile(r"\bapi_org_[A-Za-z0-9]{20,}"),  # Hugging Face organisation token
    re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}"),  # GitHub tokens
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\bglpat-[A-Za-z0-9_\-]{20,}"),  # GitLab
    re.compile(r"\bsk-(?:[A-Za-z0-9]+-)*[A-Za-z0-9_\-]{20,}"),  # OpenAI / Anthropic style
    re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),  # Slack
    re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"),  # AWS access key ids
    re.compile(r"\bAIza[0-9A-Za-z_\-]{35}"),  # Google API keys
    re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]+"),  # JWT
]
# an Authorization header's scheme and credentials, or a bare `Bearer <token>`
_AUTH_HEADER = re.compile(
    r"(?i)(?P<head>authorization[\"']?\s*[:=]\s*[\"']?)(?:(?:basic|bearer|token|digest)\s+)?[^\s\"']+"
)
_BEARER = re.compile(r"\b(Bearer)(\s+)[A-Za-z0-9\-._~+/]{8,}=*")
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/@\s?#]+)@")
_QUERY = re.compile(r"(?P<pre>[?&;])(?P<name>[^=&#\s?]+)=(?P<value>[^&#\s\"']*)")
# name=value and name: value in free text, YAML- or JSON-like; not a URL's scheme (`https://`)
_PAIR = re.compile(
    r"(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)(?P<q>[\"']?)(?P<sep>\s*[=:](?!//)\s*)(?P<vq>[\"']?)"
    r"(?P<value>[^\s\"'&,;#)}\]]+)"
)


def _userinfo(m: re.Match[str]) -> str:
    # fsspec's github://org:repo@ref/path names a public repository, not a user and password
    if m.group("scheme").lower() == "github://":
        return m.group(0)
    return f"{m.group('scheme')}{MASK}@"


def _query(m: re.Match[str]) -> str:
    name = m.group("name")
    if not m.group("value") or not (is_secret_key(name) or "_".join(_words(name)) in _QUERY_NAMES):
        return m.group(0)
    return f"{m.group('pre')}{name}={MASK}"


def _pair(m: re.Match[str]) -> str:
    name, value = m.group("name"), m.group("value")
    if value == MASK or not is_secret_key(name.rsplit(".", 1)[-1]):
        return m.group(0)
    return f"{name}{m.group('q')}{m.group('sep')}{m.group('vq')}{MASK}"


def redact_text(text: str) -> str:
    """`text` with every credential it contains masked (URL userinfo, credential query params, token formats)."""
    if not text:
        return text
    out = _URL_USERINFO.sub(_userinfo, text)
    for pat in _VALUE_PATTERNS:
        out = pat.sub(MASK, out)
    out = _AUTH_HEADER.sub(lambda m: f"{m.group('head')}{MASK}", out)
    out = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", out)
    out = _QUERY.sub(_query, out)
    return _PAIR.sub(_pair, out)


# a bare `key` is s3fs's access key id (S3FileSystem(key=..., secret=...)) beside a `secret` or in a filesystem's
# options; elsewhere (`sort: {key: ...}`) it is not a credential
_OPTIONS_PARENTS = frozenset({"options", "storage_options"})


def _bare_key_is_secret(key: object, siblings: dict, parent: object) -> bool:
    return _words(str(key)) == ["key"] and (
        any(_words(str(s)) == ["secret"] for s in siblings) or "_".join(_words(str(parent))) in _OPTIONS_PARENTS
    )


def redact(obj: Any, _parent: object = None) -> Any:
    """A copy of nested dicts/lists with credential-named keys masked and credentials in strings masked."""
    if isinstance(obj, dict):
        return {
            k: (MASK if (is_secret_key(k) or _bare_key_is_secret(k, obj, _parent)) and v not in (None, "")
                else redact(v, k))
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj)
    return obj


def redact_param(key: str, value: object) -> str:
    """One flattened parameter (`a.b.hub_token`) as it may leave the process."""
    parts = key.rsplit(".", 2)
    bare = len(parts) > 1 and _bare_key_is_secret(parts[-1], {}, parts[-2])
    if (is_secret_key(parts[-1]) or bare) and value not in (None, ""):
        return MASK
    return redact_text(str(value))


class RedactingFilter(logging.Filter):
    """A logging filter that masks credentials in every record's formatted message (and its traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error handling
            return True
        clean = redact_text(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact_text(text)
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Mask credentials in everything the handlers of `logger` (default: root) write; idempotent."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
