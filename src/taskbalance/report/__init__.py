"""The benchmark report: tables (terminal, Markdown, CSV) and matplotlib plots."""

from taskbalance.report.tables import markdown_table, render_table, write_results_csv
from taskbalance.report.writer import read_summary, write_report

__all__ = ["markdown_table", "read_summary", "render_table", "write_report", "write_results_csv"]
