"""Reports of analyses and searches: per-layer tables, Pareto fronts, HTML/JSON/CSV.

Reads result records only (cost records, plans, trial records); never recomputes a cost.
"""

from nn2hw.report.html import write_html
from nn2hw.report.layers import LayerRow, layer_rows, write_layers_csv
from nn2hw.report.pareto import ParetoPoint, pareto_front, plot_pareto, write_pareto_csv

__all__ = ["LayerRow", "ParetoPoint", "layer_rows", "pareto_front", "plot_pareto", "write_html", "write_layers_csv",
           "write_pareto_csv"]
