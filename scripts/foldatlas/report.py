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

from .atomic import atomic_path

__all__ = ["write_report"]

log = logging.getLogger("foldatlas.report")

_SCATTER_SAMPLE = 50_000


def _png(fig) -> str:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _p(path: str | Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def write_report(*, metadata: str | Path, summary: str | Path, out: str | Path, worst: int = 25) -> Path:
    """Write the report to ``out`` (one HTML file)."""
    import duckdb
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = json.loads(Path(summary).read_text())
    c = s["counts"]
    th = s["thresholds"]
    con = duckdb.connect()
    meta = _p(metadata)
    uniq = f"(SELECT * FROM read_parquet({meta}) WHERE status = 'folded' AND NOT is_duplicate)"
    figures: list[tuple[str, str, str]] = []

    # funnel
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
    figures.append(("funnel", "Counts funnel", _png(fig)))

    vals = con.execute(f"SELECT plddt, ptm, length FROM {uniq} USING SAMPLE {_SCATTER_SAMPLE} ROWS").fetchall()
    plddt = [v[0] for v in vals]
    ptm = [v[1] for v in vals]
    length = [v[2] for v in vals]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    for ax, data, name, t in ((axes[0], plddt, "mean pLDDT", th["min_plddt"]), (axes[1], ptm, "pTM", th["min_ptm"])):
        ax.hist(data, bins=[i / 50 for i in range(51)], color="#55a868")
        ax.axvline(t, color="#c44e52", ls="--", label=f"threshold {t}")
        ax.set_xlabel(f"{name} (0-1)")
        ax.set_ylabel("sequences")
        ax.legend()
    figures.append(("histograms", "pLDDT and pTM distributions (unique folded sequences)", _png(fig)))

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    many = len(vals) > 2000
    if many:
        axes[0].hexbin(plddt, ptm, gridsize=40, extent=(0, 1, 0, 1), mincnt=1, cmap="viridis")
        axes[1].hexbin(length, plddt, gridsize=40, mincnt=1, cmap="viridis")
    else:
        axes[0].scatter(plddt, ptm, s=8, alpha=0.7)
        axes[1].scatter(length, plddt, s=8, alpha=0.7)
    axes[0].axvline(th["min_plddt"], color="#c44e52", ls="--")
    axes[0].axhline(th["min_ptm"], color="#c44e52", ls="--")
    axes[0].set(xlabel="mean pLDDT", ylabel="pTM", xlim=(0, 1), ylim=(0, 1), title="pTM against pLDDT")
    axes[1].set(xlabel="length (residues)", ylabel="mean pLDDT", ylim=(0, 1), title="pLDDT against length")
    figures.append(("scatter", "Confidence against confidence and length", _png(fig)))

    fails = con.execute(
        f"SELECT status, count(*) FROM read_parquet({meta}) WHERE status <> 'folded' GROUP BY status ORDER BY 2 DESC"
    ).fetchall()
    fig, ax = plt.subplots(figsize=(6.5, 2.6))
    if fails:
        ax.barh([f[0] for f in fails][::-1], [f[1] for f in fails][::-1], color="#c44e52")
    else:
        ax.text(0.5, 0.5, "no failures", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("records")
    ax.set_title("Records not folded, by reason")
    figures.append(("failures", "Failures by reason", _png(fig)))

    lowest = con.execute(
        f"""SELECT id, source, record_index, status, reason, length, plddt, ptm FROM read_parquet({meta})
            ORDER BY (status = 'folded'), plddt NULLS FIRST LIMIT {int(worst)}"""
    ).fetchall()
    con.close()

    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.3f}"
        return html.escape("" if v is None else str(v))[:200]

    rows = "\n".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in lowest)
    counts = "\n".join(f"<tr><td>{html.escape(k)}</td><td>{v:,}</td></tr>" for k, v in c.items())
    imgs = "\n".join(f'<figure id="{k}"><img alt="{html.escape(t)}" src="{d}"><figcaption>{html.escape(t)}</figcaption></figure>' for k, t, d in figures)
    model = ", ".join(s["model"]["ids"]) or "none"
    warn = ""
    if any(m.startswith(("tiny-random", "full-random")) for m in s["model"]["ids"]):
        warn = '<p class="warn">These structures come from a randomly initialised test model: they are not meaningful.</p>'
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>foldatlas report</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9em; }} td, th {{ border: 1px solid #ccc; padding: 2px 6px; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }} .warn {{ background: #fee; padding: 0.5em; border: 1px solid #c44e52; }}
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
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    log.info("report written to %s", out)
    return Path(out)
