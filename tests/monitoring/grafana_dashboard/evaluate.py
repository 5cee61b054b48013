"""The evaluate subcommand: every panel's queries against a live Prometheus, one line and one picture each."""
import json
import sys
import time
from pathlib import Path

from .files import flat_panels
from .prometheus import Prometheus, duration_seconds, nice_step, resolve_variables, run_panel
from .provisioning import provisioned_datasource
from .render import format_value, last_value, render
from .validate import validate


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
