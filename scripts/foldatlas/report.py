"""A self-contained HTML report of an atlas, to look at rather than read.

Plots are PNG images (matplotlib, Agg backend) embedded as data URIs, so the page opens
offline from any folder: the counts funnel, the pTM x pLDDT grid of the ESM Atlas's bins,
the AlphaFold DB pLDDT bands, confidence distributions, the per-residue pLDDT of the best
and worst structures, and failures. A table of the best structures links each one's PDB
(embedded as a download) and names its shard and member; an interactive 3D view of the
best few uses 3Dmol.js (BSD-3-Clause, version 2.5.5 from the npm registry, vendored in
``foldatlas/vendor`` and inlined into the page: no network). Software versions, the
resolved configuration and a link to ``summary.json`` close the page.

The report reads summaries only: what each checksum bucket of the atlas shows
(:func:`bucket_figures`, from the bucket's own files: counts per bin and pLDDT band,
exact pLDDT and pTM histograms, a sample for the scatter plots in proportion to the
bucket's structures, at most 50,000 in all, failures, the bucket's best, worst and
lowest-confidence rows) is computed once per bucket (in the workflow by the
``check_bucket`` job, which reads those files anyway) and added up here; only the few
structures and per-residue traces shown are read from the atlas, by their bucket's
files. So the report's cost does not grow with the atlas but by the number of buckets.
All text from FASTA headers is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__, duck
from .archive import read_member
from .atlas import ATLAS_BANDS, ATLAS_BINS
from .atomic import atomic_path
from .buckets import WHOLE
from .layout import HIGHCONF, AtlasOutputs
from .status import Status

__all__ = ["FIGURES_VERSION", "PLDDT_BANDS", "VIEWER_JS", "bucket_figures", "write_report"]

log = logging.getLogger("foldatlas.report")

_SCATTER_SAMPLE = 50_000
_TEST_MODELS = ("tiny-random", "full-random")
#: AlphaFold DB's pLDDT bands (0-100 scale): name, lower edge, colour of its viewer.
PLDDT_BANDS = (("very low (< 50)", 0, "#FF7D45"), ("low (50-70)", 50, "#FFDB13"), ("confident (70-90)", 70, "#65CBF3"), ("very high (> 90)", 90, "#0053D6"))
#: 3Dmol.js 2.5.5 (npm package ``3dmol``), minified; sha256 in tests/test_report.py.
VIEWER_JS = Path(__file__).with_name("vendor") / "3Dmol-min.js"
_BEST, _VIEWS, _TRACES = 10, 3, 5
#: Bins of the pLDDT and pTM histograms over 0..1 (the last includes 1).
_HIST_BINS = 50
#: Rows of the lowest-confidence and failed records table.
_LOWEST = 25
#: The layout of :func:`bucket_figures`' dict: the report refuses figures of another.
FIGURES_VERSION = 1


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
        *((("representatives (ingest.redundancy)", c["unique_sequences"] - c["represented"]), ("represented, not folded", c["represented"])) if c.get("represented") else ()),
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


def _bin_grid(plt: Any, counts: dict[str, int]) -> str:
    """Counts per ESM Atlas bin as a 7 x 7 heatmap (pTM rows, pLDDT columns)."""
    import numpy as np

    names = [n for _, n in ATLAS_BANDS]
    grid = np.array([[counts.get(f"tm_{t}_plddt_{p}", 0) for p in names] for t in names])
    fig, ax = plt.subplots(figsize=(6.5, 5))
    im = ax.imshow(grid, origin="lower", cmap="viridis")
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, f"{v:,}", ha="center", va="center", color="white" if v < grid.max() / 2 else "black", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=45)
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="pLDDT band", ylabel="pTM band", title="Structures per ESM Atlas bin (tm_<pTM>_plddt_<pLDDT>)")
    fig.colorbar(im, ax=ax, label="unique structures")
    return _png(fig)


def _bands(plt: Any, per_structure: list[int], per_residue: list[int]) -> str:
    """Structures (by mean pLDDT) and residues in AlphaFold DB's pLDDT bands."""
    fig, ax = plt.subplots(figsize=(7.5, 2.6))
    for row, (label, values) in enumerate((("residues", per_residue), ("structures", per_structure))):
        total, left = max(sum(values), 1), 0.0
        for (name, _, colour), v in zip(PLDDT_BANDS, values):
            share = v / total
            ax.barh(row, share, left=left, color=colour, label=name if row == 0 else None)
            if share > 0.06:
                ax.text(left + share / 2, row, f"{v:,}", ha="center", va="center", fontsize=8)
            left += share
    ax.set_yticks([0, 1], ["residues", "structures"])
    ax.set(xlim=(0, 1), xlabel="share", title="AlphaFold DB pLDDT bands")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=4, fontsize=8)
    return _png(fig)


def _histograms(plt: Any, hist: dict[str, list[int]], th: dict) -> str:
    edges = [i / _HIST_BINS for i in range(_HIST_BINS + 1)]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    for ax, counts, name, t in ((axes[0], hist["plddt"], "mean pLDDT", th["min_plddt"]), (axes[1], hist["ptm"], "pTM", th["min_ptm"])):
        ax.stairs(counts, edges, fill=True, color="#55a868")
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


def _traces(plt: Any, top: list, bottom: list) -> str:
    """Per-residue pLDDT of the best and worst structures, over the AlphaFold DB bands."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
    for ax, rows, title in ((axes[0], top, "best (pTM x pLDDT)"), (axes[1], bottom, "worst (pTM x pLDDT)")):
        for (name, lo, colour), hi in zip(PLDDT_BANDS, [50, 70, 90, 100]):
            ax.axhspan(lo, hi, color=colour, alpha=0.15, lw=0)
        for label, values in rows:
            ax.plot(range(1, len(values) + 1), [100 * v for v in values], lw=1, label=label)
        ax.set(title=f"Per-residue pLDDT, {title}", xlabel="residue", ylim=(0, 100))
        if rows:
            ax.legend(fontsize=7)
    axes[0].set_ylabel("pLDDT (0-100)")
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


def _uniq(meta: str) -> str:
    return f"(SELECT * FROM {meta} WHERE status = '{Status.FOLDED}' AND NOT is_duplicate)"


def _band_case(col: str) -> str:
    edges = [lo / 100 for _, lo, _ in PLDDT_BANDS[1:]]
    return "CASE " + " ".join(f"WHEN {col} < {e} THEN {k}" for k, e in enumerate(edges)) + f" ELSE {len(edges)} END"


def _ranked(con: Any, uniq: str, index: str, n: int, *, best: bool) -> list[dict]:
    """The ``n`` best (or worst) unique structures of a bucket by pTM x pLDDT (``score``;
    ties: the smaller checksum), with where they are archived (high-confidence first)."""
    order = f"score {'DESC' if best else 'ASC'}, checksum"
    top = f"""(SELECT id, checksum, length, plddt, ptm, ptm * plddt AS score, bin, high_confidence FROM {uniq}
               WHERE isfinite(ptm * plddt) ORDER BY {order} LIMIT {int(n)})"""
    cur = con.execute(
        f"""SELECT m.*, i.archive AS shard, i.member AS pdb_member, i.data_offset, i.data_length
            FROM {top} m LEFT JOIN (
                SELECT * FROM {index} WHERE checksum IN (SELECT checksum FROM {top})
                QUALIFY row_number() OVER (PARTITION BY checksum ORDER BY collection = '{HIGHCONF}' DESC) = 1) i USING (checksum)
            ORDER BY {order}"""
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def bucket_figures(bucket: str, outputs: AtlasOutputs) -> dict:
    """What the report shows of one checksum bucket of a finished atlas, from the bucket's
    own files (its metadata, pLDDT and index files) and ``summary.json`` (the atlas's
    folded structures, which size the bucket's share of the scatter sample).

    Returns a JSON-ready dict: ``bins`` (unique folded structures per ESM Atlas bin),
    ``bands`` (``structures`` by mean pLDDT and ``residues`` per AlphaFold DB band),
    ``hist`` (``plddt`` and ``ptm`` counts in 50 bins over 0..1), ``sample`` ([pLDDT, pTM,
    length] of a repeatable random sample), ``failures`` (records per status other than
    folded and represented), ``best`` and ``worst`` (the top structures by pTM x pLDDT
    with their archive entries) and ``lowest`` (the lowest-confidence and failed records).
    """
    folded = json.loads(Path(outputs.summary).read_text())["counts"]["folded"]
    con = duck.connect()
    meta = f"read_parquet({duck.sql_path(outputs.part(outputs.metadata, bucket))})"
    uniq, index = _uniq(meta), f"read_parquet({duck.sql_path(outputs.part(outputs.index, bucket))})"
    rows = lambda sql: con.execute(sql).fetchall()  # noqa: E731
    n = rows(f"SELECT count(*) FROM {uniq}")[0][0]
    k = math.ceil(_SCATTER_SAMPLE * n / folded) if folded else 0
    # a missing or NaN confidence is in no band (the CASE would put it in the last)
    per_structure = dict(rows(f"SELECT {_band_case('plddt')} b, count(*) FROM {uniq} WHERE isfinite(plddt) GROUP BY b"))
    residues = f"(SELECT unnest(residue_plddt) v FROM read_parquet({duck.sql_path(outputs.part(outputs.plddt, bucket))}))"
    per_residue = dict(rows(f"SELECT {_band_case('v')} b, count(*) FROM {residues} WHERE isfinite(v) GROUP BY b"))
    hist = {}
    for col in ("plddt", "ptm"):
        # in double precision (float32 0.7 * 50 is 35.0 in float32), values in 0..1 only
        got = dict(rows(f"SELECT least(floor({col}::DOUBLE * {_HIST_BINS}), {_HIST_BINS - 1})::INTEGER b, count(*) FROM {uniq} WHERE isfinite({col}) AND {col} BETWEEN 0 AND 1 GROUP BY b"))
        hist[col] = [got.get(i, 0) for i in range(_HIST_BINS)]
    # a NaN confidence (JSON has none) is shown as missing, and sorts with the missing
    finite = lambda col: f"CASE WHEN isfinite({col}) THEN {col} END AS {col}"  # noqa: E731
    lowest = rows(
        f"""SELECT id, source, record_index, status, reason, length, {finite('plddt')}, {finite('ptm')}, source_index FROM {meta}
            WHERE status <> '{Status.REPRESENTED}' ORDER BY (status = '{Status.FOLDED}'), plddt NULLS FIRST, source_index, record_index LIMIT {_LOWEST}"""
    )
    figures = {
        "version": FIGURES_VERSION,
        "bucket": bucket,
        "bins": {b: c for b, c in rows(f"SELECT bin, count(*) FROM {uniq} GROUP BY bin") if b is not None},
        "bands": {"structures": [per_structure.get(i, 0) for i in range(len(PLDDT_BANDS))], "residues": [per_residue.get(i, 0) for i in range(len(PLDDT_BANDS))]},
        "hist": hist,
        "sample": [list(r) for r in rows(f"SELECT plddt, ptm, length FROM (SELECT * FROM {uniq} WHERE isfinite(plddt) AND isfinite(ptm)) USING SAMPLE reservoir({k} ROWS) REPEATABLE (1)")] if k else [],
        "failures": dict(rows(f"SELECT status, count(*) FROM {meta} WHERE status NOT IN ('{Status.FOLDED}', '{Status.REPRESENTED}') GROUP BY status")),
        "best": _ranked(con, uniq, index, _BEST, best=True),
        "worst": _ranked(con, uniq, index, _TRACES, best=False),
        "lowest": [list(r) for r in lowest],
    }  # fmt: skip
    con.close()
    return figures


def _added(dicts: Sequence[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            total[k] = total.get(k, 0) + v
    return total


def _summed(lists: Sequence[list[int]], n: int) -> list[int]:
    return [sum(v) for v in zip(*lists)] if lists else [0] * n


def _merged(figures: Sequence[dict]) -> dict:
    """The buckets' figures added up: counts summed, samples joined, the top rows of all
    (in the order each bucket's query used, so one bucket's figures come out unchanged)."""
    lowest_key = lambda r: (r[3] == Status.FOLDED, r[6] is not None, r[6] or 0.0, r[8], r[2])  # noqa: E731
    return {
        "bins": _added([f["bins"] for f in figures]),
        "bands": {k: _summed([f["bands"][k] for f in figures], len(PLDDT_BANDS)) for k in ("structures", "residues")},
        "hist": {k: _summed([f["hist"][k] for f in figures], _HIST_BINS) for k in ("plddt", "ptm")},
        "sample": [r for f in figures for r in f["sample"]][:_SCATTER_SAMPLE],  # each bucket's share is rounded up
        "failures": sorted(_added([f["failures"] for f in figures]).items(), key=lambda kv: (-kv[1], kv[0])),
        "best": sorted((r for f in figures for r in f["best"]), key=lambda r: (-r["score"], r["checksum"]))[:_BEST],
        "worst": sorted((r for f in figures for r in f["worst"]), key=lambda r: (r["score"], r["checksum"]))[:_TRACES],
        "lowest": [r[:8] for r in sorted((r for f in figures for r in f["lowest"]), key=lowest_key)[:_LOWEST]],
    }  # fmt: skip


def _residue_plddt(outputs: AtlasOutputs, buckets: Sequence[str], checksums: list[str]) -> dict[str, list[float]]:
    """Per-residue pLDDT of a few structures, read from their buckets' pLDDT files."""
    checksums = [c for c in checksums if c and all(ch in "0123456789abcdef" for ch in c)]  # MD5 hex: safe to inline
    if not checksums:
        return {}
    digits = 0 if list(buckets) == [WHOLE] else len(buckets[0])
    files = sorted({outputs.part(outputs.plddt, c[:digits] if digits else WHOLE) for c in checksums})
    wanted = ", ".join(f"'{c}'" for c in checksums)
    con = duck.connect()
    try:
        return dict(con.execute(f"SELECT checksum, residue_plddt FROM read_parquet({duck.sql_paths(files)}) WHERE checksum IN ({wanted})").fetchall())
    finally:
        con.close()


def _pdb(atlas_root: Path, row: dict) -> str | None:
    if not row.get("shard"):
        return None
    return read_member(atlas_root / row["shard"], row["data_offset"], row["data_length"], expect=row["pdb_member"]).decode("ascii")


def _figures(m: dict, traces: dict[str, list[float]], s: dict) -> list[tuple[str, str, str]]:
    """(id, caption, data URI) of every plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    th = s["thresholds"]
    plddt, ptm, length = ([v[k] for v in m["sample"]] for k in range(3))
    label = lambda r: f"{r['checksum'][:8]} (pTM {r['ptm']:.2f})"  # noqa: E731
    top = [(label(r), traces[r["checksum"]]) for r in m["best"][:_TRACES] if r["checksum"] in traces]
    bottom = [(label(r), traces[r["checksum"]]) for r in m["worst"] if r["checksum"] in traces]
    return [
        ("funnel", "Counts funnel", _funnel(plt, s["counts"])),
        ("bins", "pTM x pLDDT: unique structures per ESM Atlas bin", _bin_grid(plt, m["bins"])),
        ("bands", "AlphaFold DB pLDDT bands: structures by mean pLDDT, and all residues", _bands(plt, m["bands"]["structures"], m["bands"]["residues"])),
        ("traces", "Per-residue pLDDT of the best and worst structures", _traces(plt, top, bottom)),
        ("histograms", "pLDDT and pTM distributions (unique folded sequences)", _histograms(plt, m["hist"], th)),
        ("scatter", "Confidence against confidence and length", _scatter(plt, plddt, ptm, length, th)),
        ("failures", "Failures by reason", _failures(plt, m["failures"])),
    ]


def _cell(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape("" if v is None else str(v))[:200]


_STYLE = """body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { border: 1px solid #ccc; padding: 2px 6px; }
figure { margin: 1.5em 0; } img { max-width: 100%; } .warn { background: #fee; padding: 0.5em; border: 1px solid #c44e52; }
.views { display: flex; gap: 1em; flex-wrap: wrap; } .view { width: 330px; height: 300px; position: relative; border: 1px solid #ccc; }
pre { background: #f6f6f6; padding: 0.5em; overflow: auto; max-height: 30em; font-size: 0.85em; } tr.this { font-weight: bold; }"""

#: 3Dmol.js colouring by AlphaFold DB band (B-factors are pLDDT 0-100).
_VIEW_SCRIPT = """
(function () {
  var bands = [[90, "#0053D6"], [70, "#65CBF3"], [50, "#FFDB13"], [0, "#FF7D45"]];
  function colour(atom) { for (var i = 0; i < bands.length; i++) { if (atom.b > bands[i][0]) return bands[i][1]; } return bands[3][1]; }
  var models = JSON.parse(document.getElementById("structures").textContent);
  models.forEach(function (m, i) {
    var el = document.getElementById("view" + i);
    var viewer = $3Dmol.createViewer(el, {backgroundColor: "white"});
    viewer.addModel(m.pdb, "pdb");
    viewer.setStyle({}, {cartoon: {colorfunc: colour}});
    viewer.zoomTo();
    viewer.render();
    el.setAttribute("data-rendered", "yes");
  });
})();
"""


def _best_table(best: list[dict], pdbs: dict[str, str]) -> str:
    head = "<tr><th>id</th><th>length</th><th>pLDDT</th><th>pTM</th><th>bin</th><th>file</th><th>shard / member</th></tr>"
    rows = []
    for r in best:
        pdb = pdbs.get(r["checksum"])
        link = ""
        if pdb is not None:
            uri = "data:chemical/x-pdb;base64," + base64.b64encode(pdb.encode("ascii")).decode()
            link = f'<a download="{html.escape(r["checksum"])}.pdb" href="{uri}">PDB</a>'
        # the archive's folder too: a bucket's shard, or without copies the fold job's chunk
        where = f"{_cell('/'.join(Path(r['shard']).parts[-2:]))}<br>{_cell(r.get('pdb_member'))}" if r.get("shard") else "not archived"
        cells = (r["id"], r["length"], r["plddt"], r["ptm"], r["bin"])
        rows.append("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in cells) + f"<td>{link}</td><td>{where}</td></tr>")
    return f'<table id="best">{head}\n' + "\n".join(rows) + "</table>"


def _viewer(best: list[dict], pdbs: dict[str, str]) -> str:
    """The 3D views of the best archived structures: 3Dmol.js inlined, structures as JSON."""
    shown = [r for r in best if r["checksum"] in pdbs][:_VIEWS]
    if not shown or not VIEWER_JS.exists():
        return "<p>No archived structure to show in 3D.</p>" if not shown else "<p>3D view unavailable: the 3Dmol.js file is missing from this installation.</p>"
    data = json.dumps([{"checksum": r["checksum"], "pdb": pdbs[r["checksum"]]} for r in shown]).replace("</", "<\\/")
    divs = "".join(f'<figure><div class="view" id="view{i}"></div><figcaption>{_cell(r["id"])} ({r["checksum"][:8]}, pTM {r["ptm"]:.2f}, pLDDT {r["plddt"]:.2f})</figcaption></figure>' for i, r in enumerate(shown))
    js = VIEWER_JS.read_text(encoding="utf-8")
    return (f'<p>Coloured by pLDDT as in AlphaFold DB: dark blue &gt; 90, light blue 70-90, yellow 50-70, orange &lt; 50. Drag to rotate, scroll to zoom.</p>'
            f'<div class="views">{divs}</div>\n<script type="application/json" id="structures">{data}</script>\n<script>{js}</script>\n<script>{_VIEW_SCRIPT}</script>')  # fmt: skip



_RELEASE_COLUMNS = ("name", "created", "inputs", "records", "unique_sequences", "new_sequences", "already_folded", "represented", "est_gpu_hours_folded", "est_gpu_hours_saved")


def _releases(s: dict) -> str:
    """The store's releases (``summary.json`` ``releases``): what each folded and saved."""
    releases = s.get("releases") or []
    if not releases:
        return "<p>No release of the store recorded in summary.json.</p>"
    head = "<tr>" + "".join(f"<th>{html.escape(c.replace('_', ' '))}</th>" for c in _RELEASE_COLUMNS) + "</tr>"
    rows = []
    for r in releases:
        cells = [", ".join(r["inputs"]) if c == "inputs" else r.get(c) for c in _RELEASE_COLUMNS]
        mark = ' class="this"' if r["name"] == s.get("release") else ""
        rows.append(f"<tr{mark}>" + "".join(f"<td>{_cell(v)}</td>" for v in cells) + "</tr>")
    return (f'<p>This atlas is made from release <b>{_cell(s.get("release"))}</b> of the store. Already folded: sequences an earlier '
            f'release folded; GPU-hours are the chunk cost model\'s estimates.</p><table id="releases">{head}\n' + "\n".join(rows) + "</table>")  # fmt: skip


def _redundancy(s: dict) -> str:
    """What ``ingest.redundancy`` saved: members resolved instead of folded, and the GPU-hours."""
    c = s["counts"]
    if not c.get("represented"):
        return f'<p id="redundancy">Redundancy reduction: {html.escape(str(s.get("redundancy", "none")))}; every unique sequence has its own prediction.</p>'
    saved = sum(r.get("est_gpu_hours_saved_by_redundancy", 0) for r in s.get("releases") or [] if r["name"] == s.get("release"))
    return (f'<p id="redundancy">Redundancy reduction ({html.escape(str(s.get("redundancy")))}): {c["represented"]:,} of {c["unique_sequences"]:,} unique sequences '
            f'({c["represented"] / c["unique_sequences"]:.1%}; {c["represented_records"]:,} records) are represented by the structure of '
            f'{c["representatives"]:,} cluster representatives instead of being folded; {c["represented_by_high_confidence"]:,} of them by a high-confidence one, '
            f'{c.get("represented_without_structure", 0):,} by a representative whose fold failed (they have no structure; the next release resolves them again). '
            f'This release saved an estimated {saved:,.2f} GPU-hours this way (chunk cost model).</p>')  # fmt: skip


def _provenance(s: dict, summary_link: str, config_text: str) -> str:
    versions = "\n".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in s["versions"].items())
    return f"""<h2 id="provenance">Software and configuration</h2>
<p>Run summary: <a id="summary-link" href="{html.escape(summary_link)}">summary.json</a> (counts at every step, thresholds,
models, timings); the resolved configuration is <code>config.yaml</code> beside it.</p>
<table id="versions"><tr><th>software</th><th>version</th></tr>{versions}</table>
<details><summary>Configuration (config.yaml)</summary><pre id="config">{html.escape(config_text)}</pre></details>
<details><summary>summary.json</summary><pre id="summary">{html.escape(json.dumps(s, indent=2))}</pre></details>"""


def _page(s: dict, figures: list[tuple[str, str, str]], lowest: list, best_html: str, viewer_html: str, provenance_html: str) -> str:
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
<h2>Releases</h2>
{_releases(s)}
{_redundancy(s)}
{imgs}
<h2>Best structures (pTM x pLDDT)</h2>
{best_html}
<h2>In 3D</h2>
{viewer_html}
<h2>Lowest-confidence and failed records</h2>
<table id="worst"><tr><th>id</th><th>source</th><th>record</th><th>status</th><th>reason</th><th>length</th><th>pLDDT</th><th>pTM</th></tr>
{rows}</table>
{provenance_html}
</body></html>
"""


def write_report(
    *,
    metadata: str | Path,
    summary: str | Path,
    out: str | Path,
    config: str | Path | None = None,
    figures: Sequence[dict] | None = None,
) -> Path:
    """Write the report of the finished atlas beside ``metadata`` (its folder) to ``out``
    (one HTML file). ``figures``: :func:`bucket_figures` of every bucket ``summary.json``
    names (made here when not given); ``config`` defaults to ``config.yaml`` in the atlas
    folder.

    Raises
    ------
    ValueError
        ``figures`` are not those of the atlas's buckets.
    """
    atlas_root = Path(metadata).parent
    outputs = AtlasOutputs(atlas_root, Path(metadata), atlas_root / "embeddings.parquet", atlas_root / "plddt.parquet", atlas_root / "structures", Path(summary))
    config = Path(config or atlas_root / "config.yaml")
    s = json.loads(Path(summary).read_text())
    buckets = s.get("buckets") or [WHOLE]
    if figures is None:
        figures = [bucket_figures(b, outputs) for b in buckets]
    if any(f.get("version") != FIGURES_VERSION for f in figures):
        raise ValueError(f"expected the figures of foldatlas {__version__} (layout {FIGURES_VERSION}) in every bucket's accounting, found others: "
                         "made by another version; run the check_bucket jobs again (snakemake -R check_bucket)")  # fmt: skip
    if sorted(f["bucket"] for f in figures) != sorted(buckets):
        raise ValueError(f"expected the figures of the atlas's buckets ({len(buckets)}), found those of {sorted(f['bucket'] for f in figures)[:8]}")
    m = _merged(figures)
    traces = _residue_plddt(outputs, buckets, [r["checksum"] for r in m["best"][:_TRACES] + m["worst"]])
    pdbs = {r["checksum"]: p for r in m["best"] if (p := _pdb(atlas_root, r)) is not None}
    plots = _figures(m, traces, s)
    link = os.path.relpath(Path(summary).resolve(), Path(out).resolve().parent)
    config_text = config.read_text(encoding="utf-8") if config.exists() else "(no config.yaml beside the atlas)"
    page = _page(s, plots, m["lowest"], _best_table(m["best"], pdbs), _viewer(m["best"], pdbs), _provenance(s, link, config_text))
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    log.info("report written to %s (%d buckets)", out, len(buckets))
    return Path(out)
