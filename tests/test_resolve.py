"""Models are resolved to what they are before planning: a hub branch to its commit, a folder to its
content, a zoo member to its spec hash; a stale zoo or an unresolvable branch stops the sweep with the fix."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator import sweep, zoo
from orchestrator.cli import main
from orchestrator.config import ModelFamily, ModelSize, load
from orchestrator.resolve import ModelResolutionError, cached_commit, resolve_models
from tests.conftest import overrides_for

SHA = "0123456789abcdef0123456789abcdef01234567"


def _hub_family(revision: str = "main", tokenizer: str | None = None) -> ModelFamily:
    return ModelFamily(family="f", catalog={"m": ModelSize(path="org/some-model", params=10, revision=revision,
                                                          tokenizer=tokenizer)}, sizes=["m"])


def _hub_cache(root: Path, repo: str, ref: str, sha: str) -> Path:
    """The Hugging Face cache layout (huggingface.co/docs/huggingface_hub/guides/manage-cache)."""
    refs = root / f"models--{repo.replace('/', '--')}" / "refs"
    refs.mkdir(parents=True)
    (refs / ref).write_text(sha)
    return root


def test_offline_branch_resolves_to_the_cached_commit_which_is_what_loads(tmp_path, caplog):
    cache = _hub_cache(tmp_path / "hub", "org/some-model", "main", SHA)
    assert cached_commit("org/some-model", "main", cache) == SHA
    [(name, r)] = resolve_models(_hub_family(), offline=True, cache_dir=cache).items()
    assert r.revision == SHA and "local hub cache" in r.note
    assert "may have moved" in caplog.text


def test_an_unresolvable_branch_is_an_error_not_a_silent_key(tmp_path):
    with pytest.raises(ModelResolutionError) as e:
        resolve_models(_hub_family(), offline=True, cache_dir=tmp_path / "empty")
    msg = str(e.value)
    assert "model.catalog.m.revision='main'" in msg and "Pin the commit" in msg and "org/some-model" in msg


def test_a_pinned_commit_needs_no_hub(tmp_path):
    r = resolve_models(_hub_family(SHA), offline=False, cache_dir=tmp_path)["m"]  # no network call is made
    assert r.revision == SHA and r.fingerprint is None


def test_a_tokenizer_from_another_repo_cannot_follow_a_resolved_commit(tmp_path):
    with pytest.raises(ModelResolutionError, match="tokenizer 'org/other-tokenizer' is another hub repository"):
        resolve_models(_hub_family(tokenizer="org/other-tokenizer"), offline=True, cache_dir=tmp_path)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_a_retrained_local_model_gets_new_shard_ids(tmp_path, tiny_model, tiny_model_b, tiny_conf):
    """Same path, same revision, other weights: the old plan gave the same ids and mixed the two models."""
    a = _copy(tiny_model, tmp_path / "m" / "a")
    conf = tmp_path / "conf2" / "model"
    conf.mkdir(parents=True)
    (conf / "one.yaml").write_text(f"family: one\ncatalog:\n  a: {{path: '{a}', params: 1000}}\nsizes: [a]\n")
    cfg = load(overrides_for(tmp_path, conf.parent, "model=one", "task=[add_2]", "prompt=[zero_shot]",
                             "tasks.add_2.n=10"))
    before, _, _ = sweep.prepare(cfg)
    again, _, _ = sweep.prepare(cfg)
    assert [s.id for s in again.shards] == [s.id for s in before.shards]  # same weights, same ids
    assert before.models[0].fingerprint.startswith("files:")
    shutil.rmtree(a)
    _copy(tiny_model_b, a)  # "retrained" in place
    after, _, _ = sweep.prepare(cfg)
    assert not {s.id for s in before.shards} & {s.id for s in after.shards}
    (a / "README.md").write_text("notes do not change the model\n")
    assert [s.id for s in sweep.prepare(cfg)[0].shards] == [s.id for s in after.shards]


def test_a_committed_folder_is_keyed_by_its_git_tree_until_it_is_modified(tmp_path, tiny_model):
    repo = _copy(tiny_model, tmp_path / "repo" / "model")
    git = ["git", "-C", str(repo.parent), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "model"], check=True)
    fam = ModelFamily(family="f", catalog={"m": ModelSize(path=str(repo), params=10)}, sizes=["m"])
    clean = resolve_models(fam)["m"]
    tree = subprocess.run([*git, "rev-parse", "HEAD:model"], capture_output=True, text=True).stdout.strip()
    assert clean.fingerprint == f"git:{tree}"
    (repo / "config.json").write_text((repo / "config.json").read_text().replace("{", '{"edited": 1, ', 1))
    dirty = resolve_models(fam)["m"]
    assert dirty.fingerprint.startswith("files:")  # the commit no longer describes the folder


# -- the zoo ---------------------------------------------------------------------------------------

def _fake_member(root: Path, name: str, spec_hash: str, step: int | None = None) -> Path:
    """A member folder as far as resolution reads it: its model card."""
    spec, k = zoo.resolve(name)
    d = root / name
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    (d / "model_card.json").write_text(json.dumps({"name": name, "spec_hash": spec_hash,
                                                   "train_step": k if step is None else step}))
    return d


def _demo(monkeypatch, root: Path, *more: str):
    monkeypatch.setenv("ORCHESTRATOR_ZOO_DIR", str(root))
    return load(["experiment=demo", *more])


def test_zoo_members_are_keyed_by_their_spec_hash(monkeypatch, tmp_path):
    cfg = _demo(monkeypatch, tmp_path / "zoo")
    _fake_member(tmp_path / "zoo", "zoo-3k", zoo.spec_hash(zoo.member("zoo-3k")))  # built with this spec
    resolved = resolve_models(cfg.model)  # the others are missing: they will be built with this spec
    for name in cfg.model.sizes:
        assert resolved[name].fingerprint == f"zoo:{zoo.spec_hash(zoo.member(name))}"
    ckpt = _demo(monkeypatch, tmp_path / "zoo", "model=zoo_checkpoints", "analysis.x=train_step")
    r = resolve_models(ckpt.model)
    assert r["zoo-300k-step100"].fingerprint == f"zoo:{zoo.spec_hash(zoo.member('zoo-300k'))}@step100"


def test_a_stale_zoo_member_stops_the_sweep_with_its_name_and_the_fix(monkeypatch, tmp_path, capsys):
    _fake_member(tmp_path / "zoo", "zoo-30k", "f" * 64)  # built from another spec
    cfg = _demo(monkeypatch, tmp_path / "zoo")
    with pytest.raises(ModelResolutionError) as e:
        resolve_models(cfg.model)
    assert "zoo member zoo-30k" in str(e.value) and "`orchestrator zoo build zoo-30k`" in str(e.value)
    rc = main(["plan", "experiment=demo", f"storage.root={tmp_path / 'store'}"])
    assert rc == 2 and "orchestrator zoo build zoo-30k" in capsys.readouterr().err


def test_a_checkpoint_from_another_step_is_stale(monkeypatch, tmp_path):
    _fake_member(tmp_path / "zoo", "zoo-300k-step100", zoo.spec_hash(zoo.member("zoo-300k")), step=200)
    cfg = _demo(monkeypatch, tmp_path / "zoo", "model=zoo_checkpoints", "analysis.x=train_step")
    with pytest.raises(ModelResolutionError, match="zoo member zoo-300k-step100 .*step 200"):
        resolve_models(cfg.model)

