"""evaluate: values formatted as Grafana shows them, and each panel drawn with matplotlib, alone and
at its place in the dashboard's grid."""
import math
import re
from datetime import datetime, timezone

from .files import flat_panels

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
