"""The override grammar as a user types it: spellings Hydra misreads, Hydra messages that mislead here, and what
the config tree offers (groups, options, experiments) for `--info`, a bare `orchestrator run` and every
"unknown option" message.

Groups are singular and pick what runs (`task=[add_2]`, `prompt=[zero_shot]`); keys are plural and set a
selected one's fields (`tasks.add_2.n=50`, `prompts.k_shot.shots=8`). Hydra's own hints for the mix-ups
(`+task.add_2.n=5`, `--multirun`) lead nowhere in this tool, so they are replaced with the exact override.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

GROUP_OF_KEY = {"tasks": "task", "prompts": "prompt"}  # the key a group's selected configs land under
KEY_OF_GROUP = {g: k for k, g in GROUP_OF_KEY.items()}
WHY_ONE_PROCESS = ("one `orchestrator run` expands the whole grid itself (every size x task x prompt style, in one "
                   "process, one store, one MLflow parent, one report), so Hydra's multirun is not used")


def _parts(override: str) -> tuple[str, str, str | None]:
    """(prefix `+`/`++`/`~`, key, value or None) of one override."""
    m = re.match(r"^(\+\+|\+|~)?([^=]*)(?:=(.*))?$", override, re.S)
    assert m is not None  # the pattern matches any string
    return m.group(1) or "", m.group(2), m.group(3)


def _q(override: str) -> str:
    """An override as typed in a shell (brackets and braces quoted)."""
    return shlex.quote(override)


def check_spelling(overrides: list[str], groups: list[str]) -> None:
    """Refuse a group written as its key (`tasks=[add_2]`), a key written as its group (`task.add_2.n=5`) or a
    plural group (`experiments=demo`), naming the exact override that works."""
    from orchestrator.config import ConfigError

    for ov in overrides:
        prefix, key, value = _parts(ov)
        head, _, rest = key.partition(".")
        if not rest and value is not None and head in GROUP_OF_KEY:
            group = GROUP_OF_KEY[head]
            raise ConfigError(
                f"{ov}: the group is {group!r} (singular) and picks which {head} run: write {_q(f'{group}={value}')}; "
                f"{head}.<name>.<field> (plural) sets a field of a selected one, e.g. "
                f"{'tasks.add_2.n=50' if head == 'tasks' else 'prompts.k_shot.shots=8'}")
        if rest and head in KEY_OF_GROUP:
            fixed = f"{KEY_OF_GROUP[head]}.{rest}" + (f"={value}" if value is not None else "")
            raise ConfigError(
                f"{ov}: a selected {head}'s fields live under {KEY_OF_GROUP[head]}. (plural): write {_q(fixed)}; "
                f"the group {head!r} (singular) picks which run, e.g. {_q(f'{head}=[...]')}")
        if not rest and value is not None and head not in groups and head.endswith("s") and head[:-1] in groups:
            raise ConfigError(f"{ov}: there is no {head!r}; the group is {head[:-1]!r}: write "
                              f"{_q(f'{prefix}{head[:-1]}={value}')}")


def listing(group: str, options: list[str], bad: str | None = None) -> str:
    """`<group>'s options are a, b, c (did you mean b?)`, the end of every unknown-option message."""
    close = difflib.get_close_matches(bad, options, n=1) if bad else []
    example = (f"; several at once: {_q(f'{group}=[{options[0]},{options[1]}]')}"
               if group in KEY_OF_GROUP and len(options) > 1 else "")
    return (f"{group}'s options are {', '.join(options) or '(none found)'}"
            + (f" (did you mean {close[0]}?)" if close else "") + example)


class Tree:
    """What a config tree (with any hydra.searchpath overrides) offers; valid inside `open_tree`."""

    def __init__(self, config_dir: Path, overrides: list[str], config_name: str) -> None:
        from hydra.core.global_hydra import GlobalHydra

        self.config_dir = config_dir
        self.overrides = list(overrides)
        self.config_name = config_name
        self._loader = GlobalHydra.instance().config_loader()

    def options(self, group: str) -> list[str]:
        from hydra.core.object_type import ObjectType

        usable = [o for o in self.overrides if o.lstrip("+").startswith("hydra.searchpath=")]
        try:
            return list(self._loader.get_group_options(group, ObjectType.CONFIG, self.config_name, usable))
        except Exception:  # a bad searchpath: the main tree still lists its options
            return list(self._loader.get_group_options(group, ObjectType.CONFIG, self.config_name, []))

    def groups(self) -> list[str]:
        from hydra.core.object_type import ObjectType

        return [g for g in self._loader.get_group_options("", ObjectType.GROUP, self.config_name, [])
                if g != "hydra"]

    def search_dirs(self) -> list[Path]:
        """The config tree and the local folders on hydra.searchpath, in that order."""
        from hydra.core.override_parser.overrides_parser import OverridesParser

        dirs = [self.config_dir]
        for o in self.overrides:
            if o.lstrip("+").startswith("hydra.searchpath="):
                with contextlib.suppress(Exception):
                    for entry in OverridesParser.create().parse_overrides([o.lstrip("+")])[0].value() or []:
                        entry = str(entry)
                        if entry.startswith("file://") or "://" not in entry:
                            dirs.append(Path(entry.removeprefix("file://")))
        return dirs

    def experiments(self) -> list[tuple[str, str]]:
        """(name, the first line of its leading comment) for every option of the experiment group."""
        out = []
        for name in self.options("experiment"):
            path = next((d / "experiment" / f"{name}.yaml" for d in self.search_dirs()
                         if (d / "experiment" / f"{name}.yaml").is_file()), None)
            out.append((name, first_comment(path) if path else ""))
        return out

    def selected(self, key: str) -> list[str]:
        """The names the sweep would run under `tasks`/`prompts`, composed without the override that failed."""
        from hydra import compose

        keep = [o for o in self.overrides if not _parts(o)[1].startswith(f"{key}.")]
        try:
            cfg = compose(config_name=self.config_name, overrides=keep)
        except Exception:
            return []
        return list(cfg.get(key) or {})


def first_comment(path: Path, limit: int = 160) -> str:
    """The leading comment of a yaml file (not its `# @package` line): its first sentence, run on across comment
    lines (a sentence is often wrapped), cut at `limit` characters."""
    words: list[str] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        text = line.strip()
        if not text.startswith("#"):
            break
        text = text.lstrip("# ").strip()
        if text.startswith("@package") or (not text and not words):
            continue
        if not text:
            break
        words.append(text)
    out = " ".join(words)
    m = re.search(r"(?<=[^.\s])[.;](?=\s|$)", out)  # the first sentence ("1 ... 16" is not an end)
    out = out[: m.end()] if m else out
    return out if len(out) <= limit else out[: limit - 3].rsplit(" ", 1)[0] + " ..."


@contextlib.contextmanager
def open_tree(config_dir: Path, overrides: list[str], config_name: str = "config") -> Iterator[Tree]:
    """Hydra initialised on `config_dir` (compose works inside), as a Tree."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from orchestrator.config import register

    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        yield Tree(config_dir, overrides, config_name)


def explain(e: BaseException, tree: Tree) -> str | None:
    """One line for a Hydra error whose own text misleads or lists nothing (None: Hydra's text is fine)."""
    text = "\n".join(str(x) for x in _chain(e))
    m = re.search(r"Could not (?:load|find) '([^']+)/([^'/]+)'", text)
    if m:
        group, bad = m.group(1), m.group(2)
        return f"{group}/{bad}: {group} has no option {bad!r}; {listing(group, tree.options(group), bad)}" + (
            f" (your own: a yaml in {tree.config_dir / group}/ or in a folder given with "
            "'hydra.searchpath=[file:///abs/folder]')")
    m = re.search(r"Ambiguous value for argument '([^']*)'", text)
    if m:
        prefix, key, value = _parts(m.group(1))
        return (f"{m.group(1)}: a comma list needs brackets: {_q(f'{prefix}{key}=[{value}]')} (every item runs, in "
                f"this one sweep), or, for one string with a comma in it, quotes inside: \"{prefix}{key}='{value}'\"; "
                f"{WHY_ONE_PROCESS}")
    m = re.search(r"Could not override '([^']+)'", text) or re.search(r"Error merging override \+*([^=\s]+)=", text)
    if m:
        return _bad_key(m.group(1), text, tree)
    return None


def _chain(e: BaseException | None) -> Iterator[BaseException]:
    while e is not None:
        yield e
        e = e.__cause__


def _bad_key(key: str, text: str, tree: Tree) -> str | None:
    """`tasks.add_4.n=5` with add_4 not selected, or a key the schema lacks: say which, and what is valid."""
    from orchestrator import config

    given = next((o for o in tree.overrides if _parts(o)[1] == key), key)
    head, _, rest = key.partition(".")
    if head in GROUP_OF_KEY and ("is not in struct" in text or "Invalid type assigned" in text):
        name = rest.split(".", 1)[0]
        group = GROUP_OF_KEY[head]
        chosen = tree.selected(head)
        options = tree.options(group)
        if name in chosen:
            return None  # a selected one: Hydra's message is about the field
        if name in options:
            both = ",".join([*chosen, name])
            return (f"{given}: {group} {name!r} is not in this sweep ({head}: {', '.join(chosen) or 'none'}), so "
                    f"there is nothing to set; add it: {_q(f'{group}=[{both}]')}")
        return f"{given}: no {group} {name!r} in this sweep or the config tree; " + listing(group, options, name)
    m = re.search(r"Key '([^']+)' not in '(\w+)'", text)
    kind = getattr(config, m.group(2), None) if m else None
    if m and kind is not None and dataclasses.is_dataclass(kind):
        known = [f.name for f in dataclasses.fields(kind)]
        section = key.rsplit(".", 1)[0] if "." in key else ""
        close = difflib.get_close_matches(m.group(1), known, n=1)
        hint = f"did you mean {section + '.' if section else ''}{close[0]}? " if close else ""
        groups = "" if section else f"; groups (group=option): {', '.join(tree.groups())}"
        return (f"{given}: {key} is not a config key; {hint}{section or 'the top level'} takes: {', '.join(known)}"
                + groups)
    return None


def info(tree: Tree) -> str:
    """`--info`: the config groups and their options, the defaults, the experiments, and how keys are set."""
    import yaml

    extra = [str(d) for d in tree.search_dirs()[1:]]
    lines = [f"config tree: {tree.config_dir}" + (f" (and hydra.searchpath: {', '.join(extra)})" if extra else "")]
    top = yaml.safe_load((tree.config_dir / f"{tree.config_name}.yaml").read_text(encoding="utf-8")) or {}
    picks = []
    for d in top.get("defaults", []):
        if isinstance(d, dict):
            picks.extend(f"{k}={'[' + ','.join(v) + ']' if isinstance(v, list) else 'null' if v is None else v}"
                         for k, v in d.items())
    lines.append(f"defaults ({tree.config_name}.yaml): {' '.join(picks)}")
    groups = tree.groups()
    width = max(map(len, groups), default=8) + 2
    lines.append("config groups (pick with group=option; task and prompt take a list: 'task=[add_2,add_3]'):")
    lines.extend(f"  {g:<{width}}{', '.join(tree.options(g))}" for g in groups)
    exps = tree.experiments()
    if exps:
        lines.append("experiments (experiment=NAME):")
        w = max(len(n) for n, _ in exps) + 2
        lines.extend(f"  {n:<{w}}{c}" for n, c in exps)
    lines.append("keys: any field with key=value (sweep.name=my_sweep, backend.batch_size=8); a selected task's or "
                 "prompt style's fields under the plural key (tasks.add_2.n=50, prompts.k_shot.shots=8); "
                 "the resolved config: --cfg job")
    return "\n".join(lines)
