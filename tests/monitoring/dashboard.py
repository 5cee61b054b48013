#!/usr/bin/env python3
"""The Grafana dashboard of the pipeline: is it one Grafana 11.6 loads, and does every panel show data?

  python3 tests/monitoring/dashboard.py validate [--dashboard FILE]
  python3 tests/monitoring/dashboard.py evaluate --prometheus URL --out DIR [--range-minutes N]
                                                 [--var NAME=VALUE ...]

Run it with the venv of tests/monitoring/requirements.txt:
  python3 -m venv .stack/monitoring-venv
  .stack/monitoring-venv/bin/pip install -r tests/monitoring/requirements.txt
  .stack/monitoring-venv/bin/python tests/monitoring/dashboard.py validate

validate (no network): docker/monitoring/grafana/dashboards/pipeline.json against the provisioning
files beside it. Exit 1 listing every problem.
  From the Grafana Foundation SDK's Grafana 11.6 model (grafana_foundation_sdk.models.dashboard and
  the panel and query models it registers):
    decode     Dashboard.from_json decodes the file (panels, rows, targets, field config, options,
               value mappings, variables) without an exception
    types      every decoded field holds what the model's type annotation says (str, int, bool,
               number, enum member, literal, list, map, nested model), recursively, including each
               panel type's own options and field config
    unknown    encoding the decoded model again keeps every key of the file with the same value: a key
               the model does not know (a typo, a field of another Grafana version) is reported
    panel-type every panel type is one the SDK registers a model for (timeseries, stat, bargauge,
               state-timeline, ...)
    query      every target decodes as the SDK's Prometheus query model (expr, refId, legendFormat, ...)
    schema     schemaVersion is the one the SDK's model is generated for (41 for Grafana 11.6)
  Checked here, since the SDK's decoder accepts missing keys and never cross-checks:
    datasource the datasource provisioning file has one Prometheus datasource with a fixed uid; every
               panel, every target and every query variable names it ({"type": "prometheus", "uid": ...})
    provider   the dashboard provider loads /var/lib/grafana/dashboards; where docker-compose.yml has a
               Grafana service, it mounts this folder and the provisioning folder there
    contract   uid, title, refresh and time range are the documented ones; each panel has an id (unique),
               a title, a description, at least one target with a unique refId and a non-empty expr
    variables  every $name / ${name} / [[name]] in a query, legend, title or description is a defined
               template variable or a Grafana variable this script can substitute ($__rate_interval,
               $__interval, $__range, ...); query variables are label_values(...)
    grid       every panel has a gridPos inside the 24 columns, and no two panels overlap
    drawable   every panel type is one `evaluate` can draw

evaluate: each panel's queries against a live Prometheus, substituted as Grafana does (a variable set to
All takes its allValue, else a regex of all its values; $__interval is the step, floored at the
datasource's timeInterval; $__rate_interval is max($__interval + timeInterval, 4 x timeInterval);
$__range is the range), each run as a range query (/api/v1/query_range) over the last N minutes (30 by
default, the dashboard's range). Exit 1, listing every failing panel, when a query errs, returns no
series, or has a legend naming a label its series lack. One line per panel (title, series, last values);
one PNG per panel in DIR (panel-NN-<title>.png: time series as lines with their legends and units,
stat panels as the last value, bar gauges as bars, state timelines as coloured bands) and
DIR/dashboard.png, every panel at its place in the dashboard's grid.
"""
import argparse
import sys

# Before the imports below: running the checks must not leave __pycache__ in the tree.
sys.dont_write_bytecode = True

# The code is in grafana_dashboard/ beside this script, whose directory is on sys.path (not in
# dashboard/: a package of that name would shadow this script's own module name).
from grafana_dashboard.evaluate import cmd_evaluate  # noqa: E402
from grafana_dashboard.files import DASHBOARD  # noqa: E402
from grafana_dashboard.validate import cmd_validate  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(prog="dashboard.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{validate,evaluate}")
    v = sub.add_parser("validate", help="check the dashboard JSON against the SDK's Grafana 11.6 model and "
                       "the provisioning files (no network)",
                       description="Check the dashboard JSON against the Grafana Foundation SDK's Grafana 11.6 "
                       "model and against the provisioning files; exit 1 listing every problem.")
    v.add_argument("--dashboard", default=str(DASHBOARD), help="dashboard JSON (default: %(default)s)")
    v.set_defaults(run=cmd_validate)
    e = sub.add_parser("evaluate", help="run every panel's queries against a Prometheus and draw each panel",
                       description="Run every panel's queries (variables substituted as Grafana does) as range "
                       "queries against a Prometheus; print one line per panel; draw one PNG per panel and "
                       "DIR/dashboard.png; exit 1 when a query errs or returns no series.")
    e.add_argument("--dashboard", default=str(DASHBOARD), help="dashboard JSON (default: %(default)s)")
    e.add_argument("--prometheus", required=True, metavar="URL", help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    e.add_argument("--out", required=True, metavar="DIR", help="folder for the PNGs (made if missing)")
    e.add_argument("--range-minutes", type=float, default=30, metavar="N",
                   help="query the last N minutes (default: %(default)s, the dashboard's range)")
    e.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                   help="set a template variable instead of its current value (All), e.g. instance=10.0.0.5:9400")
    e.add_argument("--rate-interval", metavar="DURATION",
                   help="$__rate_interval instead of Grafana's max($__interval + timeInterval, 4 x timeInterval)")
    e.set_defaults(run=cmd_evaluate)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
