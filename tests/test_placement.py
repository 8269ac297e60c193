"""Placement on described clusters: fractions of a GPU, multi-GPU spans on one node, refusals, CPU-only clusters.

Expected numbers are worked by hand from the rule in orchestrator/placement.py:
need = params x bytes/param x 1.2 + 1 GB (GB = 2**30 bytes).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from orchestrator.config import ConfigError
from orchestrator.placement import (
    GB,
    GPU_GRID,
    Cluster,
    Node,
    Policy,
    cluster_from_ray,
    memory_need,
    place,
    weights_bytes,
)
from orchestrator.plan import ModelSpec

FIXTURE = Path(__file__).parent / "fixtures" / "literature" / "pythia_params.csv"


def spec(name: str, params: int, dtype: str = "bfloat16") -> ModelSpec:
    return ModelSpec(family="f", name=name, path=f"org/{name}", revision="main", params=params, dtype=dtype)


def pythia(dtype: str = "bfloat16") -> list[ModelSpec]:
    """Pythia 70M -> 12B with the model card's exact parameter counts (the v1.1 names of the fixture)."""
    with FIXTURE.open() as f:
        rows = [r for r in csv.DictReader(line for line in f if not line.startswith("#")) if "v1.1" in r["model"]]
    assert len(rows) == 8
    return [spec(r["model"].split("pythia-v1.1-")[1].removesuffix("-deduped"), int(r["params"]), dtype) for r in rows]


def dgx(nodes: int = 1, gpus: int = 8, gpu_gb: float = 80, cpus: float = 128) -> Cluster:
    return Cluster(tuple(Node(f"n{i}", cpus, gpus, int(gpu_gb * GB), 1024 * GB) for i in range(nodes)))


LLAMA70 = spec("llama-70b", 70_000_000_000)


def test_pythia_bf16_on_8x80gb_shares_gpus_largest_first():
    placed = place(pythia(), dgx(), Policy(cpus_per_model=4, gpus_per_model=None))
    assert [p.model for p in placed] == ["12b", "6.9b", "2.8b", "1.4b", "1b", "410m", "160m", "70m"]
    by = {p.model: p for p in placed}
    for p in placed:
        assert p.device == "cuda" and 0 < p.num_gpus < 1 and p.gpus_per_replica == 1
        assert (p.num_gpus * GPU_GRID).is_integer()  # on the 1/8 grid Ray packs
        assert p.need_bytes <= p.num_gpus * 80 * GB < p.need_bytes + 80 * GB / GPU_GRID  # fits, and no grid step more
        assert p.num_cpus == 4
    # 12b: 11,846,072,320 x 2 B = 22.06 GB; x 1.2 + 1 = 27.48 GB of 80 -> 0.343 -> 3/8
    assert by["12b"].num_gpus == 0.375
    assert round(by["12b"].need_gb, 2) == 27.48
    # 70m: 0.13 GB x 1.2 + 1 = 1.16 GB -> 1/8 of a GPU
    assert by["70m"].num_gpus == 0.125
    # replicas: 12b 2 per GPU x 8 = 16; 70m 8 per GPU x 8 = 64, capped by 128 CPUs / 4 = 32
    assert by["12b"].replicas == 16 and by["70m"].replicas == 32


def test_70b_spans_several_gpus_of_one_node():
    (p,) = place([LLAMA70], dgx(nodes=2), Policy(gpus_per_model=None))
    # 70e9 x 2 B = 130.4 GB x 1.2 = 156.5 GB; each GPU holds 80 - 1 GB of it -> 2 GPUs
    assert p.num_gpus == 2 and p.gpus_per_replica == 2
    assert p.replicas == 8  # 4 per 8-GPU node, 2 nodes


def test_pythia_12b_fp32_on_8x24gb_spans_3_gpus_transformers_4_vllm():
    """12b in fp32: 44.1 GB of weights x 1.2 = 53.0 GB over 23 GB per GPU (24 - 1 GB overhead) = 2.3 -> 3 GPUs."""
    models = pythia("float32")
    hf = {p.model: p for p in place(models, dgx(gpus=8, gpu_gb=24), Policy(gpus_per_model=None))}
    p12 = hf["12b"]
    assert (p12.num_gpus, p12.gpus_per_replica, p12.replicas) == (3.0, 3, 2)  # 8 // 3 = 2 per node
    assert round(p12.need_gb, 1) == 54.0
    # the smaller ones still share a GPU; 6.9b in fp32 (31.7 GB) needs 2 GPUs of 24 GB
    assert hf["6.9b"].gpus_per_replica == 2 and hf["6.9b"].num_gpus == 2
    assert all(0 < hf[m].num_gpus < 1 and hf[m].gpus_per_replica == 1 for m in ("70m", "160m", "410m", "1b", "1.4b"))
    vl = {p.model: p for p in place(models, dgx(gpus=8, gpu_gb=24), Policy(gpus_per_model=None, backend="vllm"))}
    assert (vl["12b"].num_gpus, vl["12b"].gpus_per_replica, vl["12b"].replicas) == (4.0, 4, 2)
    # two such nodes: twice the replicas, each replica on the GPUs of one node
    two = {p.model: p for p in place(models, dgx(nodes=2, gpus=8, gpu_gb=24), Policy(gpus_per_model=None))}
    assert (two["12b"].gpus_per_replica, two["12b"].replicas) == (3, 4)


def test_a_model_needing_more_gpus_than_any_node_is_refused_though_the_cluster_has_enough():
    """100B in bf16 needs 10 GPUs of 24 GB; the cluster has 12 but no node more than 8: refused before any work."""
    cluster = Cluster((Node("small", 32, 4, 24 * GB, 256 * GB), Node("big", 64, 8, 24 * GB, 512 * GB)))
    with pytest.raises(ConfigError) as e:
        place([spec("pythia-70m", 70_426_624), spec("big-100b", 100_000_000_000)], cluster,
              Policy(gpus_per_model=None))
    msg = str(e.value)
    assert "big-100b" in msg and "pythia-70m" not in msg.split("The cluster")[0]
    assert f"{100e9 * 2 * 1.2 / GB + 1:.1f} GB" in msg  # 224.5 GB
    assert "10 GPUs of 24.0 GB on one node" in msg  # 223.5 / 23 -> 10
    assert "largest GPU node 'big' has 8 GPUs x 24.0 GB" in msg
    assert "12 GPUs in all" in msg


def test_vllm_tensor_parallel_is_a_power_of_two():
    big = spec("big-100b", 100_000_000_000)  # 186.3 GB x 1.2 = 223.5 GB / 79 GB per GPU = 2.83
    (hf,) = place([big], dgx(), Policy(gpus_per_model=None, backend="transformers"))
    (vl,) = place([big], dgx(), Policy(gpus_per_model=None, backend="vllm"))
    assert (hf.gpus_per_replica, vl.gpus_per_replica) == (3, 4)
    assert (hf.replicas, vl.replicas) == (2, 2)


def test_70b_on_2x24gb_nodes_is_refused_naming_model_need_and_cluster():
    cluster = dgx(nodes=3, gpus=2, gpu_gb=24, cpus=16)
    with pytest.raises(ConfigError) as e:
        place([spec("pythia-70m", 70_426_624), LLAMA70], cluster, Policy(gpus_per_model=None))
    msg = str(e.value)
    assert "llama-70b" in msg and "pythia-70m" not in msg.split("The cluster")[0]
    assert f"{70e9 * 2 * 1.2 / 2**30 + 1:.1f} GB" in msg  # 157.5 GB
    assert "7 GPUs of 24.0 GB on one node" in msg  # 156.5 / 23 -> 7
    assert "2 GPUs x 24.0 GB" in msg and "3 nodes, 6 GPUs" in msg


def test_cpu_only_cluster_gets_cpu_placements_from_the_gpu_config():
    cluster = Cluster((Node("a", 16, memory=64 * GB), Node("b", 16, memory=64 * GB)))
    placed = place(pythia("float32"), cluster, Policy(cpus_per_model=4, gpus_per_model=None))
    assert all(p.num_gpus == 0 and p.gpus_per_replica == 0 and p.device == "cpu" for p in placed)
    assert all(p.num_cpus == 4 for p in placed)
    by = {p.model: p for p in placed}
    assert by["70m"].replicas == 8  # 16 / 4 CPUs x 2 nodes
    # 12b in fp32: 44.1 GB x 1.2 + 1 = 54.0 GB: one per 64 GB node
    assert by["12b"].replicas == 2
    (capped,) = place(pythia()[:1], cluster, Policy(cpus_per_model=32, gpus_per_model=None))
    assert capped.num_cpus == 16 and capped.replicas == 2


def test_cpu_cluster_refuses_a_model_larger_than_node_ram():
    cluster = Cluster((Node("a", 16, memory=32 * GB), Node("b", 16, memory=32 * GB)))
    with pytest.raises(ConfigError, match=r"12b .*float32\) needs 54.0 GB of RAM .* 32.0 GB"):
        place(pythia("float32"), cluster, Policy(gpus_per_model=None))


def test_fp32_doubles_the_need_of_bf16():
    p = 6_857_302_016
    assert weights_bytes(p, "float32") == 2 * weights_bytes(p, "bfloat16")
    assert memory_need(p, "float32") - GB == pytest.approx(2 * (memory_need(p, "bfloat16") - GB), abs=2)
    fp32 = {x.model: x for x in place(pythia("float32"), dgx(), Policy(gpus_per_model=None))}
    bf16 = {x.model: x for x in place(pythia("bfloat16"), dgx(), Policy(gpus_per_model=None))}
    # 6.9b: bf16 16.3 GB -> 2/8; fp32 31.7 GB -> 4/8
    assert (bf16["6.9b"].num_gpus, fp32["6.9b"].num_gpus) == (0.25, 0.5)


def test_auto_dtype_is_bf16_on_gpu_fp32_on_cpu():
    m = [spec("m", 1_000_000_000, "auto")]
    (gpu,) = place(m, dgx(), Policy(gpus_per_model=None))
    (cpu,) = place(m, Cluster((Node("c", 8),)), Policy(gpus_per_model=None))
    assert (gpu.dtype, cpu.dtype) == ("bfloat16", "float32")
    assert cpu.need_bytes - GB == pytest.approx(2 * (gpu.need_bytes - GB), abs=2)


def test_unknown_dtype_is_refused_naming_the_field():
    with pytest.raises(ConfigError, match=r"model.dtype='fp8'.*auto"):
        place([spec("m", 10, "fp8")], dgx(), Policy(gpus_per_model=None))


def test_declared_memory_overrides_the_estimate():
    (p,) = place([spec("moe", 70_426_624)], dgx(), Policy(gpus_per_model=None, memory_gb={"moe": 100}))
    assert p.declared and p.need_gb == 100 and p.num_gpus == 2  # 99 GB over 79 GB per GPU


def test_gpus_per_model_zero_keeps_a_gpu_cluster_on_cpu_and_a_fixed_value_is_honoured():
    (cpu,) = place(pythia()[:1], dgx(), Policy(cpus_per_model=1, gpus_per_model=0))
    assert cpu.num_gpus == 0 and cpu.num_cpus == 1
    (one,) = place(pythia()[:1], dgx(), Policy(gpus_per_model=1))
    assert one.num_gpus == 1 and one.gpus_per_replica == 1
    with pytest.raises(ConfigError, match="llama-70b"):  # one GPU cannot hold it
        place([LLAMA70], dgx(), Policy(gpus_per_model=1))


def test_cuda_on_a_cpu_cluster_and_unknown_gpu_memory_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match="no GPUs"):
        place(pythia()[:1], Cluster((Node("c", 8),)), Policy(device="cuda", gpus_per_model=None))
    with pytest.raises(ConfigError, match="cluster.gpu_memory_gb"):
        place(pythia()[:1], Cluster((Node("g", 8, gpus=1),)), Policy(gpus_per_model=None))


def test_cluster_from_ray_nodes():
    """ray.nodes() entries: GPU memory from a probe, else cluster.gpu_memory_gb; dead nodes dropped."""
    nodes = [
        {"NodeID": "aaaa1111", "Alive": True, "NodeManagerAddress": "10.0.0.1",
         "Resources": {"CPU": 16.0, "GPU": 2.0, "memory": 60 * GB, "node:10.0.0.1": 1.0}},
        {"NodeID": "bbbb2222", "Alive": True, "NodeManagerAddress": "10.0.0.1",
         "Resources": {"CPU": 4.0, "memory": 8 * GB}},
        {"NodeID": "cccc3333", "Alive": False, "NodeManagerAddress": "10.0.0.2", "Resources": {"CPU": 64.0}},
    ]
    c = cluster_from_ray(nodes, gpu_memory_gb=24)
    assert [(n.cpus, n.gpus, n.gpu_memory, n.memory) for n in c.nodes] == [
        (16.0, 2, 24 * GB, 60 * GB), (4.0, 0, None, 8 * GB)]
    assert len({n.name for n in c.nodes}) == 2  # two nodes on one machine stay two
    probed = cluster_from_ray(nodes, gpu_memory_gb=24, probed={"aaaa1111": 80 * GB})
    assert probed.nodes[0].gpu_memory == 80 * GB


@pytest.mark.integration
def test_live_local_ray_cluster_is_described_and_cpu_placed(tmp_path, tiny_conf):
    """A real local Ray node: described from ray.nodes(), and cluster=ray's null gpus_per_model places on CPUs
    where Ray reports no GPU (the case that used to ask for 1 GPU and wait forever)."""
    from orchestrator.config import load
    from orchestrator.execute import describe_cluster, init_ray, placements, shutdown
    from tests.conftest import overrides_for

    cfg = load(overrides_for(tmp_path, tiny_conf, "cluster.num_cpus=2", "cluster.gpus_per_model=null",
                             "cluster.cpus_per_model=4", "task=[add_2]", "prompt=[zero_shot]"))
    try:
        init_ray(cfg)
        import ray

        if ray.cluster_resources().get("GPU"):
            pytest.skip("this machine has a GPU: the CPU-only path is the one under test")
        cluster = describe_cluster(cfg)
        assert len(cluster.nodes) == 1 and cluster.nodes[0].cpus == 2 and cluster.nodes[0].gpus == 0
        assert cluster.nodes[0].memory and cluster.nodes[0].memory > 0
        from orchestrator.plan import model_specs

        placed = placements(model_specs(cfg.model), cfg)
        assert placed and all(p.num_gpus == 0 and p.num_cpus == 2 for p in placed)  # 4 asked, capped to 2
        assert [p.params for p in placed] == sorted((p.params for p in placed), reverse=True)

        from orchestrator import sweep

        too_big = load(overrides_for(tmp_path, tiny_conf, "cluster.num_cpus=2", "cluster.gpus_per_model=null",
                                     "task=[add_2]", "prompt=[zero_shot]", "model.catalog.tiny-b.memory_gb=1e6"))
        with pytest.raises(ConfigError, match=r"tiny-b .*needs 1000000.0 GB of RAM") as e:
            sweep.run(too_big, progress=False)
        assert "tiny-a" not in str(e.value).split("The cluster")[0]
        assert not list((tmp_path / "store").rglob("*.parquet"))  # refused before any shard ran
    finally:
        shutdown()


def test_cluster_ray_preset_sizes_models_from_placement(tmp_path):
    from orchestrator.config import load
    from orchestrator.placement import policy_from_config

    cfg = load(["cluster=ray", f"storage.root={tmp_path}", "model=pythia", "model.dtype=bfloat16"])
    policy = policy_from_config(cfg)
    assert policy.gpus_per_model is None and cfg.cluster.gpu_memory_gb is None
    from orchestrator.plan import model_specs

    on_cpu = place(model_specs(cfg.model), Cluster((Node("a", 16), Node("b", 16))), policy)
    assert all(p.device == "cpu" and p.num_cpus == 4 for p in on_cpu)
    on_gpu = place(model_specs(cfg.model), dgx(), policy)
    assert on_gpu[0].model == "pythia-12b" and all(0 < p.num_gpus < 1 for p in on_gpu)
