"""validate: this project's own checks of the dashboard (contract, variables, grid, drawable,
panel-type, query), which the SDK's decoder does not make."""
import json

from .files import flat_panels
from .prometheus import BUILTINS, LABEL_VALUES, VARIABLE_REF
from .provisioning import check_provider, provisioned_datasource
from .sdk_model import describe

# A link to the dashboard (/d/<uid>) holds only while its uid does; the rest is what the issue asks for.
EXPECTED = {"uid": "random-user-pipeline", "title": "Random User pipeline", "refresh": "10s",
            "time": {"from": "now-30m", "to": "now"}}

# The panel types `evaluate` draws; validate refuses others so that evaluate never meets one.
DRAWABLE = {"timeseries", "stat", "bargauge", "state-timeline"}


def grid_overlaps(placed):
    """Pairs of panels whose gridPos rectangles intersect."""
    for i, (a_title, a) in enumerate(placed):
        for b_title, b in placed[i + 1:]:
            if a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]:
                yield a_title, b_title


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
