"""The History page's charts as Vega-Lite specs: plain data, drawn by ``st.vega_lite_chart``.

Streamlit's ``st.bar_chart`` puts days on a time scale (a single day is a hairline), cuts long legend labels
and zooms on the mouse wheel, which traps a page scroll. These specs put each day in a band of its own (at
most a twelfth of the width, so one day is a plain bar), list the models under the chart in full, and bind
no zoom or pan.
"""

from __future__ import annotations

MIN_SLOTS = 12  # the width is shared by at least this many days: a few days do not make very wide bars


def daily_bars(days: list[str], *, field: str, title: str, value_format: str) -> dict:
    """Stacked bars of ``field`` per day (``"YYYY-MM-DD"`` strings in the data's ``day``) by ``model``.
    ``days``: the distinct days drawn, which set the spacing. ``value_format``: a d3 format for the axis and
    tooltip, e.g. ``"$.4~f"`` or ``",d"``."""
    count = max(1, len(set(days)))
    padding = max(0.0, (MIN_SLOTS - count) / 2)
    return {
        "mark": {"type": "bar"},
        "encoding": {
            "x": {"field": "day", "type": "ordinal", "title": None, "sort": "ascending",
                  "scale": {"paddingInner": 0.2, "paddingOuter": padding},
                  "axis": {"labelAngle": 0 if count <= 6 else -45, "labelOverlap": "greedy"}},
            "y": {"field": field, "type": "quantitative", "title": None, "stack": "zero",
                  "axis": {"format": value_format}},
            "color": {"field": "model", "type": "nominal", "title": None,
                      "legend": {"orient": "bottom", "direction": "vertical", "labelLimit": 0, "symbolLimit": 0}},
            "tooltip": [{"field": "day", "type": "ordinal", "title": "Day (UTC)"},
                        {"field": "model", "type": "nominal", "title": "Model"},
                        {"field": field, "type": "quantitative", "title": title, "format": value_format}],
        },
    }
