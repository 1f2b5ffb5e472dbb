"""The multi-host deployment files agree with the code: compose syntax and services, Prometheus targets on the
metric ports the line uses, the dashboard's queries on metrics the line exports, the line config loads."""

import json
import re
from pathlib import Path

import yaml

from pipeline.config import load_line_config
from pipeline.metrics import CameraMetrics, ReconcilerMetrics, WorkerMetrics

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def _exported_names() -> set[str]:
    names = set()
    for m in (WorkerMetrics(), CameraMetrics(), ReconcilerMetrics()):
        for f in m.registry.collect():  # by family: labelled metrics have no samples before their first label
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(f.type, ("",))
            names |= {f.name + x for x in suffixes}
    return names


def test_compose_file_holds_the_split_line():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"redis", "worker", "cameras", "prometheus", "grafana"}
    roles = {s: " ".join(compose["services"][s]["command"]) for s in ("worker", "cameras")}
    assert "--role workers" in roles["worker"] and "--role cameras" in roles["cameras"]
    assert compose["services"]["grafana"]["ports"] == ["127.0.0.1:3000:3000"], "only Grafana, only on loopback"
    assert (DEPLOY / "Dockerfile").is_file()


def test_prometheus_scrapes_the_ports_the_line_serves():
    cfg = load_line_config(DEPLOY / "line.yaml")
    m = cfg.metrics
    prom = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = {j["job_name"]: [t for sc in j["static_configs"] for t in sc["targets"]] for j in prom["scrape_configs"]}
    assert targets["grdnet-worker"] == [f"worker:{m.worker_port + i}" for i in range(len(cfg.worker.endpoints))]
    assert targets["grdnet-camera"] == [f"cameras:{m.camera_port + i}" for i in range(len(cfg.cameras))]
    assert targets["grdnet-reconciler"] == [f"worker:{m.reconciler_port}"]
    assert m.host == "0.0.0.0" and cfg.worker.curve is not None, "scraped over the network; frames over CURVE"


def test_every_dashboard_query_uses_metrics_the_line_exports():
    dash = json.loads((DEPLOY / "grafana" / "dashboards" / "grdnet-line.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {n for e in exprs for n in re.findall(r"grdnet_[a-z_]+", e)}
    exported = _exported_names()
    assert used and used <= exported, sorted(used - exported)
    assert len(dash["panels"]) >= 15 and len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    for path in (DEPLOY / "grafana" / "provisioning").rglob("*.yml"):
        assert yaml.safe_load(path.read_text())["apiVersion"] == 1, path


def test_roles_split_the_processes_of_one_config():
    from pipeline.supervisor import Supervisor

    cfg = load_line_config(DEPLOY / "line.yaml")
    workers, cameras = Supervisor(cfg, role="workers"), Supervisor(cfg, role="cameras")
    # the page runs beside the workers: the reject archive it shows lives on their host
    assert [m.name for m in workers.managed] == ["page", "reconciler", "worker[0]"]
    assert [m.name for m in cameras.managed] == ["camera[cam0]", "camera[cam1]"]
    assert {m.name for m in Supervisor(cfg).managed} == {m.name for m in (*workers.managed, *cameras.managed)}
