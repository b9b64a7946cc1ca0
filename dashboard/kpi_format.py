"""How the KPI page writes numbers: values in their unit, targets, changes and sparklines. Pure functions of a
KPI definition (core/kpis.Kpi), a value and a language; every word comes from the message catalogue."""
import math
from urllib.parse import quote

from dashboard.shell import t

ARROWS = {"up": "▲", "down": "▼", "same": "="}


def value(kpi, v: float | None, lang: str, unit: bool = True) -> str:
    """'90.2%', '1,234', '18.5 h', '1.04'; '–' without a value."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if kpi.unit == "percent":
        return f"{v * 100:.1f}%"
    if kpi.unit == "count":
        return f"{v:,.0f}" if float(v).is_integer() or abs(v) >= 100 else f"{v:,.1f}"
    if kpi.unit == "hours":
        return f"{v:,.1f}" + (f" {t(lang, 'unit.hours')}" if unit else "")
    return f"{v:.2f}"


def target(kpi, target_value: float, lang: str) -> str:
    """'Target ≥ 90.0%' (higher is better) or 'Target ≤ 24.0 h'."""
    sign = "≥" if kpi.higher_is_better else "≤"
    return t(lang, "kpis_page.target", sign=sign, value=value(kpi, target_value, lang))


def band(kpi, target_value: float, warning: float, lang: str) -> str:
    """The status rule in words, with this figure's (scaled) target and warning."""
    key = "kpis_page.band.higher" if kpi.higher_is_better else "kpis_page.band.lower"
    return t(lang, key, target=value(kpi, target_value, lang), warning=value(kpi, warning, lang))


def change(kpi, now_value: float | None, then_value: float | None, lang: str) -> tuple[str, str]:
    """(text, direction class) of the change from then to now: percentage points for percents, relative for counts,
    hours for hours, the difference for scores. Class 'better', 'worse' or 'same' (by higher_is_better); ('–',
    'none') when either side has no value."""
    if now_value is None or then_value is None:
        return "–", "none"
    diff = now_value - then_value
    shown = {"percent": round(diff * 100, 1), "count": round(diff, 1), "hours": round(diff, 1)}.get(kpi.unit,
                                                                                                round(diff, 2))
    if shown == 0:              # nothing visible at the precision shown: no arrow, no colour
        return f"{ARROWS['same']} 0", "same"
    arrow = ARROWS["up" if diff > 0 else "down"]
    better = (diff > 0) == kpi.higher_is_better
    if kpi.unit == "percent":
        text = t(lang, "kpis_page.change.points", value=f"{diff * 100:+.1f}")
    elif kpi.unit == "count":
        text = f"{diff:+,.0f}" if float(diff).is_integer() else f"{diff:+,.1f}"
        if then_value:
            text += f" ({diff / then_value * 100:+.0f}%)"
    elif kpi.unit == "hours":
        text = f"{diff:+.1f} {t(lang, 'unit.hours')}"
    else:
        text = f"{diff:+.2f}"
    return f"{arrow} {text}", "better" if better else "worse"


def sparkline(values: list[float | None], target_value: float | None = None, width: int = 200,
              height: int = 44) -> str:
    """A data: URI of an SVG line of the values (None: a gap), with the target as a dashed line when it falls in
    the drawn range. Drawn in the browser as an <img>: no script, nothing fetched, sharp at any size. The image
    stretches to its box: give width:height close to the box's so strokes stay round."""
    known = [v for v in values if v is not None]
    pad = 4
    if not known:
        body = ""
    else:
        low, high = min(known), max(known)
        if target_value is not None and low <= target_value <= high * 1.5 + 1e-9:
            low, high = min(low, target_value), max(high, target_value)
        span = (high - low) or 1.0
        n = max(len(values) - 1, 1)

        def xy(i, v):
            return pad + i * (width - 2 * pad) / n, height - pad - (v - low) / span * (height - 2 * pad)
        segments, current = [], []
        for i, v in enumerate(values):
            if v is None:
                if current:
                    segments.append(current)
                current = []
            else:
                current.append(xy(i, v))
        if current:
            segments.append(current)
        parts = []
        if target_value is not None and low <= target_value <= high:
            y = xy(0, target_value)[1]
            parts.append(f"<line x1='{pad}' x2='{width - pad}' y1='{y:.1f}' y2='{y:.1f}' stroke='#868e96' "
                         "stroke-width='1.5' stroke-dasharray='4 3'/>")
        for seg in segments:
            if len(seg) == 1:       # a lone point: a short dash
                seg = [(seg[0][0] - 2, seg[0][1]), (seg[0][0] + 2, seg[0][1])]
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in seg)
            parts.append(f"<polyline points='{points}' fill='none' stroke='#1864ab' stroke-width='2.5' "
                         "stroke-linejoin='round' stroke-linecap='round'/>")
        # The latest period: a heavier end stroke (a circle would be stretched with the box).
        last = [(i, v) for i, v in enumerate(values) if v is not None][-1]
        x, y = xy(*last)
        parts.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{y:.1f}' y2='{y:.1f}' stroke='#1864ab' stroke-width='7' "
                     "stroke-linecap='round'/>")
        body = "".join(parts)
    svg = (f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' "
           f"preserveAspectRatio='none'>{body}</svg>")
    return "data:image/svg+xml;charset=utf-8," + quote(svg)
