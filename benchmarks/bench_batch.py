"""Benchmark: ComBat three ways, in time and in agreement with Bioconductor's sva::ComBat.

What is compared
----------------
Parametric ComBat (no reference batch) on two inputs, all ways on the same values:

- **demo**: the demo's two breast-cancer experiments (GSE71102 microarray, SRP091833 RNA-seq)
  aggregated by species and quantile-normalized: 44 samples x 2,655 genes, 2 batches; with and
  without ``refinebio_disease`` as a covariate. The one gene constant within a batch is left
  out (sva leaves such a gene as it is; scanpy divides by its zero variance, and that gene then
  moves its priors, hence every gene, by up to 1.3e-3).
- **synthetic**: seeded normal values, ``--samples`` x ``--genes`` (200 x 20,000 by default),
  4 batches with their own location and scale per gene, and a two-level covariate.

The ways:

- **refinewidgets combat** (``refinewidgets.core.batch.combat``), the reference of the ratios.
- **scanpy pp.combat**: on an AnnData of the same values (``key=`` the batch,
  ``covariates=`` the covariate); "failed" when it raises.
- **R sva::ComBat**: Debian's r-bioc-sva, timed inside R (``system.time`` around the call, so
  R's start and the file reading are not counted).
- **floor**: the per-batch, per-gene mean and variance (one pass over the values): what any
  estimate of batch effects has to compute at least.

Wall time (``time.perf_counter``), best of ``--repeat`` runs (R: one run). "max |diff| to sva"
is the largest absolute difference of the adjusted values from R's.

Usage
-----
``python benchmarks/bench_batch.py`` (about a minute on 2 cores; needs Rscript with sva for
the R column), ``--samples 100 --genes 5000`` for smaller synthetic data. Run from the
repository root with the package importable (installed, or ``PYTHONPATH=.``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import refinewidgets as rw
from refinewidgets.core.batch import batch_design, combat


def _best(repeat: int, fn, *args) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, out


def _scanpy(X, obs, key, covariates):
    import anndata
    import scanpy as sc

    a = anndata.AnnData(X.copy(), obs=obs[[key, *covariates]].copy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.pp.combat(a, key=key, covariates=list(covariates) or None)
    return np.asarray(a.X)


def _r_sva(X, obs, key, covariates, folder: Path):
    if shutil.which("Rscript") is None:
        return None, None
    pd.DataFrame(X.T, columns=obs.index).to_csv(folder / "x.tsv", sep="\t", float_format="%.17g")
    obs[[key, *covariates]].to_csv(folder / "obs.tsv", sep="\t")
    mod = f"model.matrix(~{'+'.join(covariates)}, data=obs)" if covariates else "NULL"
    script = f"""
suppressMessages(library(sva))
x <- as.matrix(read.delim('{folder}/x.tsv', row.names=1, check.names=FALSE))
obs <- read.delim('{folder}/obs.tsv', row.names=1, check.names=FALSE)[colnames(x), , drop=FALSE]
t <- system.time(y <- suppressMessages(ComBat(x, obs[['{key}']], mod={mod})))[['elapsed']]
write.table(format(y, digits=17), '{folder}/y.tsv', sep='\\t', quote=FALSE, col.names=NA)
cat(t)
"""
    done = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True)
    if done.returncode != 0:
        return None, None
    y = pd.read_csv(folder / "y.tsv", sep="\t", index_col=0)
    return float(done.stdout.strip().splitlines()[-1]), y.to_numpy(dtype=float).T


def _floor(X, batches):
    return [(X[batches == b].mean(axis=0), X[batches == b].var(axis=0)) for b in np.unique(batches)]


def _inputs(samples: int, genes: int):
    cat = rw.open_catalog()
    breast = rw.build(
        rw.Dataset({"GSE71102": ["ALL"], "SRP091833": ["ALL"]}, aggregate_by="SPECIES"), cat
    )["HOMO_SAPIENS"]
    X = np.asarray(breast.X, dtype=float)
    keep = np.ones(X.shape[1], dtype=bool)
    for b in np.unique(breast.obs["experiment_accession"]):
        part = X[(breast.obs["experiment_accession"] == b).to_numpy()]
        keep &= part.max(axis=0) > part.min(axis=0)  # sva and scanpy fail on a constant gene
    X = X[:, keep]
    yield "demo", X, breast.obs, "experiment_accession", []
    yield "demo + covariate", X, breast.obs, "experiment_accession", ["refinebio_disease"]
    rng = np.random.default_rng(20261207)
    batches = np.repeat(["b1", "b2", "b3", "b4"], samples // 4)
    cov = np.tile(["x", "y"], samples // 2)
    loc = rng.normal(0, 1, size=(4, genes))
    scale = rng.gamma(4, 0.25, size=(4, genes))
    idx = np.searchsorted(["b1", "b2", "b3", "b4"], batches)
    S = rng.normal(8, 2, size=(1, genes)) + rng.normal(size=(samples, genes)) * scale[idx]
    S += loc[idx] + (cov == "y")[:, None] * rng.normal(0, 0.5, size=(1, genes))
    obs = pd.DataFrame(
        {"batch": batches, "group": cov}, index=[f"S{i:04d}" for i in range(samples)]
    )
    yield "synthetic", S, obs, "batch", ["group"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for name, X, obs, key, covs in _inputs(args.samples, args.genes):
        design = batch_design(obs, key, covs)
        t_ours, ours = _best(args.repeat, combat, X, design)
        try:
            t_sc, theirs_sc = _best(args.repeat, _scanpy, X, obs, key, covs)
            sc_diff = None
        except Exception as exc:  # scanpy's own failure, reported in the table
            t_sc, theirs_sc, sc_diff = None, None, f"failed ({type(exc).__name__})"
        batches = obs[key].astype(str).to_numpy()
        t_floor, _ = _best(args.repeat, _floor, X, batches)
        with tempfile.TemporaryDirectory() as tmp:
            t_r, theirs_r = _r_sva(X, obs, key, covs, Path(tmp))
        rows.append(
            {
                "input": f"{name} ({X.shape[0]} x {X.shape[1]:,})",
                "refinewidgets s": f"{t_ours:.3f}",
                "scanpy s": "-" if t_sc is None else f"{t_sc:.3f} ({t_sc / t_ours:.1f}x)",
                "R sva s": "-" if t_r is None else f"{t_r:.3f} ({t_r / t_ours:.1f}x)",
                "floor s": f"{t_floor:.4f} ({t_floor / t_ours:.2f}x)",
                "ours vs sva": "-" if theirs_r is None else f"{np.abs(ours - theirs_r).max():.1e}",
                "scanpy vs sva": sc_diff
                or ("-" if theirs_r is None else f"{np.abs(theirs_sc - theirs_r).max():.1e}"),
            }
        )
    print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    main()
