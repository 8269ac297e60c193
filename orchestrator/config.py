"""Structured configs: the schema of a sweep, registered in Hydra's ConfigStore.

Every config group merges into a typed dataclass, so a typo or a bad value
fails at start with Hydra's own message ("Key 'x' not in 'TaskConfig'").
`validate` adds the checks a type cannot express and names the field, the bad
value and the fix.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf


class ConfigError(ValueError):
    """A config value that is well-typed but wrong; the message says how to fix it."""


@dataclass
class ModelSize:
    """One member of a model family: where to load it and how big it is."""

    path: str = MISSING  # Hugging Face hub id or a local/remote path
    params: int = MISSING  # total parameter count: the x axis of every curve
    revision: str = "main"
    non_embedding_params: Optional[int] = None
    train_flops: Optional[float] = None
    train_step: Optional[int] = None  # a training checkpoint's step: with analysis.x=train_step, curves over training
    tokenizer: Optional[str] = None  # defaults to `path`
    memory_gb: Optional[float] = None  # GB (2**30 bytes) the model needs loaded; None: estimated (placement.py)


@dataclass
class ModelFamily:
    """A family of models that differ in scale; `sizes` picks which members run."""

    family: str = MISSING
    catalog: dict[str, ModelSize] = field(default_factory=dict)
    sizes: list[str] = field(default_factory=list)
    dtype: str = "float32"
    trust_remote_code: bool = False
    build: Optional[str] = None  # "zoo": built locally by `orchestrator zoo build` when missing


@dataclass
class TaskConfig:
    """Where a task's examples come from.

    source: "bigbench" (a task.json at `url`, any fsspec URL), "synthetic"
    (a seeded generator), or "jsonl" (a user file with input/target/choices).
    """

    source: str = MISSING
    url: Optional[str] = None
    subtask: Optional[str] = None
    generator: Optional[str] = None  # synthetic: addition | subtraction | multiplication | modified_addition ...
    digits: int = 2
    n: int = 200  # synthetic: how many examples to generate
    seed: int = 0
    limit: Optional[int] = None  # evaluate a sample of `limit` examples drawn with `seed`, stratified by subtask
    stop: Optional[list[str]] = None
    # the task's own prompt frame, overriding its source's (null keeps it): input_prefix="" and output_prefix=""
    # show a JSONL input as written ("3+4=") instead of BIG-bench's "\nQ: 3+4=\nA: "
    input_prefix: Optional[str] = None
    output_prefix: Optional[str] = None
    append_choices: Optional[bool] = None  # list a task's options after its input (BIG-bench's "\n  choice: X")


@dataclass
class PromptConfig:
    """How a task's examples become prompts.

    style: zero_shot | k_shot | chain_of_thought | multiple_choice | template | chat
    """

    style: str = "zero_shot"
    shots: int = 0
    seed: int = 1234  # exemplar draw
    template: Optional[str] = None  # e.g. "{input}\nA:" for style=template
    cot_trigger: str = "Let's think step by step."
    answer_pattern: Optional[str] = None  # regex with one group for the final answer
    mc_format: str = "loglik"  # loglik | letters
    max_new_tokens: int = 16


@dataclass
class MetricsConfig:
    names: list[str] = field(default_factory=lambda: ["exact_match", "token_edit_distance", "target_logprob"])
    bootstrap_samples: int = 1000
    bootstrap_seed: int = 0
    subset_k: int = 4
    modules: list[str] = field(default_factory=list)  # Python modules that register your own metrics


@dataclass
class BackendConfig:
    name: str = "transformers"  # transformers | vllm
    batch_size: int = 32
    max_length: Optional[int] = None  # context length; defaults to the model's
    device: str = "auto"  # auto | cpu | cuda


@dataclass
class ClusterConfig:
    address: Optional[str] = None  # None: start a local Ray cluster; "auto" or ray://host:port to join
    dashboard: Optional[str] = None  # Jobs API (http://head:8265) for submit/status/logs/stop; else RAY_ADDRESS
    num_cpus: Optional[int] = None  # for a local cluster; None = all cores
    cpus_per_model: float = 1.0
    gpus_per_model: Optional[float] = 0.0  # 0: CPU only; null: from placement.py's estimate; > 0: fixed
    gpu_memory_gb: Optional[float] = None  # GB per GPU where Ray cannot tell (it reports GPUs, not their memory)
    torch_threads: Optional[int] = None  # per worker; defaults to cpus_per_model
    max_retries: int = 1
    replicas: Optional[int] = None  # replicas per model at most; null: as many as placement fits at once
    window: int = 2  # shards in flight per replica (one running, the next queued so the device never idles)
    min_shards_per_replica: int = 8  # a model gets another replica only for this many more shards (loads cost)
    start_timeout: float = 60.0  # seconds for Ray to start one worker process before the run fails, saying why
    # a replica whose model has no work left loads another model of the same shape (CPUs, GPUs, memory) that
    # has work, in the same process: no new worker, no new imports. Never with vLLM (GPU memory is not freed)
    reuse_replicas: bool = True


@dataclass
class StorageConfig:
    root: str = "results"  # any fsspec URL: a folder, s3://bucket/prefix, gs://..., memory://
    # passed to the fsspec filesystem: endpoint_url, profile, anon, client_kwargs: {region_name: ...};
    # credentials come from the environment or the cloud's identity, never from here
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: str = "sqlite:///mlflow.db"
    experiment: Optional[str] = None  # defaults to the sweep name
    live: bool = True  # update MLflow while shards land (cell runs, progress); false: only when the sweep ends
    live_interval: float = 5.0  # seconds between live updates (a cell's run is scored when its last shard lands)


@dataclass
class SweepSettings:
    name: str = "sweep"
    shard_size: int = 100
    seed: int = 0
    output_dir: str = "outputs"  # plots and the summary, per sweep


@dataclass
class AnalysisConfig:
    """Thresholds of the verdict rules (`orchestrator.analysis.verdicts`, whose docstring states the rules).

    Effect sizes are fractions of the judged axis's range: chance -> perfect
    where the metric has both (BIG-bench's normalised score / 100), else the
    worst size -> perfect, else metric units; on a log10 axis, decades.
    Differences are significant by a z-test from the cells' 95% intervals.
    A verdict is "borderline" when a rule's statistic lies within
    `borderline` (relative) of its threshold.
    """

    min_effect: float = 0.05  # smallest change that counts: 5% of the chance-to-perfect range (else metric units)
    min_effect_log10: float = 0.02  # the same on a log10 (power-law) axis, in decades: 0.02 = a 5% relative change
    z: float = 1.96  # significance: gap >= z * sqrt(se_i^2 + se_j^2), se from the 95% intervals (two-sided 5%)
    floor_fraction: float = 0.2  # emergent: the floor = the first sizes that made at most this share of the rise
    min_delay: float = 0.25  # emergent: at the floor's end the curve lags a steady per-decade rise by this share of it
    floor_level: float = 0.1  # emergent: the floor's mean lies within this fraction of the range above chance
    emergent_min_rise: float = 0.1  # emergent: the rise covers at least this fraction of the range (not at the floor)
    inverse_fraction: float = 0.5  # inverted U: the decline after the peak gives back at least this share of the rise
    dip_sizes: int = 2  # u_shaped / inverse: this many sizes reliably below (a dip is sustained, not one point)
    min_sizes: int = 3  # fewer sizes: no emergent call; u_shaped needs min_sizes + 1
    borderline: float = 0.25  # a statistic within this relative distance of its threshold makes the call borderline
    smooth_r2: float = 0.8  # smooth: below this R^2 vs log10(x) the reason says "not linear in log-x" (label unchanged)
    min_monotonicity: float = 0.8  # smooth: below this Spearman rho the reason says "not monotone" (label unchanged)
    continuous_axis: str = "linear"  # linear | power_law: the axis continuous metrics are judged on; the other is shown
    coarse_gap_decades: float = 0.5  # a jump across a wider gap in log10(x) gets a caveat
    # mirage partners declared by the user, before looking: discontinuous metric -> continuous metrics scoring the
    # same outputs (e.g. {acc: [target_logprob]} for published LAMBADA); added after the built-in ones (mirage.py)
    partners: dict[str, list[str]] = field(default_factory=dict)
    reference_prompt: Optional[str] = None  # compare.py: style the others are compared with (None: zero_shot or first)
    x: str = "params"  # the scale curves are read against: params | non_embedding_params | train_flops | train_step

    def __post_init__(self) -> None:
        """Refuse a threshold outside its meaning, naming the field, the value and a valid one."""
        checks = [
            ("min_effect", self.min_effect >= 0, "0.05"),
            ("min_effect_log10", self.min_effect_log10 >= 0, "0.02"),
            ("z", self.z > 0, "1.96"),
            ("floor_fraction", 0 <= self.floor_fraction < 1, "0.2"),
            ("min_delay", 0 <= self.min_delay < 1, "0.25"),
            ("floor_level", self.floor_level >= 0, "0.1"),
            ("emergent_min_rise", self.emergent_min_rise >= 0, "0.1"),
            ("inverse_fraction", 0 < self.inverse_fraction <= 1, "0.5"),
            ("dip_sizes", self.dip_sizes >= 1, "2"),
            ("min_sizes", self.min_sizes >= 2, "3"),
            ("borderline", self.borderline >= 0, "0.25"),
            ("continuous_axis", self.continuous_axis in ("linear", "power_law"), "linear (or power_law)"),
        ]
        for name, ok, example in checks:
            if not ok:
                raise ConfigError(
                    f"analysis.{name}={getattr(self, name)!r} is outside its meaning (see AnalysisConfig in "
                    f"orchestrator/config.py); e.g. analysis.{name}={example}"
                )


@dataclass
class DataConfig:
    """Roots that task configs interpolate, e.g. url: ${data.bigbench}/emoji_movie."""

    bigbench: str = "github://google:BIG-bench@main/bigbench/benchmark_tasks"


@dataclass
class SweepConfig:
    """The whole grid: model sizes x tasks x prompt styles, and where it runs."""

    sweep: SweepSettings = field(default_factory=SweepSettings)
    model: ModelFamily = field(default_factory=ModelFamily)
    tasks: dict[str, TaskConfig] = field(default_factory=dict)
    prompts: dict[str, PromptConfig] = field(default_factory=dict)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)


def register() -> None:
    """Put the schema in Hydra's ConfigStore as `sweep_schema`."""
    ConfigStore.instance().store(name="sweep_schema", node=SweepConfig)


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
PROMPT_STYLES = ("zero_shot", "k_shot", "chain_of_thought", "multiple_choice", "template", "chat")
TASK_SOURCES = ("bigbench", "synthetic", "jsonl")


def unknown_keys(node: Any, prefix: str = "") -> list[tuple[str, list[str]]]:
    """(dotted key, close known keys) for every key under a schema node that its dataclass does not declare.

    Hydra's `+key=value` adds a key even to a structured node (it opens the struct
    flag to add it), and `OmegaConf.to_object` then drops it without a word; so a
    typo added with `+` (`+backend.batchsize=4`) would silently do nothing.
    """
    from dataclasses import fields, is_dataclass

    out: list[tuple[str, list[str]]] = []
    if not isinstance(node, DictConfig):
        return out
    kind = OmegaConf.get_type(node)
    known = [f.name for f in fields(kind)] if kind is not None and is_dataclass(kind) else None
    for key in node.keys():
        name = f"{prefix}{key}"
        if known is not None and key not in known:
            out.append((name, difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)))
            continue
        out.extend(unknown_keys(node._get_node(key), f"{name}."))  # type: ignore[union-attr]
    return out


def check_known_keys(cfg: DictConfig) -> None:
    """Refuse keys the schema does not declare (see `unknown_keys`), naming the closest known one."""
    found = [(k, close) for k, close in unknown_keys(cfg) if k != "hydra" and not k.startswith("hydra.")]
    if not found:
        return
    key, close = found[0]
    value = OmegaConf.select(cfg, key, default=None)
    fix = (f"did you mean {key.rsplit('.', 1)[0] + '.' if '.' in key else ''}{close[0]}?" if close
           else "remove it (see the dataclasses in orchestrator/config.py for the keys each section takes)")
    more = f" (and {len(found) - 1} more unknown: {', '.join(k for k, _ in found[1:])})" if len(found) > 1 else ""
    raise ConfigError(f"{key}={value!r} is not a config key, so it would be ignored: {fix}{more}")


_LOCAL_PREFIXES = ("/", "~", ".")


def looks_local(path: str) -> bool:
    """A model path meant as a folder on disk: starts with / ~ . or has 2+ slashes (a hub id has one at most)."""
    return "://" not in path and (path.startswith(_LOCAL_PREFIXES) or path.count("/") >= 2)


def model_key(path: str) -> str:
    """The same model however its path is spelled: a folder normalised and absolute, a hub id without a slash at
    the end, so `/m/x`, `/m/x/` and `/m/./x` are one model."""
    if looks_local(path):
        return os.path.abspath(os.path.expanduser(path))
    return path.rstrip("/")


DTYPES = ("auto", "float32", "float", "bfloat16", "float16", "half", "float64", "double")
_DEVICE = re.compile(r"^(?:auto|cpu|mps|cuda(?::\d+)?)$")


def validate(cfg: SweepConfig | DictConfig) -> SweepConfig:
    """Check what types cannot; return the config as a plain SweepConfig object."""
    if isinstance(cfg, DictConfig):
        check_known_keys(cfg)
    sc: SweepConfig = OmegaConf.to_object(cfg) if isinstance(cfg, DictConfig) else cfg  # type: ignore[assignment]
    if not _NAME.match(sc.sweep.name):
        raise ConfigError(
            f"sweep.name={sc.sweep.name!r} is not a valid name: use letters, digits, '_', '-' or '.', "
            "e.g. sweep.name=my_sweep"
        )
    if sc.sweep.shard_size < 1:
        raise ConfigError(f"sweep.shard_size={sc.sweep.shard_size} must be >= 1, e.g. sweep.shard_size=100")
    if not sc.model.sizes:
        raise ConfigError(
            f"model.sizes is empty: list the sizes to run, e.g. 'model.sizes=[{', '.join(list(sc.model.catalog)[:2])}]'"
        )
    for name, m in sc.model.catalog.items():
        if m.params < 1:
            raise ConfigError(
                f"model.catalog.{name}.params={m.params} must be the model's parameter count (> 0): "
                "it is the x axis of every curve"
            )
    for name in sc.model.sizes:
        if name not in sc.model.catalog:
            raise ConfigError(
                f"model.sizes names {name!r}, which is not in model.catalog of family {sc.model.family!r}; "
                f"known sizes: {sorted(sc.model.catalog)}"
            )
    seen: dict[tuple[str, str], str] = {}
    for name in sc.model.sizes:
        m = sc.model.catalog[name]
        key = (model_key(m.path), m.revision)
        if key in seen:
            other = sc.model.catalog[seen[key]].path
            same = f"the same path {m.path!r}" if other == m.path else f"paths {other!r} and {m.path!r}, one folder,"
            raise ConfigError(
                f"model.sizes has {seen[key]!r} and {name!r} with {same} and revision "
                f"{m.revision!r}: they are one model and would run twice; drop one from model.sizes or give it its "
                "own revision"
            )
        seen[key] = name
    dtype = sc.model.dtype.lower().removeprefix("torch.")
    if dtype not in DTYPES:
        close = difflib.get_close_matches(dtype, DTYPES, n=1)
        raise ConfigError(f"model.dtype={sc.model.dtype!r} is not a dtype a model loads in: use "
                          f"{'model.dtype=' + close[0] + ' or ' if close else ''}one of {', '.join(DTYPES)}")
    if not _DEVICE.match(sc.backend.device):
        raise ConfigError(f"backend.device={sc.backend.device!r} is not a device: use auto (the GPU when there is "
                          "one), cpu, cuda, cuda:N or mps")
    if not sc.tasks:
        raise ConfigError("no tasks selected: pick some with e.g. 'task=[add_2,add_4]'")
    if not sc.prompts:
        raise ConfigError("no prompt styles selected: pick some with e.g. 'prompt=[zero_shot,three_shot]'")
    for tname, t in sc.tasks.items():
        if t.source not in TASK_SOURCES:
            raise ConfigError(f"tasks.{tname}.source={t.source!r} is unknown; use one of {TASK_SOURCES}")
        if t.source in ("bigbench", "jsonl") and not t.url:
            raise ConfigError(f"tasks.{tname}.url is missing: a {t.source} task needs the URL of its file")
        if t.source == "synthetic" and not t.generator:
            raise ConfigError(f"tasks.{tname}.generator is missing: e.g. tasks.{tname}.generator=addition")
        if t.limit is not None and t.limit < 1:
            raise ConfigError(f"tasks.{tname}.limit={t.limit} must be >= 1 or null")
        if t.source == "synthetic":
            from orchestrator.tasks.synthetic import MAX_N

            if t.n > MAX_N:
                raise ConfigError(
                    f"tasks.{tname}.n={t.n} is more than a synthetic task makes ({MAX_N:,} at most: every example "
                    f"is generated and planned in memory before any shard runs); use tasks.{tname}.n={MAX_N} or less"
                )
    for pname, p in sc.prompts.items():
        if p.style not in PROMPT_STYLES:
            raise ConfigError(f"prompts.{pname}.style={p.style!r} is unknown; use one of {PROMPT_STYLES}")
        if p.shots < 0:
            raise ConfigError(f"prompts.{pname}.shots={p.shots} must be >= 0")
        if p.style == "k_shot" and p.shots < 1:
            raise ConfigError(f"prompts.{pname}.shots={p.shots}: a k_shot style needs shots >= 1")
        if p.style == "template" and not p.template:
            raise ConfigError(f"prompts.{pname}.template is missing: e.g. '{{input}}\\nA:'")
        if p.max_new_tokens < 1:
            raise ConfigError(f"prompts.{pname}.max_new_tokens={p.max_new_tokens} must be >= 1")
        check_budget(pname, p.max_new_tokens, sc.backend.max_length, "backend.max_length")
    if sc.backend.name not in ("transformers", "vllm", "echo"):  # echo: no model, for benchmarks only
        raise ConfigError(f"backend.name={sc.backend.name!r} is unknown; use transformers or vllm")
    if sc.backend.max_length is not None and sc.backend.max_length < 2:
        raise ConfigError(f"backend.max_length={sc.backend.max_length} must be >= 2 (a prompt and one new token), "
                          "or null for the model's own context")
    if sc.backend.batch_size < 1:
        raise ConfigError(f"backend.batch_size={sc.backend.batch_size} must be >= 1")
    if sc.cluster.cpus_per_model <= 0:
        raise ConfigError(f"cluster.cpus_per_model={sc.cluster.cpus_per_model} must be > 0")
    if sc.cluster.window < 1:
        raise ConfigError(f"cluster.window={sc.cluster.window} must be >= 1 (shards in flight per replica; 2 keeps "
                          "the device busy while the driver hands out the next)")
    if sc.cluster.min_shards_per_replica < 1:
        raise ConfigError(f"cluster.min_shards_per_replica={sc.cluster.min_shards_per_replica} must be >= 1")
    if sc.cluster.replicas is not None and sc.cluster.replicas < 1:
        raise ConfigError(f"cluster.replicas={sc.cluster.replicas} must be >= 1, or null (as many as fit)")
    _check_x(sc)
    _check_storage(sc)
    return sc


def check_budget(prompt: str, max_new_tokens: int, context: int | None, source: str) -> None:
    """Generation must leave room for a prompt: max_new_tokens below the context (prompt + generated tokens)."""
    if context is not None and max_new_tokens >= context:
        raise ConfigError(
            f"prompts.{prompt}.max_new_tokens={max_new_tokens} leaves no room for a prompt in a context of "
            f"{context} tokens ({source}): set prompts.{prompt}.max_new_tokens below {context} "
            f"(e.g. {max(1, min(context // 4, 256))})"
        )


def _check_storage(sc: SweepConfig) -> None:
    """On a cluster every node writes to the store: a relative or in-memory root would split it (or vanish)."""
    root, address = sc.storage.root, sc.cluster.address
    if not address or address == "local":
        return
    path = root[len("file://"):] if root.startswith("file://") else None if "://" in root or "::" in root else root
    fix = ("give an absolute path on a shared filesystem (storage.root=/shared/results) or an s3://, gs:// URL "
           "(storage=s3 storage.root=s3://bucket/prefix)")
    if root.startswith("memory://"):
        raise ConfigError(f"storage.root={root!r} lives in one process's memory, but cluster.address={address!r} "
                          f"runs shards on other nodes: {fix}")
    if path is None:
        return
    if not os.path.isabs(os.path.expanduser(path)):
        raise ConfigError(
            f"storage.root={root!r} is a relative path, but cluster.address={address!r} joins a cluster: each node "
            f"(and a `ray job submit` job's working folder) would resolve it to a different place; {fix}"
        )
    logging.getLogger(__name__).warning(
        "storage.root=%r is a local path on a cluster (cluster.address=%r): every node must see it as the same "
        "shared filesystem, or shards land on the node that ran them", root, address)


X_AXES = ("params", "non_embedding_params", "train_flops", "train_step")


def _check_x(sc: SweepConfig) -> None:
    """analysis.x must be declared, positive and distinct for every selected size: it is each curve's x."""
    x = sc.analysis.x
    if x not in X_AXES:
        raise ConfigError(f"analysis.x={x!r} is unknown; use one of {', '.join(X_AXES)}")
    values = {name: getattr(sc.model.catalog[name], x) for name in sc.model.sizes}
    missing = [n for n, v in values.items() if v is None]
    if missing:
        raise ConfigError(
            f"analysis.x={x}: model.catalog entries {missing} declare no {x}; set "
            f"model.catalog.{missing[0]}.{x}=..., or read the curves against analysis.x=params"
        )
    bad = {n: v for n, v in values.items() if not v > 0}
    if bad:
        raise ConfigError(f"analysis.x={x}: {x} must be > 0, got {bad}")
    seen: dict[float, str] = {}
    for name, v in values.items():
        if float(v) in seen:
            hint = " (checkpoints of one model: use analysis.x=train_step)" if x != "train_step" else ""
            raise ConfigError(
                f"analysis.x={x}: sizes {seen[float(v)]!r} and {name!r} share {x}={v}; a curve needs one point "
                f"per {x}{hint}"
            )
        seen[float(v)] = name


def to_container(sc: SweepConfig) -> dict[str, Any]:
    """The resolved config as plain data (for the manifest and MLflow)."""
    return OmegaConf.to_container(OmegaConf.structured(sc), resolve=True)  # type: ignore[return-value]


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def conf_dir() -> Path:
    """The Hydra config tree: $ORCHESTRATOR_CONF, else the repo's conf/ folder."""
    return Path(os.environ.get("ORCHESTRATOR_CONF", CONF_DIR)).resolve()


def load(overrides: list[str], config_dir: Path | None = None, config_name: str = "config") -> SweepConfig:
    """Compose the config tree with Hydra overrides and validate it.

    Uses Hydra's compose API: one sweep is one process that expands its own
    grid, so Hydra's multirun and job working dirs are not involved.
    """
    from hydra import compose

    from orchestrator import grammar

    d = (config_dir or conf_dir()).resolve()
    if not (d / f"{config_name}.yaml").exists():
        raise ConfigError(f"config tree not found: {d}/{config_name}.yaml; set ORCHESTRATOR_CONF or --config-dir")
    with grammar.open_tree(d, list(overrides), config_name) as tree:
        grammar.check_spelling(list(overrides), tree.groups())  # `tasks=[..]`, `task.x.n=5`: the exact fix
        try:
            cfg = compose(config_name=config_name, overrides=list(overrides))
        except Exception as e:
            hint = _missing_package(str(e), [*_searchpath(overrides), d])
            if hint:
                raise ConfigError(hint) from None  # Hydra's own text points at the wrong key
            better = grammar.explain(e, tree)  # Hydra's hint misleads here, or lists no options
            if better:
                raise ConfigError(better) from None  # one message: ours replaces Hydra's
            raise
    return validate(cfg)


# groups whose yaml merges under a plural key with the file's name: tasks.<name>, prompts.<name>
_PACKAGED = {"task": "tasks", "prompt": "prompts"}
_NO_PACKAGE = re.compile(r"In '(task|prompt)/([^']+)'.*Key '(?:task|prompt)' not in 'SweepConfig'", re.DOTALL)


def _missing_package(message: str, dirs: list[Path]) -> str | None:
    """Name the file and the line it lacks when a task/prompt yaml has no `# @package` header, else None."""
    m = _NO_PACKAGE.search(message)
    if not m:
        return None
    group, name = m.group(1), m.group(2)
    found = [p for p in (Path(x) / group / f"{name}.yaml" for x in dirs) if p.exists()]
    where = str(found[0]) if found else f"{group}/{name}.yaml"
    return (f"{where}: the first line must be '# @package {_PACKAGED[group]}.{name}' (a {group} yaml is merged "
            f"under {_PACKAGED[group]}.<its name>, and without that line Hydra puts it under '{group}'); add it")


def _searchpath(overrides: list[str]) -> list[Path]:
    """The local folders of a `hydra.searchpath=[file://...]` override, in order."""
    out: list[Path] = []
    for o in overrides:
        if o.startswith("hydra.searchpath="):
            for item in o.split("=", 1)[1].strip("[]").split(","):
                item = item.strip().strip("'\"")
                if item.startswith("file://"):
                    out.append(Path(item.removeprefix("file://")))
    return out
