"""A self-contained HTML report of an atlas: counts funnel, confidence plots, failures.

Plots are PNG images (matplotlib, Agg backend) embedded as data URIs, so the page opens
offline from any folder. Aggregates come from DuckDB over ``metadata.parquet`` (the
scatter plots use a sample of at most 50,000 sequences), so the report's cost does not
grow with the atlas beyond one scan. All text from FASTA headers is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from pathlib import Path
from typing import Any

from . import duck
from .atomic import atomic_path
from .status import Status

__all__ = ["write_report"]

log = logging.getLogger("foldatlas.report")

_SCATTER_SAMPLE = 50_000
_TEST_MODELS = ("tiny-random", "full-random")


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _funnel(plt: Any, c: dict[str, int]) -> str:
    steps = [
        ("records in", c["records_in"]),
        ("valid", c["records_ok"] + c["duplicates"]),
        ("unique", c["unique_sequences"]),
        ("folded", c["folded"]),
        ("high confidence", c["high_confidence"]),
    ]
    fig, ax = plt.subplots(figsize=(6.5, 3))
    ax.barh([n for n, _ in steps][::-1], [v for _, v in steps][::-1], color="#4c72b0")
    for i, (_, v) in enumerate(steps[::-1]):
        ax.text(v, i, f" {v:,}", va="center")
    ax.set_xlabel("count")
    ax.set_title("From input records to high-confidence structures")
    return _png(fig)


def _histograms(plt: Any, plddt: list, ptm: list, th: dict) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    for ax, data, name, t in ((axes[0], plddt, "mean pLDDT", th["min_plddt"]), (axes[1], ptm, "pTM", th["min_ptm"])):
        ax.hist(data, bins=[i / 50 for i in range(51)], color="#55a868")
        ax.axvline(t, color="#c44e52", ls="--", label=f"threshold {t}")
        ax.set_xlabel(f"{name} (0-1)")
        ax.set_ylabel("sequences")
        ax.legend()
    return _png(fig)


def _scatter(plt: Any, plddt: list, ptm: list, length: list, th: dict) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    if len(plddt) > 2000:
        axes[0].hexbin(plddt, ptm, gridsize=40, extent=(0, 1, 0, 1), mincnt=1, cmap="viridis")
        axes[1].hexbin(length, plddt, gridsize=40, mincnt=1, cmap="viridis")
    else:
        axes[0].scatter(plddt, ptm, s=8, alpha=0.7)
        axes[1].scatter(length, plddt, s=8, alpha=0.7)
    axes[0].axvline(th["min_plddt"], color="#c44e52", ls="--")
    axes[0].axhline(th["min_ptm"], color="#c44e52", ls="--")
    axes[0].set(xlabel="mean pLDDT", ylabel="pTM", xlim=(0, 1), ylim=(0, 1), title="pTM against pLDDT")
    axes[1].set(xlabel="length (residues)", ylabel="mean pLDDT", ylim=(0, 1), title="pLDDT against length")
    return _png(fig)


def _failures(plt: Any, fails: list) -> str:
    fig, ax = plt.subplots(figsize=(6.5, 2.6))
    if fails:
        ax.barh([f[0] for f in fails][::-1], [f[1] for f in fails][::-1], color="#c44e52")
    else:
        ax.text(0.5, 0.5, "no failures", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("records")
    ax.set_title("Records not folded, by reason")
    return _png(fig)


def _figures(con: Any, meta: str, s: dict) -> list[tuple[str, str, str]]:
    """(id, caption, data URI) of every plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    th = s["thresholds"]
    uniq = f"(SELECT * FROM {meta} WHERE status = '{Status.FOLDED}' AND NOT is_duplicate)"
    vals = con.execute(f"SELECT plddt, ptm, length FROM {uniq} USING SAMPLE {_SCATTER_SAMPLE} ROWS").fetchall()
    plddt, ptm, length = ([v[k] for v in vals] for k in range(3))
    fails = con.execute(f"SELECT status, count(*) FROM {meta} WHERE status <> '{Status.FOLDED}' GROUP BY status ORDER BY 2 DESC").fetchall()
    return [
        ("funnel", "Counts funnel", _funnel(plt, s["counts"])),
        ("histograms", "pLDDT and pTM distributions (unique folded sequences)", _histograms(plt, plddt, ptm, th)),
        ("scatter", "Confidence against confidence and length", _scatter(plt, plddt, ptm, length, th)),
        ("failures", "Failures by reason", _failures(plt, fails)),
    ]


def _cell(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape("" if v is None else str(v))[:200]


_STYLE = """body { font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { border: 1px solid #ccc; padding: 2px 6px; }
figure { margin: 1.5em 0; } img { max-width: 100%; } .warn { background: #fee; padding: 0.5em; border: 1px solid #c44e52; }"""


def _page(s: dict, figures: list[tuple[str, str, str]], lowest: list) -> str:
    th = s["thresholds"]
    rows = "\n".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in r) + "</tr>" for r in lowest)
    counts = "\n".join(f"<tr><td>{html.escape(k)}</td><td>{v:,}</td></tr>" for k, v in s["counts"].items())
    imgs = "\n".join(f'<figure id="{k}"><img alt="{html.escape(t)}" src="{d}"><figcaption>{html.escape(t)}</figcaption></figure>' for k, t, d in figures)
    model = ", ".join(s["model"]["ids"]) or "none"
    warn = ""
    if any(m.startswith(_TEST_MODELS) for m in s["model"]["ids"]):
        warn = '<p class="warn">These structures come from a randomly initialised test model: they are not meaningful.</p>'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>foldatlas report</title>
<style>
{_STYLE}
</style></head><body>
<h1>foldatlas report</h1>
{warn}
<p>Model: {html.escape(model)}. Filter: pLDDT &gt; {th['min_plddt']} and pTM &gt; {th['min_ptm']}
(strict){', artefacts excluded' if th['exclude_artefacts'] else ''}. foldatlas {html.escape(s['versions']['foldatlas'])}.</p>
<h2>Counts</h2><table id="counts">{counts}</table>
{imgs}
<h2>Lowest-confidence and failed records</h2>
<table id="worst"><tr><th>id</th><th>source</th><th>record</th><th>status</th><th>reason</th><th>length</th><th>pLDDT</th><th>pTM</th></tr>
{rows}</table>
</body></html>
"""


def write_report(*, metadata: str | Path, summary: str | Path, out: str | Path, worst: int = 25) -> Path:
    """Write the report to ``out`` (one HTML file)."""
    s = json.loads(Path(summary).read_text())
    con = duck.connect()
    meta = f"read_parquet({duck.sql_path(metadata)})"
    figures = _figures(con, meta, s)
    lowest = con.execute(
        f"""SELECT id, source, record_index, status, reason, length, plddt, ptm FROM {meta}
            ORDER BY (status = '{Status.FOLDED}'), plddt NULLS FIRST LIMIT {int(worst)}"""
    ).fetchall()
    con.close()
    with atomic_path(out) as tmp:
        tmp.write_text(_page(s, figures, lowest), encoding="utf-8")
    log.info("report written to %s", out)
    return Path(out)
