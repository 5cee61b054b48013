"""The monitoring profile (`docker compose --profile monitoring`): the checks of the project it
makes, and `monitoring`, how Prometheus, the Airflow tasks and Grafana find one another."""
import glob
import os
import time
import urllib.parse

from .loaders import check_config, check_spec
from .model import (MONITORING, ROOT, airflow_services, consumer_services, env_of, image_name,
                    load_profile_model, services_of, yaml)
from .report import record
from .resources import MONITORING_MEMORY_BUDGET, check_heap, check_light_probes, check_memory, memory_info
from .services import check_readiness

# The images the profile must run, and how the Airflow tasks reach it.
MONITORING_IMAGES = {"prom/prometheus": "Prometheus", "prom/alertmanager": "Alertmanager",
                     "prom/pushgateway": "the Pushgateway", "grafana/grafana-oss": "Grafana"}
PUSHGATEWAY_ENV = "PRODUCER_PUSHGATEWAY_URL"


def bind_mounts(raw_svc, compose_dir):
    """[(path on the host, path in the container)] of a service's bind mounts, as written."""
    mounts = []
    for v in (raw_svc or {}).get("volumes") or []:
        if isinstance(v, dict):
            if v.get("type") == "bind":
                mounts.append((v.get("source", ""), v.get("target", "")))
        else:
            parts = str(v).split(":")
            if len(parts) >= 2 and parts[0].startswith((".", "/", "~")):
                mounts.append((parts[0], parts[1]))
    return [(os.path.normpath(os.path.join(compose_dir, os.path.expanduser(src))), dst) for src, dst in mounts]


def host_path(raw_svc, compose_dir, container_path):
    """Where a path inside the container comes from on the host, through the longest bind mount
    that holds it; None when no bind mount does."""
    best = None
    for src, dst in bind_mounts(raw_svc, compose_dir):
        dst = dst.rstrip("/")
        if container_path == dst or container_path.startswith(dst + "/"):
            if best is None or len(dst) > len(best[1]):
                best = (src, dst)
    return None if best is None else best[0] + container_path[len(best[1]):]


def container_port(svc, default):
    ports = [p.get("target") for p in svc.get("ports") or [] if isinstance(p, dict)]
    return int(ports[0]) if ports else default


def flag(svc, name, default):
    """Value of `--name=value` in a service's command."""
    for arg in svc.get("command") or []:
        if str(arg).startswith(name + "="):
            return str(arg).split("=", 1)[1]
    return default


def read_yaml(path):
    with open(path) as fh:
        return yaml.safe_load(fh) or {}


def check_monitoring(m):
    """The profile's services, their ports and mounts, and how Prometheus, the Airflow tasks and
    Grafana find one another. m: load_profile_model's."""
    if yaml is None:
        return ["PyYAML is missing (Debian: apt-get install -y python3-yaml)"]
    problems = []
    services, compose_dir = services_of(m), m["compose_dir"]
    raw_services = (m["raw"] or {}).get("services") or {}
    members = {n for n, s in raw_services.items() if MONITORING in ((s or {}).get("profiles") or [])}
    role = {}
    for n in sorted(members):
        img = image_name(services.get(n) or {})
        if img in MONITORING_IMAGES:
            role[img] = n
    for img, what in sorted(MONITORING_IMAGES.items()):
        if img not in role:
            problems.append("no service of profile %s runs %s (%s)" % (MONITORING, what, img))
    for n in sorted(members):
        for p in (services.get(n) or {}).get("ports") or []:
            if p.get("published") not in (None, "", "0") and p.get("host_ip") != "127.0.0.1":
                problems.append("service `%s` publishes port %s on %s: bind it to 127.0.0.1"
                                % (n, p.get("published"), p.get("host_ip") or "all interfaces"))
        for src, dst in bind_mounts(raw_services.get(n), compose_dir):
            if not os.path.exists(src):
                problems.append("service `%s` mounts %s at %s, which does not exist"
                                % (n, os.path.relpath(src, compose_dir), dst))
    if problems:
        return problems
    prom_name, push_name = role["prom/prometheus"], role["prom/pushgateway"]
    am_name, grafana_name = role["prom/alertmanager"], role["grafana/grafana-oss"]
    prom = services[prom_name]
    prom_port, push_port = container_port(prom, 9090), container_port(services[push_name], 9091)
    am_port = container_port(services[am_name], 9093)

    # Prometheus: the file it loads, as mounted from the repository.
    cfg_in = flag(prom, "--config.file", "/etc/prometheus/prometheus.yml")
    cfg = host_path(raw_services[prom_name], compose_dir, cfg_in)
    if cfg is None or not os.path.isfile(cfg):
        return ["service `%s` loads %s, which no bind mount provides" % (prom_name, cfg_in)]
    try:
        conf = read_yaml(cfg)
    except (OSError, yaml.YAMLError) as e:
        return ["%s: %s" % (os.path.relpath(cfg, compose_dir), e)]
    where = os.path.relpath(cfg, compose_dir)
    consumers = consumer_services(services)
    scrapes = conf.get("scrape_configs") or []
    for cname, csvc in sorted(consumers.items()):
        port = int(env_of(csvc).get("CONSUMER_HTTP_ADDR", "0.0.0.0:9400").rsplit(":", 1)[-1])
        found = [d for sc in scrapes for d in sc.get("dns_sd_configs") or [] if cname in (d.get("names") or [])]
        if not found:
            problems.append("%s: no dns_sd_configs names the `%s` service (every replica, found by Compose's "
                            "DNS)" % (where, cname))
        for d in found:
            if d.get("type", "SRV") != "A" or int(d.get("port") or 0) != port:
                problems.append("%s: Prometheus looks `%s` up as type %s, port %s; want type A, port %d "
                                "(its CONSUMER_HTTP_ADDR)" % (where, cname, d.get("type", "SRV"), d.get("port"), port))
    push = [sc for sc in scrapes
            if "%s:%d" % (push_name, push_port) in [t for st in sc.get("static_configs") or []
                                                     for t in st.get("targets") or []]]
    if not push:
        problems.append("%s: no job scrapes %s:%d" % (where, push_name, push_port))
    elif not all(sc.get("honor_labels") for sc in push):
        problems.append("%s: the Pushgateway's job lacks honor_labels: true (pushed job=\"producer\" would "
                        "become exported_job)" % where)
    am_targets = [t for a in (conf.get("alerting") or {}).get("alertmanagers") or []
                  for st in a.get("static_configs") or [] for t in st.get("targets") or []]
    if "%s:%d" % (am_name, am_port) not in am_targets:
        problems.append("%s: alerts do not go to %s:%d (targets: %s)" % (where, am_name, am_port, am_targets))
    rule_files = conf.get("rule_files") or []
    if not rule_files:
        problems.append("%s: no rule_files" % where)
    for pattern in rule_files:
        inside = pattern if pattern.startswith("/") else os.path.join(os.path.dirname(cfg_in), pattern)
        on_host = host_path(raw_services[prom_name], compose_dir, inside)
        if on_host is None or not glob.glob(on_host):
            problems.append("%s: rule_files %s matches no file in the container" % (where, pattern))

    # The producer's push, from the Airflow tasks.
    want = "http://%s:%d" % (push_name, push_port)
    for n, svc in sorted(airflow_services(services).items()):
        got = env_of(svc).get(PUSHGATEWAY_ENV)
        if (got or "").rstrip("/") != want:
            problems.append("Airflow service `%s` has %s=%s, not the Pushgateway service (%s)"
                            % (n, PUSHGATEWAY_ENV, got, want))

    # Grafana: its data source is this Prometheus, its dashboards are where its provider looks.
    graf_raw = raw_services[grafana_name]
    prov = host_path(graf_raw, compose_dir, "/etc/grafana/provisioning")
    if prov is None:
        return problems + ["service `%s` mounts no /etc/grafana/provisioning" % grafana_name]
    urls = []
    for f in sorted(glob.glob(os.path.join(prov, "datasources", "*.y*ml"))):
        urls += [d.get("url", "") for d in read_yaml(f).get("datasources") or []
                 if d.get("type") == "prometheus"]
    if not urls:
        problems.append("Grafana provisions no Prometheus data source (%s/datasources/)"
                        % os.path.relpath(prov, compose_dir))
    for url in urls:
        u = urllib.parse.urlsplit(url)
        if (u.hostname, u.port) != (prom_name, prom_port):
            problems.append("Grafana's Prometheus data source is %s, not the `%s` service (http://%s:%d)"
                            % (url, prom_name, prom_name, prom_port))
    paths = []
    for f in sorted(glob.glob(os.path.join(prov, "dashboards", "*.y*ml"))):
        paths += [(p.get("options") or {}).get("path", "") for p in read_yaml(f).get("providers") or []]
    if not paths:
        problems.append("Grafana provisions no dashboard provider (%s/dashboards/)"
                        % os.path.relpath(prov, compose_dir))
    for path in paths:
        on_host = host_path(graf_raw, compose_dir, path)
        if on_host is None or not glob.glob(os.path.join(on_host, "*.json")):
            problems.append("Grafana's dashboard provider reads %s, where no mount puts a dashboard" % path)
    return problems


def check_profile(compose, env_file):
    """The checks of the project with the monitoring profile; returns its model."""
    t0 = time.time()
    m = load_profile_model(compose, env_file, os.path.join(ROOT, "docker"))
    record("monitoring-spec", check_spec(m), "compose-go accepts %s with profile %s (%.1fs)"
           % (os.path.relpath(compose, ROOT), MONITORING, time.time() - t0))
    record("monitoring-config", check_config(compose, profiles=[MONITORING]))
    if m["project"] is None:
        return m
    record("monitoring-readiness", check_readiness(services_of(m)))
    record("monitoring-heap", check_heap(m))
    record("monitoring-memory", check_memory(m, MONITORING_MEMORY_BUDGET),
           memory_info(m, MONITORING_MEMORY_BUDGET))
    record("monitoring-light-probes", check_light_probes(m))
    record("monitoring", check_monitoring(m))
    return m
