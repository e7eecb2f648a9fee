"""Small inline SVG charts drawn on the server: no script, no CDN, readable without JavaScript."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 160, 44, 3


def _points(values: Sequence[float], top: float) -> str:
    n = len(values)
    step = (WIDTH - 2 * PAD) / max(n - 1, 1)
    scale = (HEIGHT - 2 * PAD) / top if top > 0 else 0.0
    return " ".join(f"{PAD + i * step:.1f},{HEIGHT - PAD - v * scale:.1f}" for i, v in enumerate(values))


def burn_down(days: Sequence[date], spent: Sequence[float], total: float, used: float, unit: str) -> Markup:
    """Budget left after each day of ``days``: it ends at ``total - used`` (the live figure) and climbs back
    by each day's spend (coupons or yuan) towards the start of the window."""
    end = max(total - used, 0.0)
    left = [min(end + sum(spent), total)]
    for value in spent:
        left.append(max(left[-1] - value, 0.0))
    line = _points(left, total)
    title = escape(f"{days[0]} .. {days[-1]}: {sum(spent):,.0f} {unit} used in these days; "
                   f"{used:,.0f} of {total:,.0f} used, {end:,.0f} left") if days else escape(f"{total:,.0f} {unit}")
    return Markup(
        f'<svg class="chart burn" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'data-left="{end:.2f}" data-total="{total:.2f}"><title>{title}</title>'
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" class="axis"/>'
        f'<polyline points="{line}" class="series"/></svg>'
    )


def daily_bars(days: Sequence[date], values: Sequence[float], unit: str) -> Markup:
    """A bar a day (e.g. fires per day)."""
    top = max(values, default=0) or 1
    n = max(len(values), 1)
    width = (WIDTH - 2 * PAD) / n
    bars = []
    for i, (day, value) in enumerate(zip(days, values)):
        h = (HEIGHT - 2 * PAD) * value / top
        bars.append(f'<rect x="{PAD + i * width:.1f}" y="{HEIGHT - PAD - h:.1f}" width="{max(width - 1, 0.5):.1f}" '
                    f'height="{h:.1f}"><title>{escape(f"{day}: {value:,.0f} {unit}")}</title></rect>')
    return Markup(f'<svg class="chart bars" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
                  f'role="img">{"".join(bars)}</svg>')
