"""evaluate: a panel's queries with their variables substituted as Grafana does, run against a
Prometheus as range queries."""
import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request

# Grafana's global variables that `evaluate` substitutes.
BUILTINS = {"__interval", "__interval_ms", "__rate_interval", "__range", "__range_s", "__range_ms",
            "__from", "__to"}

# $name, ${name}, ${name:format}, [[name]], [[name:format]]
VARIABLE_REF = re.compile(r"\$(\w+)|\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]")
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<match>[^,]+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$")
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


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
