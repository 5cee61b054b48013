"""validate: datasource and provider, the provisioning files beside the dashboard and the mounts
that put them where Grafana reads them."""
from .files import COMPOSE, DATASOURCES, GRAFANA, PROVIDERS, REPO, load_yaml

# Where Grafana looks: the provider's path, and the folder the image reads provisioning from.
DASHBOARDS_IN_CONTAINER = "/var/lib/grafana/dashboards"
PROVISIONING_IN_CONTAINER = "/etc/grafana/provisioning"


def provisioned_datasource(errors):
    """The uid of the provisioned Prometheus datasource, and its settings."""
    doc = load_yaml(DATASOURCES) or {}
    sources = [d for d in doc.get("datasources") or [] if isinstance(d, dict)]
    prometheus = [d for d in sources if d.get("type") == "prometheus"]
    if doc.get("apiVersion") != 1:
        errors.append(f"datasource: {DATASOURCES.relative_to(REPO)}: apiVersion is not 1")
    if len(prometheus) != 1:
        errors.append(f"datasource: {DATASOURCES.relative_to(REPO)} has {len(prometheus)} Prometheus "
                      "datasources, not 1")
        return None, {}
    ds = prometheus[0]
    if not isinstance(ds.get("uid"), str) or not ds["uid"]:
        # Without a fixed uid Grafana makes one up, and no panel of the dashboard finds its data.
        errors.append("datasource: the Prometheus datasource has no fixed uid")
        return None, ds
    if not ds.get("url"):
        errors.append("datasource: the Prometheus datasource has no url")
    if ds.get("isDefault") is not True:
        errors.append("datasource: the Prometheus datasource is not the default")
    return ds["uid"], ds


def volume_mounts(service):
    """(source, target) of each volume of a Compose service, short or long syntax."""
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            parts = volume.split(":")
            if len(parts) >= 2:
                yield parts[0], parts[1]
        elif isinstance(volume, dict):
            yield volume.get("source", ""), volume.get("target", "")


def check_provider(errors, notes):
    doc = load_yaml(PROVIDERS) or {}
    providers = [p for p in doc.get("providers") or [] if isinstance(p, dict)]
    paths = [(p.get("options") or {}).get("path") for p in providers if p.get("type", "file") == "file"]
    if doc.get("apiVersion") != 1:
        errors.append(f"provider: {PROVIDERS.relative_to(REPO)}: apiVersion is not 1")
    if DASHBOARDS_IN_CONTAINER not in paths:
        errors.append(f"provider: no file provider loads {DASHBOARDS_IN_CONTAINER} (paths: {paths})")
    if not COMPOSE.exists():
        notes.append("provider: no docker-compose.yml, its Grafana mounts not checked")
        return
    services = (load_yaml(COMPOSE) or {}).get("services") or {}
    grafana = {name: s for name, s in services.items()
               if isinstance(s, dict) and str(s.get("image", "")).startswith(("grafana/grafana", "docker.io/grafana/grafana"))}
    if not grafana:
        notes.append("provider: docker-compose.yml has no Grafana service yet, its mounts not checked")
        return
    want = {(str(DASHBOARDS_IN_CONTAINER), GRAFANA / "dashboards"),
            (PROVISIONING_IN_CONTAINER, GRAFANA / "provisioning")}
    for name, service in grafana.items():
        mounts = {(target.rstrip("/"), (REPO / source).resolve()) for source, target in volume_mounts(service)
                  if source.startswith((".", "/"))}
        for target, source in sorted(want):
            if (target, source.resolve()) not in mounts:
                errors.append(f"provider: Compose service {name} does not mount "
                              f"{source.relative_to(REPO)} at {target}")
