"""What each configured model points at, found once before planning, so shard ids key real weights.

A name is not a model: `main` is a branch that moves, a folder can be
overwritten, a zoo member can be retrained from another spec. Before the plan
is made, each selected size is resolved (the plan itself stays pure):

- **Zoo member** (`model.build: zoo`): keyed by its spec hash (architecture,
  corpus, steps, seed: `orchestrator.zoo.spec_hash`) and checkpoint step. A
  member already on disk whose card carries another spec hash is a stale zoo:
  resolution stops with the member's name and the command that rebuilds it,
  instead of mixing records of two different models under one name.
- **Local folder**: keyed by its content: the git tree id of the folder when
  every file in it is committed and unmodified (cheap, exact), else a SHA-256
  over its files (a symlink into a Hugging Face cache blob counts by the
  blob's name, which is its hash). Loading ignores `revision` for a folder.
- **Hub id**: a 40-hex revision is a commit already. Any other revision (a
  branch such as `main`, or a tag) is resolved to its commit with
  `HfApi().model_info(repo, revision=...).sha`, and the commit is what the
  backend loads, so the records and their key agree even if the branch moves
  during the sweep. Offline (HF_HUB_OFFLINE=1, or the hub unreachable), the
  commit the local Hugging Face cache holds for that revision
  (`<cache>/models--org--name/refs/<revision>`, the one transformers would load
  offline) is used, with a warning. When neither works, resolution fails with
  the fix (pin the commit, or reach the hub once): a moving name must never
  key shards silently.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
from pathlib import Path

from orchestrator.config import ConfigError, ModelFamily, ModelSize, SweepConfig, check_budget, looks_local
from orchestrator.plan import Resolved

log = logging.getLogger(__name__)
COMMIT = re.compile(r"^[0-9a-f]{40}$")
HEX_NAME = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
SKIP_SUFFIXES = (".md",)
SKIP_NAMES = ("model_card.json",)  # the zoo's descriptive card (build time etc.); loading never reads it
HUB_TIMEOUT_S = 10.0


class ModelResolutionError(ConfigError):
    """A model cannot be pinned to what it is (unresolvable revision, stale zoo member); says how to fix it."""


def resolve_models(
    family: ModelFamily, offline: bool | None = None, cache_dir: str | os.PathLike | None = None
) -> dict[str, Resolved]:
    """Resolve every selected size of `family` (see the module docstring); raises ModelResolutionError."""
    return {name: resolve_model(name, family.catalog[name], family, offline, cache_dir) for name in family.sizes}


def resolve_model(
    name: str,
    size: ModelSize,
    family: ModelFamily,
    offline: bool | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Resolved:
    path = os.path.expanduser(size.path)
    if family.build == "zoo":
        return _zoo_member(name, Path(path), size.revision)
    if os.path.isdir(path):
        _check_folder(name, size.path, Path(path))
        fingerprint, note = folder_fingerprint(Path(path))
        return Resolved(size.revision, fingerprint, note)
    if looks_local(size.path):
        what = "is a file, not a model folder" if os.path.exists(path) else f"does not exist ({os.path.abspath(path)})"
        raise ModelResolutionError(
            f"model.catalog.{name}.path={size.path!r} {what}: a path starting with / ~ . or holding two slashes "
            "is a local folder, not a hub id; fix the path, put the model (config.json and *.safetensors) there, "
            "or give a hub id such as EleutherAI/pythia-70m"
        )
    return _hub(name, size, offline, cache_dir)


def _check_folder(name: str, given: str, path: Path) -> None:
    """A local model folder must hold a config and safetensors weights (pickle checkpoints are refused on load)."""
    files = {f.name for f in path.iterdir()}
    if "config.json" not in files:
        raise ModelResolutionError(
            f"model.catalog.{name}.path={given!r} holds no config.json: not a Hugging Face model folder; point it "
            "at the folder save_pretrained wrote"
        )
    if not any(f.endswith((".safetensors", ".safetensors.index.json")) for f in files):
        raise ModelResolutionError(
            f"model.catalog.{name}.path={given!r} has no *.safetensors weights (pickle checkpoints such as "
            "pytorch_model.bin are refused: loading one runs code); convert it with save_pretrained("
            "safe_serialization=True) or pick a revision that ships safetensors"
        )


CONTEXT_KEYS = ("n_positions", "max_position_embeddings", "n_ctx")  # as the transformers backend reads them


def local_context(path: str) -> int | None:
    """The positions a local model declares in its config.json, or None (a hub id, no config, no such key)."""
    import json

    if not looks_local(path):
        return None
    try:
        cfg = json.loads((Path(os.path.expanduser(path)) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    for key in CONTEXT_KEYS:
        value = cfg.get(key) if isinstance(cfg, dict) else None
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_context(cfg: SweepConfig) -> None:
    """Before any shard: backend.max_length within each local model's declared context, and every prompt's
    max_new_tokens below the context it runs in (backend.max_length, else the model's own).

    A longer max_length would index past the position embeddings inside the workers
    (`IndexError: index out of range in self`); a budget at or above the context
    leaves no room for a prompt, and every shard fails.
    """
    for name in cfg.model.sizes:
        size = cfg.model.catalog[name]
        declared = local_context(size.path)
        if declared is None:
            continue
        configured = cfg.backend.max_length
        if configured is not None and configured > declared:
            raise ConfigError(
                f"backend.max_length={configured} exceeds the {declared} positions model.catalog.{name} "
                f"({size.path}) declares in its config.json: inputs that long would index past its position "
                f"embeddings; set backend.max_length={declared} or less, or leave it unset (null)"
            )
        if configured is None:
            for pname, p in sorted(cfg.prompts.items()):
                check_budget(pname, p.max_new_tokens, declared, f"model.catalog.{name}'s own context")


# -- zoo ----------------------------------------------------------------------------------------
def _zoo_member(name: str, path: Path, revision: str) -> Resolved:
    from orchestrator import zoo

    try:
        spec, step = zoo.resolve(path.name)
    except KeyError as e:
        raise ModelResolutionError(
            f"model.catalog.{name}.path={str(path)!r}: the family is built by the zoo (model.build=zoo) but "
            f"{path.name!r} is not a zoo member or checkpoint; known: {zoo.known_names()}"
        ) from e
    expected = zoo.spec_hash(spec)
    if not path.exists() and not path.parent.is_dir() and path.parent.resolve() != zoo.zoo_dir().resolve():
        # a zoo member is trained where it is missing: into a folder that does not exist, that is a typo that
        # would spend minutes training a new copy, not a request
        raise ModelResolutionError(
            f"model.catalog.{name}.path={str(path)!r}: {path.parent} does not exist, so the zoo would train a "
            f"new {path.name} there; fix the path (the zoo lives in {zoo.zoo_dir()}, or $ORCHESTRATOR_ZOO_DIR), "
            f"or create the folder first if you mean to build the zoo there"
        )
    if path.exists():
        card = zoo.read_card(path)
        built_hash = card.get("spec_hash") if card else None
        built_step = card.get("train_step") if card else None
        if built_hash != expected or (step is not None and built_step != step):
            default_dir = zoo.zoo_dir().resolve() == path.parent.resolve()
            where = "" if default_dir else f" --dir {path.parent}"
            found = ("no readable model_card.json" if card is None
                     else f"spec hash {str(built_hash)[:12]}, step {built_step}")
            raise ModelResolutionError(
                f"zoo member {path.name} at {path} was built from another spec ({found}; this code's spec "
                f"hash is {expected[:12]}{'' if step is None else f', step {step}'}): its records would be "
                f"mixed with those of a different model. Rebuild it with `orchestrator zoo build {path.name}"
                f"{where}` (members whose spec changed are retrained; --force retrains all)"
            )
    fingerprint = f"zoo:{expected}" + ("" if step is None else f"@step{step}")
    return Resolved(revision, fingerprint, f"zoo member {spec.name}" + ("" if step is None else f" step {step}"))


# -- local folders ------------------------------------------------------------------------------
def folder_fingerprint(path: Path) -> tuple[str, str]:
    """(`git:<tree id>` or `files:<sha256>`, how it was found) for a model folder."""
    tree = _git_tree(path)
    if tree is not None:
        tree_id, commit = tree
        return f"git:{tree_id}", f"local folder, git tree {tree_id[:12]} at commit {commit[:12]}"
    return f"files:{files_hash(path)}", "local folder, SHA-256 of its files"


def _git(path: Path, *args: str) -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout if r.returncode == 0 else None


def _git_tree(path: Path) -> tuple[str, str] | None:
    """The folder's tree id at HEAD and HEAD's commit, when everything in it is committed and unmodified."""
    if _git(path, "rev-parse", "--is-inside-work-tree") is None:
        return None
    status = _git(path, "status", "--porcelain", "--ignored", "--untracked-files=all", "--", ".")
    if status is None or status.strip():  # modified, untracked or ignored files: the commit does not describe them
        return None
    tree, commit = _git(path, "rev-parse", "HEAD:./"), _git(path, "rev-parse", "HEAD")
    if not tree or not commit:
        return None
    return tree.strip(), commit.strip()


def files_hash(path: Path) -> str:
    """SHA-256 over (relative name, content id) of every file a load may read, in name order.

    A file's content id is the SHA-256 of its bytes, or, for a symlink into a
    content-addressed store (the Hugging Face cache's blobs/<hash>), that hash.
    """
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        if any(part.startswith(".") for part in f.relative_to(path).parts):
            continue
        if f.name in SKIP_NAMES or f.name.endswith(SKIP_SUFFIXES):
            continue
        target = Path(os.path.realpath(f)).name if f.is_symlink() else ""
        h.update(rel.encode() + b"\0" + (target.encode() if HEX_NAME.match(target) else _sha256(f)) + b"\n")
    return h.hexdigest()


def _sha256(f: Path) -> bytes:
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 23), b""):
            h.update(block)
    return h.hexdigest().encode()


# -- hub ----------------------------------------------------------------------------------------
def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def cached_commit(repo: str, revision: str, cache_dir: str | os.PathLike | None = None) -> str | None:
    """The commit the local Hugging Face cache holds for `revision` of `repo`, if any."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    root = Path(cache_dir) if cache_dir is not None else Path(constants.HF_HUB_CACHE)
    ref = root / repo_folder_name(repo_id=repo, repo_type="model") / "refs" / revision
    try:
        sha = ref.read_text().strip()
    except OSError:
        return None
    return sha if COMMIT.match(sha) else None


def _hub(name: str, size: ModelSize, offline: bool | None, cache_dir: str | os.PathLike | None) -> Resolved:
    repo, revision = size.path, size.revision
    if size.tokenizer and size.tokenizer != size.path and not os.path.isdir(os.path.expanduser(size.tokenizer)) \
            and not COMMIT.match(revision):
        raise ModelResolutionError(
            f"model.catalog.{name}: tokenizer {size.tokenizer!r} is another hub repository, loaded at the model's "
            f"revision {revision!r}, which resolves to a commit of {repo!r} only. Point model.catalog.{name}.tokenizer "
            "at a local folder, or drop it to use the model's own tokenizer"
        )
    if COMMIT.match(revision):
        return Resolved(revision, None, "pinned commit")
    reason = "HF_HUB_OFFLINE is set"
    if not (_offline() if offline is None else offline):
        from huggingface_hub import HfApi
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        try:
            sha = HfApi().model_info(repo, revision=revision, timeout=HUB_TIMEOUT_S).sha
        except RevisionNotFoundError as e:
            raise ModelResolutionError(
                f"model.catalog.{name}.revision={revision!r}: {repo!r} has no such branch, tag or commit; "
                "pick one from the repository's history"
            ) from e
        except RepositoryNotFoundError as e:
            raise ModelResolutionError(
                f"model.catalog.{name}.path={repo!r}: no such hub repository (or it is private: set HF_TOKEN), "
                "and no such local folder"
            ) from e
        except Exception as e:  # network down, DNS, timeout, proxy: fall back on the cache
            reason = f"the hub is unreachable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        else:
            if sha and COMMIT.match(sha):
                return Resolved(sha, None, f"hub {repo}@{revision} -> {sha}")
            reason = f"the hub returned no commit for {repo}@{revision}"
    sha = cached_commit(repo, revision, cache_dir)
    if sha:
        log.warning("model %s: %s; revision %r of %s taken from the local cache as commit %s (the hub may have "
                    "moved since)", name, reason, revision, repo, sha)
        return Resolved(sha, None, f"local hub cache {repo}@{revision} -> {sha} ({reason})")
    raise ModelResolutionError(
        f"model.catalog.{name}.revision={revision!r} of {repo!r} is a branch or tag and cannot be resolved to a "
        f"commit: {reason}, and the local Hugging Face cache has no refs/{revision} for it. Shards keyed by a "
        f"moving name could mix two different models. Pin the commit (model.catalog.{name}.revision=<40-hex "
        f"sha>), run once where the hub is reachable, or point model.catalog.{name}.path at a local copy"
    )
