#!/usr/bin/env python3
"""Checks behind scripts/check-deploy that need more than a CLI call.

Subcommands (each exits non-zero and prints one line per problem on failure):
  split DIR OUT_K8S OUT_CRD   split rendered manifests: built-in kinds go to
                              OUT_K8S (for kubernetes-validate), CRD kinds to OUT_CRD
  rendered DIR                semantic checks on rendered chart variants
                              (StatefulSet contract, caps, CRD structure, skips)
  rules-from-chart SRC OUT [ALERT=N...]
                              extract a PrometheusRule's spec as a plain rules file
                              (and check overridden thresholds)
  compose FILE                docker-compose.yml services, ports, volumes, hardening
  dashboard FILE              Grafana dashboard structure
  metrics TELEMETRY_RS FILES  every pynomaly_* name used in FILES is exported
                              (also against PYNOMALY_METRICS_URL when set)
Run with the tools venv's python (needs PyYAML).
"""

import json
import os
import re
import sys
import urllib.request
from pathlib import Path

import yaml

# Kinds served by CRDs: kubernetes-validate has no schema for them, so they are
# checked structurally here (and PrometheusRule by promtool) instead.
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("keda.sh/v1alpha1", "ScaledObject"),
}

errors = []


def err(msg):
    errors.append(msg)
    print(f"  FAIL {msg}")


def load_docs(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def finish():
    if errors:
        print(f"  {len(errors)} problem(s)")
        sys.exit(1)
    print("  ok")


# --------------------------------------------------------------------- split
def cmd_split(src, out_k8s, out_crd):
    Path(out_k8s).mkdir(parents=True, exist_ok=True)
    Path(out_crd).mkdir(parents=True, exist_ok=True)
    skipped = set()
    for f in sorted(Path(src).glob("*.yaml")):
        for i, doc in enumerate(load_docs(f)):
            key = (doc.get("apiVersion"), doc.get("kind"))
            name = f"{f.stem}-{i:02d}-{doc['kind']}.yaml"
            if key in CRD_KINDS:
                skipped.add(f"{key[0]} {key[1]}")
                target = Path(out_crd) / name
            else:
                target = Path(out_k8s) / name
            target.write_text(yaml.safe_dump(doc, sort_keys=False))
    for s in sorted(skipped):
        print(f"  note: {s} is a CRD kind: skipped by kubernetes-validate, checked structurally by 'rendered' and promtool")


# ------------------------------------------------------------------ rendered
def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def check_statefulset(variant, sts, values_partitions):
    name = sts["metadata"]["name"]
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    where = f"{variant}: StatefulSet {name}"
    if pod.get("automountServiceAccountToken") is not False:
        err(f"{where}: automountServiceAccountToken must be false")
    psc = pod.get("securityContext", {})
    for k, v in {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000}.items():
        if psc.get(k) != v:
            err(f"{where}: pod securityContext.{k} must be {v}")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        err(f"{where}: pod seccompProfile must be RuntimeDefault")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    containers = pod["containers"]
    c = next((c for c in containers if c["name"] == "pynomaly"), None)
    if c is None:
        err(f"{where}: no container named pynomaly")
        return
    sc = c.get("securityContext", {})
    for k, v in {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False, "runAsNonRoot": True}.items():
        if sc.get(k) != v:
            err(f"{where}: container securityContext.{k} must be {v}")
    if sc.get("capabilities", {}).get("drop") != ["ALL"]:
        err(f"{where}: container must drop ALL capabilities")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if ports.get("admin") != 9090 and "admin" not in ports:
        err(f"{where}: container port named admin missing")
    probes = {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    for probe, path in probes.items():
        http = c.get(probe, {}).get("httpGet", {})
        if http.get("path") != path or http.get("port") != "admin":
            err(f"{where}: {probe} must be httpGet {path} on port admin, got {http}")
    for kind in ("requests", "limits"):
        for res in ("cpu", "memory"):
            if res not in c.get("resources", {}).get(kind, {}):
                err(f"{where}: resources.{kind}.{res} missing")
    env = {e["name"]: e for e in c.get("env", [])}
    gid = env.get("PYNOMALY_KAFKA__GROUP_INSTANCE_ID")
    if not gid or gid.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        err(f"{where}: PYNOMALY_KAFKA__GROUP_INSTANCE_ID must come from metadata.name")
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    if "/tmp" not in mounts:
        err(f"{where}: /tmp must be a writable volume (read-only root fs)")
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
    for mount_name in mounts.values():
        if mount_name not in vols and mount_name not in claims:
            err(f"{where}: volumeMount {mount_name} has no volume or claim")
    if "data" not in claims and "data" not in vols:
        err(f"{where}: no data volume")
    for m in c.get("volumeMounts", []):
        if m["name"] == "kafka-tls" and not m.get("readOnly"):
            err(f"{where}: the TLS secret must be mounted readOnly")
    return grace, c


def check_caps(variant, docs, partitions):
    for hpa in by_kind(docs, "HorizontalPodAutoscaler"):
        mx = hpa["spec"]["maxReplicas"]
        if partitions is not None and mx > partitions:
            err(f"{variant}: HPA maxReplicas {mx} exceeds kafka partitions {partitions}")
        if hpa["spec"]["scaleTargetRef"]["kind"] != "StatefulSet":
            err(f"{variant}: HPA must target the StatefulSet")
    for so in by_kind(docs, "ScaledObject"):
        mx = so["spec"]["maxReplicaCount"]
        if partitions is not None and mx > partitions:
            err(f"{variant}: ScaledObject maxReplicaCount {mx} exceeds kafka partitions {partitions}")
        trig = so["spec"].get("triggers", [])
        if not trig or any(t["type"] != "kafka" for t in trig):
            err(f"{variant}: ScaledObject needs kafka triggers")
        for t in trig:
            for key in ("bootstrapServers", "consumerGroup", "topic", "lagThreshold"):
                if not t.get("metadata", {}).get(key):
                    err(f"{variant}: kafka trigger metadata.{key} missing")
            if t["metadata"].get("allowIdleConsumers") not in ("false", False):
                err(f"{variant}: kafka trigger must not allow idle consumers")
    if by_kind(docs, "HorizontalPodAutoscaler") and by_kind(docs, "ScaledObject"):
        err(f"{variant}: HPA and KEDA ScaledObject rendered together")


def check_crds(variant, docs, sts):
    labels = sts["spec"]["template"]["metadata"]["labels"] if sts else {}
    services = by_kind(docs, "Service")
    for sm in by_kind(docs, "ServiceMonitor"):
        sel = sm["spec"]["selector"]["matchLabels"]
        matching = [s for s in services if all(s["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())]
        if len(matching) != 1:
            err(f"{variant}: ServiceMonitor selects {len(matching)} Services (want exactly 1, else double scrapes)")
        eps = sm["spec"].get("endpoints", [])
        if not eps or eps[0].get("port") != "admin" or eps[0].get("path") != "/metrics":
            err(f"{variant}: ServiceMonitor endpoint must be port admin, path /metrics")
    for pr in by_kind(docs, "PrometheusRule"):
        groups = pr["spec"].get("groups", [])
        alerts = {r.get("alert") for g in groups for r in g.get("rules", [])}
        for need in ("PynomalyHighErrorRate", "PynomalyHighMemory", "PynomalyHighLatency",
                     "PynomalyLowDiskSpace", "PynomalyConsumerLagHigh", "PynomalyDeadLetterRate", "PynomalyDown"):
            if need not in alerts:
                err(f"{variant}: PrometheusRule lacks {need}")
    for svc in services:
        sel = svc["spec"].get("selector", {})
        if labels and not all(labels.get(k) == v for k, v in sel.items()):
            err(f"{variant}: Service {svc['metadata']['name']} selector does not match the pods")


def check_skips(variant, docs):
    pat = re.compile(r"^(CKV2?_[A-Z0-9]+_\d+)=(.+)$")
    for d in docs:
        for k, v in (d.get("metadata", {}).get("annotations") or {}).items():
            if k.startswith("checkov.io/skip"):
                m = pat.match(str(v))
                if not m or len(m.group(2).strip()) < 20:
                    err(f"{variant}: {d['kind']} {d['metadata']['name']}: {k} needs 'CKV_ID=<reason>' with a real reason")


def cmd_rendered(src):
    expected = json.loads(os.environ.get("EXPECT_PARTITIONS", "{}"))
    for f in sorted(Path(src).glob("*.yaml")):
        variant = f.stem
        docs = load_docs(f)
        sts_list = by_kind(docs, "StatefulSet")
        if len(sts_list) != 1:
            err(f"{variant}: expected exactly one StatefulSet, got {len(sts_list)}")
            continue
        sts = sts_list[0]
        cms = by_kind(docs, "ConfigMap")
        cfg = cms[0]["data"] if cms else {}
        for key in ("PYNOMALY_ENV", "PYNOMALY_LOG_LEVEL", "PYNOMALY_KAFKA_BOOTSTRAP_SERVERS", "PYNOMALY_INPUT_TOPICS",
                    "PYNOMALY_DATA_DIR", "PYNOMALY_SHUTDOWN_TIMEOUT_SECS", "PYNOMALY_MEMORY_LIMIT_GB"):
            if key not in cfg:
                err(f"{variant}: ConfigMap lacks {key}")
        for key in cfg:
            if not key.startswith("PYNOMALY_"):
                err(f"{variant}: ConfigMap key {key} is not a PYNOMALY_* variable")
            if "PASSWORD" in key:
                err(f"{variant}: ConfigMap must not carry {key} (use the Secret)")
        res = check_statefulset(variant, sts, None)
        if res:
            grace, _ = res
            drain = int(cfg.get("PYNOMALY_SHUTDOWN_TIMEOUT_SECS", "0"))
            if grace <= drain:
                err(f"{variant}: terminationGracePeriodSeconds {grace} <= drain timeout {drain}")
        check_caps(variant, docs, expected.get(variant))
        check_crds(variant, docs, sts)
        check_skips(variant, docs)
        for job in by_kind(docs, "Job"):
            pod = job["spec"]["template"]["spec"]
            sc = pod["containers"][0].get("securityContext", {})
            if not sc.get("readOnlyRootFilesystem") or pod.get("securityContext", {}).get("runAsUser") != 1000:
                err(f"{variant}: Job {job['metadata']['name']} must use the same security context")
            if "kafka-topics.sh" not in " ".join(pod["containers"][0].get("args", [])):
                err(f"{variant}: topic Job must run kafka-topics.sh")
        if not by_kind(docs, "NetworkPolicy") and variant != "no-netpol":
            err(f"{variant}: no NetworkPolicy")
        for role in by_kind(docs, "Role"):
            if role.get("rules") and variant != "extra-rules":
                err(f"{variant}: Role {role['metadata']['name']} grants rules; the service needs none")
    finish()


def cmd_rules_from_chart(src, out, *expect):
    """expect: ALERT=NUMBER pairs the alert's expression must end with."""
    src = Path(src)
    for f in [src] if src.is_file() else sorted(src.glob("*.yaml")):
        for d in load_docs(f):
            if d.get("kind") == "PrometheusRule":
                groups = d["spec"]["groups"]
                Path(out).write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
                print(f"  {f.stem}: {sum(len(g['rules']) for g in groups)} rules extracted")
                exprs = {r.get("alert"): r["expr"].strip() for g in groups for r in g["rules"]}
                for pair in expect:
                    alert, value = pair.split("=", 1)
                    if not re.search(r"[<>]=?\s*" + re.escape(value) + "$", exprs.get(alert, "")):
                        err(f"{alert}: expression does not end with threshold {value}: {exprs.get(alert)!r}")
                finish()
                return
    print(f"  no PrometheusRule in {src}")
    sys.exit(1)


# ------------------------------------------------------------------- compose
def cmd_compose(path):
    c = yaml.safe_load(Path(path).read_text())
    services = c.get("services", {})
    for need in ("kafka", "topic-init", "pynomaly", "prometheus", "grafana", "simulator"):
        if need not in services:
            err(f"compose: service {need} missing")
    if errors:
        finish()

    def ports(svc):
        out = set()
        for p in services[svc].get("ports", []):
            if isinstance(p, dict):
                out.add(f"{p.get('published')}:{p.get('target')}")
            else:
                out.add(str(p).split("/")[0].removeprefix("127.0.0.1:"))
        return out

    for svc, want in {"pynomaly": "9090:9090", "kafka": "9092:9092", "prometheus": "9091:9090", "grafana": "3000:3000"}.items():
        if want not in ports(svc):
            err(f"compose: {svc} must publish {want}, has {sorted(ports(svc))}")
    k = services["kafka"]
    if not str(k.get("image", "")).startswith("apache/kafka:4.1.0"):
        err("compose: kafka must use apache/kafka:4.1.0")
    kenv = k.get("environment", {})
    if isinstance(kenv, list):
        kenv = dict(e.split("=", 1) for e in kenv)
    if "KAFKA_PROCESS_ROLES" not in kenv or "controller" not in kenv["KAFKA_PROCESS_ROLES"]:
        err("compose: kafka must run in KRaft mode (KAFKA_PROCESS_ROLES with controller)")
    p = services["pynomaly"]
    if p.get("read_only") is not True:
        err("compose: pynomaly must be read_only: true")
    if "build" not in p:
        err("compose: pynomaly must build from the repo (build: .)")
    hc = p.get("healthcheck", {}).get("test")
    if not hc or "healthcheck" not in " ".join(hc if isinstance(hc, list) else [hc]):
        err("compose: pynomaly healthcheck must run 'pynomaly healthcheck'")
    if not any(str(t).startswith("/tmp") for t in p.get("tmpfs", [])):
        err("compose: pynomaly needs a tmpfs /tmp (read-only root)")
    if str(p.get("user", "1000")).split(":")[0] != "1000":
        err("compose: pynomaly must run as UID 1000")
    named = set(c.get("volumes", {}) or {})
    for svc, s in services.items():
        for v in s.get("volumes", []):
            src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
            if src and not src.startswith((".", "/")) and src not in named:
                err(f"compose: {svc} uses undeclared named volume {src}")
    pvols = [v.split(":")[0] for v in p.get("volumes", []) if isinstance(v, str)]
    if not any(v in named for v in pvols):
        err("compose: pynomaly state must live on a named volume")
    prom_vols = " ".join(v for v in services["prometheus"].get("volumes", []) if isinstance(v, str))
    if "alerts.yml" not in prom_vols:
        err("compose: prometheus must mount the alert rules")
    graf_vols = " ".join(v for v in services["grafana"].get("volumes", []) if isinstance(v, str))
    if "provisioning" not in graf_vols or "dashboards" not in graf_vols:
        err("compose: grafana must mount provisioning and dashboards")
    sim = services["simulator"]
    cmd = sim.get("command", [])
    cmd = " ".join(cmd) if isinstance(cmd, list) else str(cmd)
    if "simulate" not in cmd or "--bootstrap-servers" not in cmd or "--topic" not in cmd:
        err("compose: simulator must run 'pynomaly simulate --bootstrap-servers ... --topic ...'")
    for svc in ("pynomaly", "simulator"):
        dep = services[svc].get("depends_on", {})
        if isinstance(dep, dict) and dep.get("topic-init", {}).get("condition") != "service_completed_successfully":
            err(f"compose: {svc} must wait for topic-init to complete")
    finish()


# ----------------------------------------------------------------- dashboard
def dashboard_exprs(d):
    exprs = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    exprs.append((p.get("title", "?"), t["expr"]))
            walk(p.get("panels", []))

    walk(d.get("panels", []))
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if isinstance(q, str) and "pynomaly_" in q:
            exprs.append((f"variable {v.get('name')}", q))
    return exprs


def cmd_dashboard(path):
    d = json.loads(Path(path).read_text())
    for k in ("title", "uid", "panels", "schemaVersion"):
        if k not in d:
            err(f"dashboard: missing {k}")
    titles = " | ".join(p.get("title", "") for p in d.get("panels", [])).lower()
    for topic in ("throughput", "lag", "latency", "anomalies by detector", "error", "state size"):
        if topic not in titles:
            err(f"dashboard: no panel about {topic!r}")
    ids = [p.get("id") for p in d.get("panels", [])]
    if len(ids) != len(set(ids)):
        err("dashboard: duplicate panel ids")
    if not dashboard_exprs(d):
        err("dashboard: no queries")
    finish()


# ------------------------------------------------------------------- metrics
NAME = re.compile(r"\bpynomaly_[a-z0-9_]*[a-z0-9]")
SUFFIXES = ("_bucket", "_sum", "_count")


def used_names(files):
    used = {}
    for f in files:
        text = Path(f).read_text()
        if f.endswith(".json"):
            exprs = [e for _, e in dashboard_exprs(json.loads(text))]
        else:
            exprs = [r["expr"] for g in yaml.safe_load(text)["groups"] for r in g["rules"]]
        for e in exprs:
            for n in NAME.findall(e):
                used.setdefault(n, set()).add(f)
    return used


def resolve(name, exported):
    if name in exported:
        return True
    return any(name.endswith(s) and name[: -len(s)] in exported for s in SUFFIXES)


def cmd_metrics(telemetry_rs, *files):
    path = Path(telemetry_rs)
    if not path.is_file():
        err(f"metrics: {telemetry_rs} not found (set PYNOMALY_TELEMETRY_RS to the file listing the metric names)")
        finish()
    exported = set(re.findall(r'"(pynomaly_[a-z0-9_]+)"', path.read_text()))
    if not exported:
        err(f"metrics: no \"pynomaly_*\" string literals in {telemetry_rs}")
        finish()
    print(f"  {len(exported)} metric names exported by {telemetry_rs}")
    used = used_names(files)
    for name, where in sorted(used.items()):
        if not resolve(name, exported):
            err(f"metrics: {name} (used in {', '.join(sorted(where))}) is not exported by {telemetry_rs}")
    print(f"  {len(used)} metric names used by the dashboard and alert rules")
    url = os.environ.get("PYNOMALY_METRICS_URL")
    if url:
        body = urllib.request.urlopen(url, timeout=10).read().decode()
        live = set()
        for line in body.splitlines():
            if line.startswith("# HELP ") or line.startswith("# TYPE "):
                live.add(line.split()[2])
            elif line and not line.startswith("#"):
                live.add(re.split(r"[{ ]", line, 1)[0])
        print(f"  {len([n for n in live if n.startswith('pynomaly_')])} pynomaly_* names in the live scrape of {url}")
        for name, where in sorted(used.items()):
            if not resolve(name, live) and name not in live:
                err(f"metrics: {name} (used in {', '.join(sorted(where))}) is absent from {url}")
    finish()


def main():
    cmds = {
        "split": cmd_split,
        "rendered": cmd_rendered,
        "rules-from-chart": cmd_rules_from_chart,
        "compose": cmd_compose,
        "dashboard": cmd_dashboard,
        "metrics": cmd_metrics,
    }
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print(__doc__)
        sys.exit(2)
    cmds[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    main()
