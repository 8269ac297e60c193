"""infra/: each set-up parses, validates against its tool's own schema, and keeps the project's rules.

Schemas: Ray's cluster-launcher schema ships inside the installed ray package; KubeRay's RayCluster / RayJob
(ray.io/v1 openAPIV3Schema from the CRDs) and the Compose Specification are vendored under
tests/fixtures/schemas/ (sources and commits in tests/fixtures/schemas/README.md). Nothing here needs a cloud,
a Kubernetes cluster or Docker: what these tests cannot see (does the image build, does the operator accept
the CEL rules) is listed in infra/README.md.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from orchestrator.config import load
from orchestrator.jobs import check_submittable
from orchestrator.secrets import is_secret_key, redact_text

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"
SCHEMAS = Path(__file__).parent / "fixtures" / "schemas"
LAUNCHER = INFRA / "ray" / "cluster-aws-gpu.yaml"
RAYCLUSTER = INFRA / "kuberay" / "raycluster.yaml"
RAYJOB = INFRA / "kuberay" / "rayjob.yaml"
COMPOSE = INFRA / "mlflow" / "docker-compose.yaml"
ENV_EXAMPLE = INFRA / "mlflow" / ".env.example"
INTERPOLATION = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?:(?::?[-?+])[^}]*)?\}")


# -- helpers -----------------------------------------------------------------------------------------------------
def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def ray_schema() -> dict[str, Any]:
    import ray

    return json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())


def strict(schema: Any) -> Any:
    """The CRD schema as the API server applies it with `kubectl apply --validate=strict`: an object that lists
    its properties (and does not preserve unknown fields) rejects any other key. Plain JSON Schema would accept a
    misspelled key that Kubernetes then silently prunes."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def crd_schema(kind: str) -> dict[str, Any]:
    return strict(json.loads((SCHEMAS / f"kuberay-{kind}-v1.json").read_text()))


def validate(instance: Any, schema: dict[str, Any]) -> None:
    """Validate with the draft the schema names ($schema); a CRD's openAPIV3Schema names none and is draft 4's
    dialect (OpenAPI 3.0), so Draft4Validator."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft4Validator)
    cls.check_schema(schema)
    cls(schema).validate(instance)


def kuberay(path: Path, kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs(path) if d.get("kind") == kind]
    return doc


def cluster_spec(path: Path) -> dict[str, Any]:
    return kuberay(path, "RayCluster")["spec"] if path == RAYCLUSTER else kuberay(path, "RayJob")["spec"][
        "rayClusterSpec"]


def pod_specs(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [spec["headGroupSpec"]["template"]["spec"]] + [g["template"]["spec"] for g in spec["workerGroupSpecs"]]


def literal_secrets(obj: Any, where: str = "") -> list[str]:
    """Paths of values a credential-named key holds literally, and of strings that look like a credential
    (key ids, tokens, user:password@ URLs; orchestrator.secrets' own rules)."""
    found: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if is_secret_key(k) and not isinstance(v, (dict, list)):
                found.append(f"{where}.{k}")
            found += literal_secrets(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found += literal_secrets(v, f"{where}[{i}]")
    elif isinstance(obj, str) and redact_text(obj) != obj:
        found.append(where)
    return found


def check_env(containers: list[dict[str, Any]]) -> None:
    """Credentials reach a container only by reference: envFrom secretRef, or valueFrom.secretKeyRef."""
    for c in containers:
        for src in c.get("envFrom", []):
            assert set(src) <= {"secretRef", "configMapRef", "prefix"}, src
        for e in c.get("env", []):
            if is_secret_key(e["name"]):
                assert "value" not in e and "secretKeyRef" in e.get("valueFrom", {}), \
                    f"{c['name']}: {e['name']} must come from a Secret (valueFrom.secretKeyRef), not a literal"
            assert redact_text(str(e.get("value", ""))) == str(e.get("value", "")), e


# -- Ray cluster launcher ------------------------------------------------------------------------------------------
def test_launcher_config_passes_rays_own_validation():
    from ray.autoscaler._private.util import validate_config

    config = yaml.safe_load(LAUNCHER.read_text())
    validate(config, ray_schema())
    validate_config(config)  # what `ray up` runs: the schema plus head_node_type / min_workers checks
    assert config["provider"]["type"] == "aws"


def test_launcher_dashboard_only_on_loopback():
    config = yaml.safe_load(LAUNCHER.read_text())
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head
    for cmd in config["head_start_ray_commands"] + config["worker_start_ray_commands"]:
        assert "0.0.0.0" not in cmd, cmd


def test_launcher_has_gpu_workers_and_a_cpu_head():
    config = yaml.safe_load(LAUNCHER.read_text())
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    assert "--num-gpus=0" in " ".join(config["head_start_ray_commands"])
    workers = {n: t for n, t in types.items() if n != config["head_node_type"]}
    assert workers and all(t["resources"]["GPU"] >= 1 for t in workers.values()), workers
    assert all(re.match(r"(g\d|p\d)", t["node_config"]["InstanceType"]) for t in workers.values())
    setup = " ".join(config["setup_commands"])
    assert "pip install --no-cache-dir torch" in setup and "orchestrator[s3]" in setup


def test_launcher_credentials_come_from_instance_profiles():
    config = yaml.safe_load(LAUNCHER.read_text())
    for name, t in config["available_node_types"].items():
        assert "Arn" in t["node_config"].get("IamInstanceProfile", {}), f"{name} has no instance profile"
    assert literal_secrets(config) == []
    text = "\n".join(line for line in LAUNCHER.read_text().splitlines() if not line.lstrip().startswith("#"))
    for word in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "aws_secret_access_key", "PASSWORD"):
        assert word not in text


# -- KubeRay -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path,kind", [(RAYCLUSTER, "raycluster"), (RAYJOB, "rayjob")])
def test_kuberay_manifests_validate_against_the_crds(path: Path, kind: str):
    doc = kuberay(path, {"raycluster": "RayCluster", "rayjob": "RayJob"}[kind])
    assert doc["apiVersion"] == "ray.io/v1"
    validate(doc, crd_schema(kind))


def test_strict_crd_schema_rejects_a_misspelled_field():
    """The validation above has teeth: Kubernetes would prune `replica` silently and run no GPU worker."""
    doc = copy.deepcopy(kuberay(RAYCLUSTER, "RayCluster"))
    doc["spec"]["workerGroupSpecs"][0]["replica"] = doc["spec"]["workerGroupSpecs"][0].pop("replicas")
    with pytest.raises(jsonschema.ValidationError, match="replica"):
        validate(doc, crd_schema("raycluster"))


@pytest.mark.parametrize("path", [RAYCLUSTER, RAYJOB])
def test_kuberay_gpu_worker_groups_request_gpus(path: Path):
    spec = cluster_spec(path)
    assert spec["headGroupSpec"]["rayStartParams"]["num-gpus"] == "0"
    assert spec["workerGroupSpecs"]
    for group in spec["workerGroupSpecs"]:
        pod = group["template"]["spec"]
        (c,) = pod["containers"]
        gpus = int(c["resources"]["limits"]["nvidia.com/gpu"])
        assert gpus >= 1 and c["resources"]["requests"]["nvidia.com/gpu"] == c["resources"]["limits"]["nvidia.com/gpu"]
        assert group["rayStartParams"]["num-gpus"] == str(gpus)
        assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])


@pytest.mark.parametrize("path", [RAYCLUSTER, RAYJOB])
def test_kuberay_jobs_api_stays_inside_and_needs_a_token(path: Path):
    spec = cluster_spec(path)
    head = spec["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP" and not head.get("enableIngress", False)
    assert spec["authOptions"]["mode"] == "token"


@pytest.mark.parametrize("path", [RAYCLUSTER, RAYJOB])
def test_kuberay_credentials_only_by_reference(path: Path):
    assert not [d for d in docs(path) if d.get("kind") == "Secret"], "a Secret with values does not belong here"
    assert [p for d in docs(path) for p in literal_secrets(d)] == []
    for pod in pod_specs(cluster_spec(path)):
        assert pod["serviceAccountName"] == "orchestrator-ray"
        check_env(pod["containers"])
        for c in pod["containers"]:
            assert {"secretRef": {"name": "orchestrator-credentials", "optional": True}} in c["envFrom"]
    sa = [d for d in docs(RAYCLUSTER) if d.get("kind") == "ServiceAccount"]
    assert sa and "eks.amazonaws.com/role-arn" in sa[0]["metadata"]["annotations"]


def test_credential_checks_catch_literals():
    with pytest.raises(AssertionError, match="AWS_SECRET_ACCESS_KEY"):
        check_env([{"name": "c", "env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "abc"}]}])
    assert literal_secrets({"env": [{"MLFLOW_TRACKING_PASSWORD": "x"}, "s3://AKIAABCDEFGHIJKLMNOP:y@bucket"]}) == [
        ".env[0].MLFLOW_TRACKING_PASSWORD", ".env[1]"]


def test_rayjob_entrypoint_is_a_sweep_the_config_accepts():
    spec = kuberay(RAYJOB, "RayJob")["spec"]
    entry = spec["entrypoint"]
    args = shlex.split(entry)
    assert args[:2] == ["orchestrator", "run"], args
    overrides = args[2:]
    cfg = load(overrides)  # composes conf/ with Hydra and validates; no network
    assert cfg.storage.root.startswith("s3://") and cfg.cluster.address == "auto"
    assert cfg.tracking.enabled and cfg.tracking.uri.startswith("http://")
    assert cfg.backend.device == "cuda"
    check_submittable(cfg, overrides)  # what `orchestrator submit` requires of a cluster sweep (no credentials)
    assert redact_text(entry) == entry and "runtimeEnvYAML" not in spec


def test_ray_version_is_pinned_alike_everywhere():
    """Ray refuses a client and a cluster of different versions: the images and rayVersion must agree."""
    docker = yaml.safe_load(LAUNCHER.read_text())["docker"]
    tag = r"rayproject/ray:([\d.]+)-"
    versions = {
        "launcher image": re.search(tag, docker["image"]),
        "launcher head image": re.search(tag, docker["head_image"]),
        "Dockerfile": re.search("RAY_IMAGE=" + tag, (INFRA / "kuberay" / "Dockerfile").read_text()),
    }
    found = {k: m.group(1) if m else None for k, m in versions.items()}
    found |= {p.name: cluster_spec(p)["rayVersion"] for p in (RAYCLUSTER, RAYJOB)}
    assert len(set(found.values())) == 1 and None not in found.values(), found


# -- MLflow server ------------------------------------------------------------------------------------------------
def test_compose_file_validates_against_the_compose_spec():
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    compose = yaml.safe_load(COMPOSE.read_text())
    validate(compose, schema)
    bad = copy.deepcopy(compose)
    bad["services"]["mlflow"]["port"] = bad["services"]["mlflow"].pop("ports")
    with pytest.raises(jsonschema.ValidationError):
        validate(bad, schema)


def test_compose_publishes_only_on_loopback():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert published and all(str(p).startswith("127.0.0.1:") for p in published), published
    assert "127.0.0.1:5000:5000" in services["mlflow"]["ports"]


def test_compose_mlflow_uses_postgres_and_serves_s3_artifacts():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    cmd = services["mlflow"]["command"]
    arg = {cmd[i]: cmd[i + 1] for i in range(len(cmd) - 1) if cmd[i].startswith("--")}
    assert arg["--backend-store-uri"].startswith("postgresql://")
    assert ":" not in arg["--backend-store-uri"].split("://")[1].split("@")[0], "password in the backend URI"
    assert "--serve-artifacts" in cmd and arg["--artifacts-destination"].startswith("s3://")
    assert services["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert services["postgres"]["image"].startswith("postgres")


def test_compose_passwords_come_from_the_env_file():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name, s in services.items():
        for key, value in (s.get("environment") or {}).items():
            value = str(value)
            if is_secret_key(key) or key in ("PGPASSWORD", "AWS_ACCESS_KEY_ID", "MINIO_ROOT_USER"):
                assert INTERPOLATION.fullmatch(value), f"{name}.{key}={value!r} is not read from .env"
            rest = INTERPOLATION.sub("", value).replace("://:@", "://")  # user:password@ made of ${...} only
            assert redact_text(rest) == rest, f"{name}.{key} carries a literal credential"
    example = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                   if line and not line.startswith("#"))
    assert {"POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"} <= set(example)
    assert all("change-me" in v for k, v in example.items() if is_secret_key(k)), example
    ignored = subprocess.run(["git", "check-ignore", "-q", str(INFRA / "mlflow" / ".env")], cwd=REPO)
    assert ignored.returncode == 0, "infra/mlflow/.env must be ignored by git"


# -- documentation ------------------------------------------------------------------------------------------------
def test_infra_readme_documents_each_piece_and_credentials():
    readme = (INFRA / "README.md").read_text()
    for path in (LAUNCHER, RAYCLUSTER, RAYJOB, COMPOSE):
        assert os.path.relpath(path, INFRA) in readme, path
    assert "## Credentials" in readme and "tests/test_infra.py" in readme
