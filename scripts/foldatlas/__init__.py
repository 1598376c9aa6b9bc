"""foldatlas: an atlas of predicted protein structures from massive FASTA sets.

The library behind the Snakemake workflow. Every rule script under ``scripts/`` is a
thin shim over one function of this package; the package never imports Snakemake.
"""

__version__ = "0.15.0"
