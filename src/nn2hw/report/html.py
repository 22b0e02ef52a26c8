"""A self-contained HTML summary: key figures, the per-layer table and the embedded plot."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nn2hw.report.layers import LayerRow


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def write_html(path: str | Path, title: str, facts: Mapping[str, Any], rows: Sequence[LayerRow],
               plot: str | Path | None = None, notes: Sequence[str] = ()) -> Path:
    """Write the summary page; the plot PNG is embedded so the file stands alone."""
    image = ""
    if plot is not None and Path(plot).is_file():
        data = base64.b64encode(Path(plot).read_bytes()).decode()
        image = f'<img alt="accuracy vs latency" src="data:image/png;base64,{data}">'
    layer_table = _table(["layer", "bottleneck", "technique", "choice", "base ms", "solution ms", "saved ms"],
                         [(r.layer, r.bottleneck, r.technique, r.choice, r.base_ms, r.solution_ms, r.saved_ms)
                          for r in rows])
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }}
th {{ background: #f2f2f2; }}
td:nth-child(n+5) {{ text-align: right; font-variant-numeric: tabular-nums; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{_table(["", "value"], list(facts.items()))}
{image}
<h2>Per layer</h2>
<p>Bottleneck on the base design: O = storing outputs, I = loading inputs, W = loading weights, C = computing.</p>
{layer_table}
{f"<h2>Notes</h2><ul>{notes_html}</ul>" if notes_html else ""}
</body></html>
"""
    path = Path(path)
    path.write_text(page)
    return path
