"""The embedded zoo: checkpoints load like any HF model, builds are deterministic and idempotent,
and the catalog in conf/model/zoo.yaml describes the models FAMILY builds."""

from __future__ import annotations

import json
import random
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2LMHeadModel

from orchestrator.zoo import (
    CHECKPOINT_STEPS,
    DEFAULT_CORPUS,
    FAMILY,
    CorpusSpec,
    build,
    build_corpus,
    build_tiny,
    gpt2_config,
    is_built,
    param_counts,
    read_card,
    resolve,
    zoo_dir,
)
from orchestrator.zoo.corpus import answer_labels, sequence_text
from orchestrator.zoo.tokenizer import build_tokenizer
from orchestrator.zoo.train import TINY, TINY_CORPUS, build_members, train_tokens

ZOO_YAML = Path(__file__).resolve().parents[1] / "conf" / "model" / "zoo.yaml"
CKPT_YAML = ZOO_YAML.with_name("zoo_checkpoints.yaml")
LINE = re.compile(r"(\d+)\+(\d+)=(\d+)\n")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("zoo") / "tiny-a", seed=0)


def test_build_tiny_is_a_normal_hf_checkpoint(tiny: Path) -> None:
    card = json.loads((tiny / "model_card.json").read_text())
    assert card["build_seconds"] < 30, "build_tiny must train in seconds"
    assert (tiny / "model.safetensors").is_file()
    assert not (tiny / "pytorch_model.bin").exists()
    assert (tiny / "README.md").read_text().startswith("# tiny-a")

    model = AutoModelForCausalLM.from_pretrained(tiny)
    tok = AutoTokenizer.from_pretrained(tiny)
    assert isinstance(model, GPT2LMHeadModel)
    assert card["params"] == sum(p.numel() for p in model.parameters())
    assert 1_000 <= card["params"] <= 10_000
    assert card["non_embedding_params"] == param_counts(model)[1]
    assert card["train_flops"] == 6 * card["params"] * card["train_tokens"]
    assert tok.decode(tok("12+34=46\n")["input_ids"]) == "12+34=46\n"

    ids = tok("3+4=", return_tensors="pt")["input_ids"]
    out = model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape == (1, ids.shape[1] + 3)


def test_build_tiny_is_deterministic(tiny: Path, tmp_path: Path) -> None:
    again = build_tiny(tmp_path / "tiny-b", seed=0)
    other = build_tiny(tmp_path / "tiny-c", seed=1)
    a, b, c = (load_file(p / "model.safetensors") for p in (tiny, again, other))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert read_card(tiny)["spec_hash"] == read_card(again)["spec_hash"] != read_card(other)["spec_hash"]


def test_corpus_is_deterministic_and_well_formed() -> None:
    spec = CorpusSpec(n_sequences=300, seed=7)
    first, second = build_corpus(spec), build_corpus(spec)
    assert first.shape == (300, spec.seq_len)
    assert torch.equal(first, second)
    assert not torch.equal(first, build_corpus(CorpusSpec(n_sequences=300, seed=8)))

    rng = random.Random(3)
    tok = build_tokenizer()
    for _ in range(50):
        text = sequence_text(rng, DEFAULT_CORPUS)
        assert len(text) == DEFAULT_CORPUS.seq_len
        lines = LINE.findall(text)
        assert text.startswith(f"{lines[0][0]}+"), "a sequence starts at a problem boundary"
        assert len(lines) >= 3, "several examples per sequence"
        assert all(int(a) + int(b) == int(c) for a, b, c in lines)
        assert len({len(a) for a, _, _ in lines}) == 1, "one sub-task per sequence"
    text = sequence_text(random.Random(spec.seed), spec)
    assert tok(text)["input_ids"] == first[0].tolist(), "corpus ids are the tokenizer's ids"


def test_answer_labels_keep_only_answers_and_their_newline() -> None:
    tok = build_tokenizer()
    text = "12+34=46\n5+5=10\n7+"
    ids = torch.tensor([tok(text)["input_ids"]])
    kept = "".join(ch if lab >= 0 else "_" for ch, lab in zip(text, answer_labels(ids)[0].tolist(), strict=True))
    assert kept == "______46\n____10\n__"


def test_catalog_matches_family() -> None:
    cfg = OmegaConf.load(ZOO_YAML)
    assert cfg.family == "zoo" and cfg.build == "zoo" and cfg.dtype == "float32"
    assert list(cfg.sizes) == [s.name for s in FAMILY]
    counts = []
    for spec in FAMILY:
        total, non_emb = param_counts(GPT2LMHeadModel(gpt2_config(spec)))
        entry = cfg.catalog[spec.name]
        assert entry.params == total, spec.name
        assert entry.non_embedding_params == non_emb, spec.name
        assert entry.train_flops > 0
        counts.append(total)
    assert counts == sorted(counts), "sizes ascend"
    assert counts[-1] / counts[0] >= 100, "the family spans two orders of magnitude"
    assert len(FAMILY) >= 5


def test_catalog_paths_follow_zoo_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = OmegaConf.load(ZOO_YAML)
    monkeypatch.setenv("ORCHESTRATOR_ZOO_DIR", str(tmp_path))
    assert cfg.catalog["zoo-3k"].path == str(tmp_path / "zoo-3k")
    monkeypatch.delenv("ORCHESTRATOR_ZOO_DIR")
    assert cfg.catalog["zoo-3k"].path == str(Path.home() / ".cache" / "orchestrator" / "zoo" / "zoo-3k")


def test_zoo_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ORCHESTRATOR_ZOO_DIR", str(tmp_path / "z"))
    assert zoo_dir() == tmp_path / "z"
    monkeypatch.delenv("ORCHESTRATOR_ZOO_DIR")
    assert zoo_dir() == Path.home() / ".cache" / "orchestrator" / "zoo"


def test_build_skips_a_built_member_and_rebuilds_a_stale_one(tmp_path: Path) -> None:
    name = FAMILY[0].name
    assert not is_built(tmp_path, [name])
    [path] = build(tmp_path, names=[name], progress=False)
    assert path == tmp_path / name and is_built(tmp_path, [name])
    assert sorted(p.name for p in tmp_path.iterdir()) == [name], "no temp folders left behind"
    card = read_card(path)
    weights = (path / "model.safetensors").stat().st_mtime_ns

    t0 = time.perf_counter()
    assert build(tmp_path, names=[name], progress=False) == [path]
    assert time.perf_counter() - t0 < 2, "a built member is not trained again"
    assert (path / "model.safetensors").stat().st_mtime_ns == weights
    assert read_card(path) == card

    stale = dict(card, spec_hash="stale")
    (path / "model_card.json").write_text(json.dumps(stale))
    assert not is_built(tmp_path, [name])
    build(tmp_path, names=[name], progress=False)
    assert read_card(path)["spec_hash"] == card["spec_hash"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_checkpoints_are_saved_while_training_and_do_not_change_the_final_model(tmp_path: Path) -> None:
    ckpts = {TINY.name: (20, 40)}
    paths = build_members([(TINY, 20)], tmp_path / "a", TINY_CORPUS, progress=False, checkpoints=ckpts)
    assert paths == [tmp_path / "a" / "zoo-tiny-step20"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["zoo-tiny", "zoo-tiny-step20", "zoo-tiny-step40"]
    cards = {n: read_card(tmp_path / "a" / n) for n in ("zoo-tiny-step20", "zoo-tiny-step40", "zoo-tiny")}
    assert [c["train_step"] for c in cards.values()] == [20, 40, TINY.steps]
    assert cards["zoo-tiny-step20"]["checkpoint_of"] == "zoo-tiny" and cards["zoo-tiny"]["checkpoint_of"] is None
    assert cards["zoo-tiny-step20"]["train_tokens"] < cards["zoo-tiny-step40"]["train_tokens"]
    assert cards["zoo-tiny-step20"]["steps"] == 20 and cards["zoo-tiny-step20"]["spec"]["steps"] == TINY.steps
    assert cards["zoo-tiny-step20"]["final_train_loss"] > cards["zoo-tiny"]["final_train_loss"]  # it learns
    readme = (tmp_path / "a" / "zoo-tiny-step20" / "README.md").read_text()
    assert f"A checkpoint of zoo-tiny, taken after 20 of its {TINY.steps} training steps" in readme

    # the final model is bit-identical to one trained without saving checkpoints
    build_members([TINY], tmp_path / "b", TINY_CORPUS, progress=False, checkpoints={})
    final_a = load_file(tmp_path / "a" / "zoo-tiny" / "model.safetensors")
    final_b = load_file(tmp_path / "b" / "zoo-tiny" / "model.safetensors")
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_b)
    early = load_file(tmp_path / "a" / "zoo-tiny-step20" / "model.safetensors")
    assert any(not torch.equal(early[k], final_a[k]) for k in final_a), "a checkpoint is an earlier model"
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "a" / "zoo-tiny-step40")
    assert isinstance(model, GPT2LMHeadModel)

    # a step that no training run saves is refused, not silently left unbuilt
    with pytest.raises(ValueError, match=r"checkpoint steps \[60\] are outside 1..59"):
        build_members([(TINY, 60)], tmp_path / "c", TINY_CORPUS, progress=False, checkpoints=ckpts)
    build_members([(TINY, 30)], tmp_path / "c", TINY_CORPUS, progress=False, checkpoints=ckpts)
    assert read_card(tmp_path / "c" / "zoo-tiny-step30")["train_step"] == 30  # asked for: saved too

    # built checkpoints are not trained again
    mtime = (tmp_path / "a" / "zoo-tiny-step40" / "model.safetensors").stat().st_mtime_ns
    build_members([(TINY, 40)], tmp_path / "a", TINY_CORPUS, progress=False, checkpoints=ckpts)
    assert (tmp_path / "a" / "zoo-tiny-step40" / "model.safetensors").stat().st_mtime_ns == mtime


def test_checkpoint_names_resolve_and_the_catalog_describes_them() -> None:
    spec, step = resolve("zoo-300k-step400")
    assert spec.name == "zoo-300k" and step == 400 and resolve("zoo-300k") == (spec, None)
    with pytest.raises(KeyError, match="zoo-300k-step100"):
        resolve("zoo-300k-step999")
    cfg = OmegaConf.load(CKPT_YAML)
    total, non_emb = param_counts(GPT2LMHeadModel(gpt2_config(spec)))
    steps = []
    for name in cfg.sizes:
        s, k = resolve(name)
        entry = cfg.catalog[name]
        k = k or s.steps
        steps.append(entry.train_step)
        assert entry.train_step == k and entry.params == total and entry.non_embedding_params == non_emb, name
        assert entry.train_flops == 6 * total * train_tokens(replace(s, steps=k)), name
    assert steps == [*CHECKPOINT_STEPS["zoo-300k"], spec.steps]


def test_resolving_and_checking_members_imports_neither_torch_nor_transformers(tmp_path: Path) -> None:
    """The driver of a zoo sweep resolves members and checks they are built; it runs no model, and importing
    torch there cost every run seconds."""
    import subprocess
    import sys

    code = ("import sys; import orchestrator.zoo as z; from orchestrator import resolve; z.resolve('zoo-300k-step100');"
            f" z.is_built({str(tmp_path)!r}); z.spec_hash(z.member('zoo-3k')); z.read_card(z.zoo_dir());"
            " print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
