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
import enum
import json
import math
import re
import sys
import time
import types
import typing
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "docker" / "monitoring" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "pipeline.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "pipeline.yml"
COMPOSE = REPO / "docker-compose.yml"

# Where Grafana looks: the provider's path, and the folder the image reads provisioning from.
DASHBOARDS_IN_CONTAINER = "/var/lib/grafana/dashboards"
PROVISIONING_IN_CONTAINER = "/etc/grafana/provisioning"

# A link to the dashboard (/d/<uid>) holds only while its uid does; the rest is what the issue asks for.
EXPECTED = {"uid": "random-user-pipeline", "title": "Random User pipeline", "refresh": "10s",
            "time": {"from": "now-30m", "to": "now"}}

# The panel types `evaluate` draws; validate refuses others so that evaluate never meets one.
DRAWABLE = {"timeseries", "stat", "bargauge", "state-timeline"}

# Grafana's global variables that `evaluate` substitutes.
BUILTINS = {"__interval", "__interval_ms", "__rate_interval", "__range", "__range_s", "__range_ms",
            "__from", "__to"}

# $name, ${name}, ${name:format}, [[name]], [[name:format]]
VARIABLE_REF = re.compile(r"\$(\w+)|\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]")
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<match>[^,]+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$")
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")

VENV_HINT = ("run it with the venv of tests/monitoring/requirements.txt: python3 -m venv .stack/monitoring-venv "
             "&& .stack/monitoring-venv/bin/pip install -r tests/monitoring/requirements.txt")


def load_sdk():
    try:
        from grafana_foundation_sdk.cog import encoder, plugins, runtime
        from grafana_foundation_sdk.models import dashboard as model
        from grafana_foundation_sdk.models import prometheus
    except ImportError as exc:
        sys.exit(f"dashboard.py: {exc}: {VENV_HINT}")
    # Without this the decoder knows no panel or query type and keeps their JSON as untyped dicts.
    plugins.register_default_plugins()
    return types.SimpleNamespace(encoder=encoder, runtime=runtime.Runtime(), model=model, prometheus=prometheus)


def load_yaml(path):
    try:
        import yaml
    except ImportError as exc:
        sys.exit(f"dashboard.py: {exc}: {VENV_HINT}")
    with open(path) as f:
        return yaml.safe_load(f)


# ---------------------------------------------------------------------------------------------------
# validate: the SDK's model


def is_sdk_class(cls):
    return isinstance(cls, type) and cls.__module__.startswith("grafana_foundation_sdk.")


def describe(value):
    return f"{type(value).__name__} {json.dumps(value, default=str)[:60]}"


def check_value(value, hint, path, errors):
    """Appends to errors where value is not what the type annotation hint allows."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any or hint is object:
        if is_sdk_class(type(value)):
            check_object(value, path, errors)
        return
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        # A decoded model object belongs to one alternative: only its own errors say anything.
        owner = [a for a in args if isinstance(a, type) and is_sdk_class(a) and isinstance(value, a)]
        if owner:
            check_value(value, owner[0], path, errors)
            return
        tried = []
        for alternative in args:
            if alternative is type(None):
                continue
            alternative_errors = []
            check_value(value, alternative, path, alternative_errors)
            if not alternative_errors:
                return
            tried.append(alternative_errors)
        # One alternative only (an Optional): its own message says more than "matches none".
        if len(tried) == 1:
            errors.extend(tried[0])
        else:
            errors.append(f"{path}: {describe(value)} is none of {hint}")
        return
    if origin is typing.Literal:
        if value not in args:
            errors.append(f"{path}: {describe(value)} is not one of {list(args)}")
        return
    if origin is list:
        if not isinstance(value, list):
            errors.append(f"{path}: {describe(value)} is not a list")
            return
        for i, item in enumerate(value):
            check_value(item, args[0], f"{path}[{i}]", errors)
        return
    if origin is dict:
        if not isinstance(value, dict):
            errors.append(f"{path}: {describe(value)} is not an object")
            return
        for key, item in value.items():
            check_value(key, args[0], f"{path} key {key!r}", errors)
            check_value(item, args[1], f"{path}[{key!r}]", errors)
        return
    if not isinstance(hint, type):
        errors.append(f"{path}: cannot check against {hint!r}")
        return
    if issubclass(hint, enum.Enum):
        # The decoder keeps enum fields as the raw JSON value: it must be one of the enum's.
        if isinstance(value, hint):
            return
        if isinstance(value, bool) or not isinstance(value, (str, int)) or value not in {m.value for m in hint}:
            errors.append(f"{path}: {describe(value)} is not one of {[m.value for m in hint]}")
        return
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif hint is str:
        ok = isinstance(value, str)
    elif is_sdk_class(hint):
        if isinstance(value, hint):
            check_object(value, path, errors)
            return
        # A few fields (Panel.links, Panel.transformations) are left as raw JSON by the decoder.
        if isinstance(value, dict) and hasattr(hint, "from_json"):
            try:
                decoded = hint.from_json(value)
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                errors.append(f"{path}: not a {hint.__name__}: {type(exc).__name__} {exc}")
                return
            check_object(decoded, path, errors)
            return
        ok = False
    else:
        ok = isinstance(value, hint)
    if not ok:
        errors.append(f"{path}: {describe(value)} is not {hint.__name__}")


def check_object(obj, path, errors):
    try:
        hints = typing.get_type_hints(type(obj))
    except Exception as exc:  # an unresolvable annotation is the SDK's bug: say so instead of crashing
        errors.append(f"{path}: cannot read the SDK's annotations of {type(obj).__name__}: {exc}")
        return
    for name, hint in hints.items():
        check_value(getattr(obj, name, None), hint, f"{path}.{json_name(name)}", errors)


def json_name(attribute):
    """The JSON key of a model attribute, for messages: the SDK appends _val to names that are
    Python keywords or builtins and snake-cases the rest."""
    head, *rest = attribute.removesuffix("_val").split("_")
    return head + "".join(word.title() for word in rest)


def lost_keys(src, out, path):
    """Keys and values of the file that the SDK's decode-then-encode did not keep."""
    if isinstance(src, dict):
        if not isinstance(out, dict):
            yield f"{path}: decoded as {describe(out)}"
            return
        for key, value in src.items():
            if key not in out:
                yield f"{path}.{key}: a field the Grafana 11.6 model does not have"
            else:
                yield from lost_keys(value, out[key], f"{path}.{key}")
    elif isinstance(src, list):
        if not isinstance(out, list) or len(out) != len(src):
            yield f"{path}: decoded as {describe(out)}"
            return
        for i, (a, b) in enumerate(zip(src, out)):
            yield from lost_keys(a, b, f"{path}[{i}]")
    elif src != out or type(src) is bool and type(out) is not bool:
        yield f"{path}: {describe(src)} came back as {describe(out)}"


def sdk_checks(sdk, raw, errors):
    """Decodes raw with the SDK; returns the model, or None when it cannot be decoded."""
    try:
        dash = sdk.model.Dashboard.from_json(raw)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        errors.append(f"decode: the SDK's Dashboard.from_json fails: {type(exc).__name__} {exc}")
        return None
    type_errors = []
    check_object(dash, "$", type_errors)
    errors.extend(f"types: {e}" for e in type_errors)
    encoded = json.loads(json.dumps(dash, cls=sdk.encoder.JSONEncoder))
    errors.extend(f"unknown: {e}" for e in lost_keys(raw, encoded, "$"))
    model_schema = sdk.model.Dashboard().schema_version
    if raw.get("schemaVersion") != model_schema:
        errors.append(f"schema: schemaVersion is {raw.get('schemaVersion')!r}, the SDK's Grafana 11.6 model "
                      f"is for {model_schema}")
    return dash


# ---------------------------------------------------------------------------------------------------
# validate: this project's own checks


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


def grid_overlaps(placed):
    """Pairs of panels whose gridPos rectangles intersect."""
    for i, (a_title, a) in enumerate(placed):
        for b_title, b in placed[i + 1:]:
            if a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]:
                yield a_title, b_title


def flat_panels(raw):
    """Every panel, rows included, with the panels of collapsed rows after their row."""
    for panel in raw.get("panels") or []:
        yield panel
        if isinstance(panel, dict) and panel.get("type") == "row":
            yield from panel.get("panels") or []


def check_ref(ref, uid, where, errors):
    if not isinstance(ref, dict):
        errors.append(f"datasource: {where} has no datasource reference")
    elif ref.get("type") != "prometheus" or ref.get("uid") != uid:
        errors.append(f"datasource: {where} names {json.dumps(ref)}, not "
                      f"{json.dumps({'type': 'prometheus', 'uid': uid})} (the provisioned one)")


def own_checks(sdk, raw, dash, errors):
    notes = []
    uid, _ = provisioned_datasource(errors)
    check_provider(errors, notes)
    for key, want in EXPECTED.items():
        if raw.get(key) != want:
            errors.append(f"contract: {key} is {json.dumps(raw.get(key))}, not {json.dumps(want)}")

    variables = (raw.get("templating") or {}).get("list") or []
    names = [v.get("name") for v in variables if isinstance(v, dict)]
    for name in {n for n in names if names.count(n) > 1}:
        errors.append(f"variables: {name!r} is defined twice")
    for variable in variables:
        if not isinstance(variable, dict):
            continue
        if variable.get("type", "query") == "query":
            check_ref(variable.get("datasource"), uid, f"variable {variable.get('name')!r}", errors)
            if not isinstance(variable.get("query"), str) or not LABEL_VALUES.match(variable["query"]):
                errors.append(f"variables: {variable.get('name')!r}: query {json.dumps(variable.get('query'))} "
                              "is not label_values([match, ]label)")

    def check_refs(text, where):
        for match in VARIABLE_REF.finditer(text or ""):
            name = next(g for g in match.groups() if g)
            if name not in names and name not in BUILTINS:
                errors.append(f"variables: {where} uses ${name}, which is neither a template variable "
                              f"({names}) nor one of {sorted(BUILTINS)}")

    known_types = set(sdk.runtime.panelcfg_variants)
    ids, placed = {}, []
    for panel in flat_panels(raw):
        if not isinstance(panel, dict):
            errors.append(f"panels: {describe(panel)} is not a panel")
            continue
        title = panel.get("title") or f"panel id {panel.get('id')}"
        where = f"panel {title!r}"
        kind = panel.get("type")
        if not isinstance(panel.get("id"), int):
            errors.append(f"contract: {where} has no integer id")
        elif panel["id"] in ids:
            errors.append(f"contract: {where} has the id of {ids[panel['id']]!r}")
        else:
            ids[panel["id"]] = title
        pos = panel.get("gridPos")
        if not isinstance(pos, dict) or not all(isinstance(pos.get(k), int) and not isinstance(pos.get(k), bool)
                                                for k in "xywh"):
            errors.append(f"grid: {where} has no gridPos with integer x, y, w, h")
        elif pos["x"] < 0 or pos["y"] < 0 or pos["w"] < 1 or pos["h"] < 1 or pos["x"] + pos["w"] > 24:
            errors.append(f"grid: {where}: gridPos {json.dumps(pos)} is outside the 24 columns")
        else:
            placed.append((title, pos))
        check_refs(panel.get("title"), f"{where} title")
        check_refs(panel.get("description"), f"{where} description")
        if kind == "row":
            if panel.get("datasource") is not None:
                check_ref(panel["datasource"], uid, where, errors)
            continue
        if kind not in known_types:
            errors.append(f"panel-type: {where} is of type {kind!r}, which the SDK's Grafana 11.6 model does "
                          f"not know ({sorted(known_types)})")
        elif kind not in DRAWABLE:
            errors.append(f"drawable: {where} is of type {kind!r}; evaluate draws {sorted(DRAWABLE)}")
        if not panel.get("title"):
            errors.append(f"contract: {where} has no title")
        if not panel.get("description"):
            errors.append(f"contract: {where} has no description (which question does it answer?)")
        check_ref(panel.get("datasource"), uid, where, errors)
        targets = panel.get("targets") or []
        if not targets:
            errors.append(f"contract: {where} has no target")
        ref_ids = [t.get("refId") for t in targets if isinstance(t, dict)]
        for ref_id in {r for r in ref_ids if ref_ids.count(r) > 1}:
            errors.append(f"contract: {where} has two targets {ref_id!r}")
        for target in targets:
            if not isinstance(target, dict):
                errors.append(f"query: {where} has a target {describe(target)}")
                continue
            twhere = f"{where} target {target.get('refId')!r}"
            if not target.get("refId"):
                errors.append(f"contract: {where} has a target without refId")
            if not isinstance(target.get("expr"), str) or not target["expr"].strip():
                errors.append(f"contract: {twhere} has no expr")
            check_ref(target.get("datasource"), uid, twhere, errors)
            check_refs(target.get("expr"), twhere)
            check_refs(target.get("legendFormat"), f"{twhere} legend")
    if dash is not None:
        for panel in dash.panels or []:
            inner = panel.panels if isinstance(panel, sdk.model.RowPanel) else [panel]
            for p in inner:
                for target in p.targets or []:
                    if not isinstance(target, sdk.prometheus.Dataquery):
                        errors.append(f"query: a target of panel {p.title!r} does not decode as the SDK's "
                                      f"Prometheus query but as {type(target).__module__.rsplit('.', 1)[-1]}.{type(target).__name__}")
    for a, b in grid_overlaps(placed):
        errors.append(f"grid: panels {a!r} and {b!r} overlap")
    return notes


def validate(path):
    """Every problem of the dashboard at path, and notes on what could not be checked."""
    sdk = load_sdk()
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        return [f"decode: {path}: {exc}"], []
    if not isinstance(raw, dict):
        return [f"decode: {path} is not a JSON object"], []
    errors = []
    dash = sdk_checks(sdk, raw, errors)
    notes = own_checks(sdk, raw, dash, errors)
    return errors, notes


def cmd_validate(args):
    errors, notes = validate(args.dashboard)
    for note in notes:
        print(f"note: {note}")
    if errors:
        for error in errors:
            print(f"FAIL {error}")
        print(f"dashboard: {args.dashboard}: {len(errors)} problem(s)")
        return 1
    panels = [p for p in flat_panels(json.loads(Path(args.dashboard).read_text())) if p.get("type") != "row"]
    print(f"dashboard: {args.dashboard}: valid ({len(panels)} panels, "
          f"{sum(len(p.get('targets') or []) for p in panels)} queries)")
    return 0


# ---------------------------------------------------------------------------------------------------
# evaluate


def duration_seconds(text):
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)", (text or "").strip())
    if not match:
        return None
    return int(match[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]


def nice_step(raw_seconds):
    # Grafana rounds its computed interval to one of a few steps so that timestamps line up.
    for step in (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 21600, 43200, 86400):
        if step >= raw_seconds:
            return step
    return 86400


class Prometheus:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def get(self, path, params):
        # GET: Prometheus serves /api/v1/label/<name>/values on GET only (405 on POST), and every
        # query here is short enough for a URL.
        query = urllib.parse.urlencode(params, doseq=True)
        request = urllib.request.Request(f"{self.url}{path}?{query}", method="GET")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            # Prometheus answers a bad query with 400 and a JSON error: that error is the useful part.
            try:
                body = json.load(exc)
            except ValueError:
                raise RuntimeError(f"HTTP {exc.code} from {path}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise RuntimeError(f"{path}: {exc}") from None
        if body.get("status") != "success":
            raise RuntimeError(f"{body.get('errorType', 'error')}: {body.get('error', body)}")
        return body["data"]


def variable_values(prom, variable, start, end):
    match = LABEL_VALUES.match(variable.get("query") or "")
    params = {"start": start, "end": end}
    if match["match"]:
        params["match[]"] = match["match"]
    return prom.get(f"/api/v1/label/{match['label']}/values", params)


def regex_escape(value):
    return re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", value)


def resolve_variables(prom, raw, overrides, start, end, failures):
    """name -> the text Grafana puts in a query for it."""
    resolved = {}
    for variable in (raw.get("templating") or {}).get("list") or []:
        name = variable["name"]
        if name in overrides:
            resolved[name] = overrides[name]
            continue
        try:
            values = variable_values(prom, variable, start, end)
        except RuntimeError as exc:
            failures.append(f"variable ${name}: {exc}")
            values = []
        if not values:
            failures.append(f"variable ${name}: {variable.get('query')} has no value")
        current = (variable.get("current") or {}).get("value")
        current = current if isinstance(current, list) else [current]
        if variable.get("includeAll") and (current == ["$__all"] or current == [None]):
            # Grafana's All: the variable's allValue when set, else every value as one regex.
            resolved[name] = variable.get("allValue") or "(" + "|".join(regex_escape(v) for v in values) + ")"
        elif len(current) > 1:
            resolved[name] = "(" + "|".join(regex_escape(v) for v in current) + ")"
        else:
            resolved[name] = current[0] or (values[0] if values else "")
    return resolved


def substitute(text, values):
    def one(match):
        name = next(g for g in match.groups() if g)
        return str(values[name]) if name in values else match[0]
    return VARIABLE_REF.sub(one, text or "")


def series_name(legend_format, labels, expr):
    if legend_format and legend_format != "__auto":
        return LEGEND_LABEL.sub(lambda m: labels.get(m[1], ""), legend_format)
    name = labels.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}" if rest else (name or expr)


def to_float(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def run_panel(prom, panel, values, start, end, step):
    """(series, problems): series as dicts of name, labels, times, values."""
    series, problems = [], []
    for target in panel.get("targets") or []:
        if target.get("hide"):
            continue
        expr = substitute(target["expr"], values)
        try:
            data = prom.get("/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step})
        except RuntimeError as exc:
            problems.append(f"{target.get('refId')}: {exc} (query: {expr})")
            continue
        result = data.get("result") or []
        if data.get("resultType") != "matrix":
            problems.append(f"{target.get('refId')}: a {data.get('resultType')} instead of a matrix (query: {expr})")
            continue
        if not result:
            problems.append(f"{target.get('refId')}: no series (query: {expr})")
            continue
        legend = target.get("legendFormat") or ""
        for item in result:
            labels = item.get("metric") or {}
            missing = [m for m in LEGEND_LABEL.findall(legend) if m not in labels]
            if missing:
                problems.append(f"{target.get('refId')}: legend {legend!r} names label(s) {missing} that a series "
                                f"lacks ({labels}) (query: {expr})")
            points = item.get("values") or []
            series.append({"name": series_name(legend, labels, expr), "labels": labels,
                           "times": [float(t) for t, _ in points], "values": [to_float(v) for _, v in points]})
    return series, problems


# ---- drawing

GRAFANA_COLORS = {"green": "#56A64B", "red": "#E02F44", "blue": "#3274D9", "yellow": "#F2CC0C",
                  "orange": "#FF780A", "purple": "#A352CC", "text": "#3C3C46", "transparent": "#FFFFFF"}
PALETTE = ["#73BF69", "#F2CC0C", "#8AB8FF", "#FF780A", "#F2495C", "#5794F2", "#B877D9", "#705DA0",
           "#37872D", "#FADE2A", "#447EBC", "#C15C17"]
UNITS = {"s": "s", "ms": "ms", "recps": "rec/s", "rowsps": "rows/s", "ops": "ops/s", "reqps": "req/s",
         "cps": "c/s", "percent": "%", "percentunit": "", "short": "", "none": "", "": ""}


def color(name):
    return GRAFANA_COLORS.get(name, name or GRAFANA_COLORS["text"])


def last_value(serie):
    for value in reversed(serie["values"]):
        if not math.isnan(value):
            return value
    return math.nan


def mapped(value, defaults):
    """(text, color) of a value mapping matching value, or None."""
    for mapping in defaults.get("mappings") or []:
        if mapping.get("type") == "value" and not math.isnan(value):
            key = str(int(value)) if value == int(value) else repr(value)
            hit = (mapping.get("options") or {}).get(key)
            if hit:
                return hit.get("text", key), hit.get("color")
    return None


def threshold_color(value, defaults):
    steps = ((defaults.get("thresholds") or {}).get("steps")) or [{"color": "green", "value": None}]
    chosen = steps[0]["color"]
    for step in steps:
        if step.get("value") is None or (not math.isnan(value) and value >= step["value"]):
            chosen = step["color"]
    return color(chosen)


def format_value(value, defaults, now):
    unit = defaults.get("unit") or ""
    hit = mapped(value, defaults)
    if hit:
        return hit[0]
    if math.isnan(value):
        return "no value"
    if unit == "dateTimeFromNow":
        ago = now - value / 1000
        for size, word in ((86400, "day"), (3600, "hour"), (60, "minute")):
            if abs(ago) >= size:
                n = round(ago / size)
                return f"{n} {word}{'s' if n != 1 else ''} ago"
        return "a few seconds ago"
    if unit == "s" and abs(value) < 1:
        return f"{value * 1000:.3g} ms"
    decimals = defaults.get("decimals")
    if decimals is not None:
        text = f"{value:.{int(decimals)}f}"
    else:
        text = f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    symbol = unit[len("suffix:"):] if unit.startswith("suffix:") else UNITS.get(unit, unit)
    return f"{text} {symbol}".strip()


def axis_label(panel):
    defaults = panel["fieldConfig"]["defaults"]
    unit = defaults.get("unit") or ""
    symbol = unit[len("suffix:"):] if unit.startswith("suffix:") else UNITS.get(unit, unit)
    label = (defaults.get("custom") or {}).get("axisLabel") or ""
    return f"{label} ({symbol})" if label and symbol else label or symbol


def draw_timeseries(ax, panel, series, start, end):
    from matplotlib import dates
    defaults = panel["fieldConfig"]["defaults"]
    custom = defaults.get("custom") or {}
    steps = "steps-post" if custom.get("lineInterpolation") == "stepAfter" else "default"
    for i, serie in enumerate(series):
        times = [datetime.fromtimestamp(t, timezone.utc) for t in serie["times"]]
        ax.plot(times, serie["values"], drawstyle=steps, linewidth=1.6, color=PALETTE[i % len(PALETTE)],
                label=f"{serie['name']}  (last {format_value(last_value(serie), defaults, end)})")
    ax.set_xlim(datetime.fromtimestamp(start, timezone.utc), datetime.fromtimestamp(end, timezone.utc))
    ax.xaxis.set_major_formatter(dates.DateFormatter("%H:%M", tz=timezone.utc))
    ax.set_xlabel("time (UTC)", fontsize=7)
    ax.set_ylabel(axis_label(panel), fontsize=8)
    if custom.get("axisSoftMin") == 0:
        _, high = ax.get_ylim()
        finite = [v for s in series for v in s["values"] if not math.isnan(v)]
        if finite and min(finite) >= 0:
            ax.set_ylim(0, max(high, 1e-9) if high > 0 else 1)
    if defaults.get("decimals") == 0:
        from matplotlib.ticker import MaxNLocator
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper left", framealpha=0.8)


def draw_stat(ax, panel, series, start, end):
    from matplotlib.patches import Rectangle
    defaults = panel["fieldConfig"]["defaults"]
    options = panel.get("options") or {}
    ax.set_axis_off()
    n = max(len(series), 1)
    figure = ax.get_figure()
    share_pt = ax.get_position().width * figure.get_figwidth() * 72 / n
    for i, serie in enumerate(series):
        value = last_value(serie)
        text = format_value(value, defaults, end)
        # As large as fits the panel's share of the width (a bold glyph is about 0.65 em wide).
        size = max(8, min(26, share_pt * 0.9 / (0.65 * max(len(text), 1))))
        hit = mapped(value, defaults)
        tint = color(hit[1]) if hit and hit[1] else threshold_color(value, defaults)
        x = (i + 0.5) / n
        if options.get("colorMode") == "background":
            ax.add_patch(Rectangle((i / n + 0.01, 0.05), 1 / n - 0.02, 0.9, color=tint, transform=ax.transAxes))
            tint = "white"
        ax.text(x, 0.55, text, ha="center", va="center", fontsize=size,
                fontweight="bold", color=tint, transform=ax.transAxes)
        if n > 1 or options.get("textMode") == "value_and_name":
            ax.text(x, 0.2, serie["name"], ha="center", va="center", fontsize=9,
                    color="white" if options.get("colorMode") == "background" else GRAFANA_COLORS["text"],
                    transform=ax.transAxes)


def draw_bargauge(ax, panel, series, start, end):
    defaults = panel["fieldConfig"]["defaults"]
    names = [s["name"] for s in series]
    values = [last_value(s) for s in series]
    finite = [0 if math.isnan(v) else v for v in values]
    ax.barh(range(len(series)), finite, color=[threshold_color(v, defaults) for v in values], height=0.6)
    ax.set_yticks(range(len(series)), names, fontsize=8)
    ax.invert_yaxis()
    top = max(finite + [1]) * 1.25
    ax.set_xlim(defaults.get("min", 0), top)
    for i, value in enumerate(values):
        ax.text(finite[i] + top * 0.01, i, format_value(value, defaults, end), va="center", fontsize=9, fontweight="bold")
    ax.tick_params(labelsize=7)
    ax.grid(True, axis="x", alpha=0.3)


def draw_state_timeline(ax, panel, series, start, end):
    from matplotlib import dates
    from matplotlib.patches import Patch
    defaults = panel["fieldConfig"]["defaults"]
    seen = {}
    for row, serie in enumerate(series):
        points = list(zip(serie["times"], serie["values"]))
        for i, (t, value) in enumerate(points):
            if math.isnan(value):
                continue
            until = points[i + 1][0] if i + 1 < len(points) else end
            hit = mapped(value, defaults)
            text, tint = (hit[0], color(hit[1])) if hit else (format_value(value, defaults, end), threshold_color(value, defaults))
            seen[text] = tint
            ax.broken_barh([(dates.date2num(datetime.fromtimestamp(t, timezone.utc)),
                             dates.date2num(datetime.fromtimestamp(until, timezone.utc))
                             - dates.date2num(datetime.fromtimestamp(t, timezone.utc)))],
                           (row - 0.4, 0.8), facecolors=tint)
    ax.set_yticks(range(len(series)), [s["name"] for s in series], fontsize=8)
    ax.set_ylim(len(series) - 0.5, -0.5)
    ax.set_xlim(datetime.fromtimestamp(start, timezone.utc), datetime.fromtimestamp(end, timezone.utc))
    ax.xaxis.set_major_formatter(dates.DateFormatter("%H:%M", tz=timezone.utc))
    ax.set_xlabel("time (UTC)", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.legend(handles=[Patch(color=c, label=t) for t, c in seen.items()], fontsize=7, loc="upper left",
              ncols=max(len(seen), 1), framealpha=0.8)


DRAW = {"timeseries": draw_timeseries, "stat": draw_stat, "bargauge": draw_bargauge,
        "state-timeline": draw_state_timeline}


def draw_panel(ax, panel, series, problems, start, end, title_size=10):
    ax.set_title(panel["title"], fontsize=title_size, loc="left", fontweight="bold")
    if series:
        DRAW[panel["type"]](ax, panel, series, start, end)
    if problems:
        ax.text(0.5, 0.5, "\n".join(["NO DATA" if not series else "PARTLY FAILED"] + [p[:90] for p in problems[:4]]),
                ha="center", va="center", fontsize=8, color=GRAFANA_COLORS["red"], transform=ax.transAxes, wrap=True,
                bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": GRAFANA_COLORS["red"]})
        if not series:
            ax.set_xticks([])
            ax.set_yticks([])


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def render(results, raw, out, start, end):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    out.mkdir(parents=True, exist_ok=True)
    files = []
    for n, (panel, series, problems) in enumerate(results, 1):
        pos = panel["gridPos"]
        fig = pyplot.figure(figsize=(max(pos["w"] * 0.55, 5), max(pos["h"] * 0.55, 2.6)), dpi=100)
        ax = fig.add_subplot()
        draw_panel(ax, panel, series, problems, start, end)
        fig.tight_layout()
        path = out / f"panel-{n:02d}-{slug(panel['title'])}.png"
        fig.savefig(path)
        pyplot.close(fig)
        files.append(path)

    # The contact sheet keeps Grafana's layout: 24 columns, each gridPos unit one cell, in inches.
    cell_w, cell_h, header = 0.75, 0.42, 1.5
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in flat_panels(raw))
    fig_w, fig_h = 24 * cell_w, (rows + header) * cell_h
    fig = pyplot.figure(figsize=(fig_w, fig_h), dpi=90)
    fig.text(0.01, 1 - 0.5 * cell_h / fig_h, f"{raw['title']}  —  "
             f"{datetime.fromtimestamp(start, timezone.utc):%Y-%m-%d %H:%M} to "
             f"{datetime.fromtimestamp(end, timezone.utc):%H:%M} UTC", fontsize=14, fontweight="bold", va="center")

    def box(panel, series):
        pos = panel["gridPos"]
        # Room on the left for what the panel writes there: tick labels and axis label, or the
        # series names of a bar gauge or state timeline (about 0.06 in a character at size 8).
        if panel["type"] in ("bargauge", "state-timeline"):
            left = min(0.2 + 0.06 * max((len(s["name"]) for s in series), default=0), pos["w"] * cell_w * 0.4)
        else:
            left = 0.1 if panel["type"] == "stat" else 0.75
        bottom = 0.15 if panel["type"] == "stat" else 0.5
        x0, x1 = pos["x"] * cell_w + left, (pos["x"] + pos["w"]) * cell_w - 0.2
        top, low = (pos["y"] + header) * cell_h + 0.35, (pos["y"] + header + pos["h"]) * cell_h - bottom
        return [x0 / fig_w, 1 - low / fig_h, (x1 - x0) / fig_w, (low - top) / fig_h]

    for panel in flat_panels(raw):
        if panel.get("type") == "row":
            y = (panel["gridPos"]["y"] + header + 0.5) * cell_h
            fig.text(0.01, 1 - y / fig_h, panel.get("title", ""), fontsize=12, fontweight="bold",
                     color="#555555", va="center")
    for panel, series, problems in results:
        ax = fig.add_axes(box(panel, series))
        draw_panel(ax, panel, series, problems, start, end, title_size=9)
    sheet = out / "dashboard.png"
    fig.savefig(sheet)
    pyplot.close(fig)
    return files, sheet


def cmd_evaluate(args):
    errors, _ = validate(args.dashboard)
    if errors:
        for error in errors:
            print(f"FAIL {error}")
        print("dashboard: invalid, not evaluated (see `validate`)")
        return 1
    raw = json.loads(Path(args.dashboard).read_text())
    overrides = {}
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep:
            sys.exit(f"dashboard.py: --var {item!r} is not NAME=VALUE")
        overrides[name] = value
    _, datasource = provisioned_datasource([])
    scrape = duration_seconds((datasource.get("jsonData") or {}).get("timeInterval")) or 15
    range_s = int(args.range_minutes * 60)
    end = float(int(time.time()))
    start = end - range_s
    prom = Prometheus(args.prometheus)
    failures = []
    values = resolve_variables(prom, raw, overrides, start, end, failures)

    results = []
    for panel in flat_panels(raw):
        if panel.get("type") == "row":
            continue
        # Grafana divides the range by the panel's max data points (about its width in pixels, ~1000
        # here) and floors that at the datasource's timeInterval and the panel's min interval.
        floor = max(scrape, duration_seconds(panel.get("interval")) or 0)
        step = max(floor, nice_step(range_s / 1000))
        builtins = {"__interval": f"{step}s", "__interval_ms": step * 1000,
                    "__rate_interval": args.rate_interval or f"{int(max(step + scrape, 4 * scrape))}s",
                    "__range": f"{range_s}s", "__range_s": range_s, "__range_ms": range_s * 1000,
                    "__from": int(start * 1000), "__to": int(end * 1000)}
        series, problems = run_panel(prom, panel, {**values, **builtins}, start, end, step)
        results.append((panel, series, problems))
        defaults = panel["fieldConfig"]["defaults"]
        lasts = ", ".join(f"{s['name']}={format_value(last_value(s), defaults, end)}" for s in series[:6])
        more = f", ... ({len(series) - 6} more)" if len(series) > 6 else ""
        status = "FAIL" if problems else "ok  "
        print(f"{status} {panel['title']}: {len(series)} series; last: {lasts or '-'}{more}")
        for problem in problems:
            print(f"       {problem}")
            failures.append(f"{panel['title']}: {problem}")

    files, sheet = render(results, raw, Path(args.out), start, end)
    print(f"pictures: {len(files)} panels and {sheet}")
    if failures:
        print(f"dashboard: {len(failures)} failure(s):")
        for failure in failures:
            print(f"  {failure}")
        return 1
    print(f"dashboard: every panel has data ({len(results)} panels)")
    return 0


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
