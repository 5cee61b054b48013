"""Where the dashboard and its provisioning files are, and reading them."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
GRAFANA = REPO / "docker" / "monitoring" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "pipeline.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "pipeline.yml"
COMPOSE = REPO / "docker-compose.yml"

VENV_HINT = ("run it with the venv of tests/monitoring/requirements.txt: python3 -m venv .stack/monitoring-venv "
             "&& .stack/monitoring-venv/bin/pip install -r tests/monitoring/requirements.txt")


def load_yaml(path):
    try:
        import yaml
    except ImportError as exc:
        sys.exit(f"dashboard.py: {exc}: {VENV_HINT}")
    with open(path) as f:
        return yaml.safe_load(f)


def flat_panels(raw):
    """Every panel, rows included, with the panels of collapsed rows after their row."""
    for panel in raw.get("panels") or []:
        yield panel
        if isinstance(panel, dict) and panel.get("type") == "row":
            yield from panel.get("panels") or []
