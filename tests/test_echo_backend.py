"""The echo backend: no model, deterministic outputs, for benchmarks of the orchestration path (bench/scale.py)."""

from __future__ import annotations

import pytest

from orchestrator.backends import load_backend
from orchestrator.config import BackendConfig, ConfigError, load


def test_echo_backend_is_deterministic_and_only_for_benchmarks():
    backend = load_backend(None, None, BackendConfig(name="echo"))
    a = backend.generate(["12+34=", "9"], max_new_tokens=3, stop=["\n"])
    assert [g.text for g in a] == ["===", "999"] and a == backend.generate(["12+34=", "9"], 3, ["\n"])
    assert [g.text for g in backend.generate(["1\n"], 4, ["\n"])] == [""]  # cut at the stop string
    assert [s.logprob for s in backend.loglikelihood([("x", "46"), ("x", "")])] == [-2.0, -0.0]
    assert backend.count_tokens("abc") == 3 and backend.tokenize("ab") == [97, 98]
    assert load(["backend.name=echo"]).backend.name == "echo"
    with pytest.raises(ConfigError, match="backend.name='echoo' is unknown"):
        load(["backend.name=echoo"])
