"""docs/monitoring.md's alert tables match the alert rules, and every runbook link lands on a heading.

  python tests/monitoring/alert_docs.py        (tests/monitoring/rules_check runs it, with the
                                               monitoring venv's Python: it needs PyYAML)

One line per check, exit 1 if any fails:
  table     every alert of every docker/monitoring/prometheus/rules/*.rules.yml is a row of a table
            headed `alert`
            in docs/monitoring.md with the alert's severity, and every alert row there is a rule.
            A row's first cell names the alert in backticks, followed by its severity in
            parentheses (`` `ConsumerDown` (page) ``), or another cell of the row is the severity
            alone; rows of any table count, so each rules file may have its own section.
  runbooks  every alert has a runbook_url annotation `{{ $externalLabels.runbooks }}/<page>#<anchor>`:
            docs/<page> exists and has a heading whose GitHub anchor is <anchor>; and prometheus.yml
            defines the `runbooks` external label the links start with.
"""
import glob
import os
import re
import sys

import yaml

sys.dont_write_bytecode = True
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(ROOT, "docker", "monitoring", "prometheus", "rules", "*.rules.yml")
PROMETHEUS = os.path.join(ROOT, "docker", "monitoring", "prometheus", "prometheus.yml")
DOC = os.path.join(ROOT, "docs", "monitoring.md")
RUNBOOK = re.compile(r"^\{\{ \$externalLabels\.runbooks \}\}/([^#\s]+)#(\S+)$")
ROW_NAME = re.compile(r"^`([A-Za-z][A-Za-z0-9_]*)`(?:\s*\(([a-z]+)\))?")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")


def rules():
    """{alert: (severity, runbook_url, file)} over every rules file."""
    out = {}
    for path in sorted(glob.glob(RULES)):
        with open(path) as f:
            doc = yaml.safe_load(f) or {}
        for group in doc.get("groups", []):
            for rule in group.get("rules", []):
                if "alert" in rule:
                    out[rule["alert"]] = ((rule.get("labels") or {}).get("severity"),
                                          (rule.get("annotations") or {}).get("runbook_url"),
                                          os.path.relpath(path, ROOT))
    return out


def table_rows(path):
    """{alert: severity or None} from the rows of every markdown table whose header's first cell
    is `alert` and whose row's first cell starts with a backticked name (other tables, e.g. of
    scrape jobs, name other things)."""
    rows = {}
    header = None   # the current table's first header cell; None outside a table
    with open(path) as f:
        for line in f:
            if not line.startswith("|"):
                header = None
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:
                header = cells[0].lower()
                continue
            m = ROW_NAME.match(cells[0])
            if header != "alert" or not m:
                continue
            severity = m.group(2)
            if severity is None:
                alone = [c.strip("`") for c in cells[1:] if re.fullmatch(r"`?[a-z]+`?", c)]
                severity = alone[0] if len(alone) == 1 else None
            rows[m.group(1)] = severity
    return rows


def anchors(path):
    """GitHub's anchors of a markdown page's headings (as tests/docs_check.py computes them)."""
    seen, out = {}, set()
    with open(path) as f:
        fenced = False
        for line in f:
            if line.lstrip().startswith("```"):
                fenced = not fenced
            m = None if fenced else HEADING.match(line)
            if not m:
                continue
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower().replace("`", "")).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else "%s-%d" % (slug, n))
    return out


def main():
    failed = []
    alerts = rules()
    rows = table_rows(DOC)
    doc = os.path.relpath(DOC, ROOT)
    for name, (severity, _, path) in sorted(alerts.items()):
        if name not in rows:
            failed.append("table: %s (%s, severity %s) is in no table of %s" % (name, path, severity, doc))
        elif rows[name] != severity:
            failed.append("table: %s is `%s` in %s but (%s) in %s" % (name, severity, path, rows[name], doc))
    for name in sorted(set(rows) - set(alerts)):
        failed.append("table: %s is in %s but in no rules file (%s)" % (name, doc, os.path.relpath(RULES, ROOT)))
    print("%s table: %d alerts, %d rows" % ("FAIL" if failed else "ok  ", len(alerts), len(rows)))

    before = len(failed)
    with open(PROMETHEUS) as f:
        labels = (yaml.safe_load(f).get("global") or {}).get("external_labels") or {}
    if not labels.get("runbooks"):
        failed.append("runbooks: %s has no global.external_labels.runbooks" % os.path.relpath(PROMETHEUS, ROOT))
    for name, (_, url, path) in sorted(alerts.items()):
        m = RUNBOOK.match(url or "")
        if not m:
            failed.append("runbooks: %s (%s): runbook_url %r is not {{ $externalLabels.runbooks }}/<page>#<anchor>"
                          % (name, path, url))
            continue
        page = os.path.join(ROOT, "docs", m.group(1))
        if not os.path.isfile(page):
            failed.append("runbooks: %s (%s): docs/%s does not exist" % (name, path, m.group(1)))
        elif m.group(2) not in anchors(page):
            failed.append("runbooks: %s (%s): docs/%s has no heading #%s" % (name, path, m.group(1), m.group(2)))
    print("%s runbooks: %d links" % ("FAIL" if len(failed) > before else "ok  ", len(alerts)))

    for line in failed:
        print("     " + line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
