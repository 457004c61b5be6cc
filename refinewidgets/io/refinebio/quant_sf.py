"""Salmon ``quant.sf`` files, as refine.bio ships them in RNA-seq quantpendia.

A quantpendium (or a download made with ``quant_sf_only``) holds no matrix: one
``<KEY>/<accession>_quant.sf`` per sample, Salmon's transcript-level table with the columns
``Name, Length, EffectiveLength, TPM, NumReads``. :func:`read_quant_group` reads the files of
one group into transcript-level arrays, aligned by transcript name (files list transcripts in
any order). :func:`summarize_to_genes` turns them into gene-level values the way refine.bio's
RNA-seq pipeline does (tximport's ``lengthScaledTPM``), given a transcript-to-gene table.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ...errors import DatasetSpecError, SourceFormatError
from ..containers.stores import Store

__all__ = ["QUANT_COLUMNS", "QuantGroup", "read_quant_group", "read_tx2gene", "summarize_to_genes"]

#: The columns of Salmon's quant.sf, in its order.
QUANT_COLUMNS = ("Name", "Length", "EffectiveLength", "TPM", "NumReads")
_VERSION = r"\.\d+$"


def read_quant_sf(data: bytes, where: str) -> pd.DataFrame:
    """One quant.sf file as a frame indexed by transcript name (numeric columns as float64)."""
    try:
        frame = pd.read_csv(io.BytesIO(data), sep="\t", dtype={"Name": str}, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SourceFormatError(f"{where}: not a readable quant.sf table ({exc}).") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in QUANT_COLUMNS if c not in frame.columns]
    if missing:
        raise SourceFormatError(
            f"{where}: the quant.sf file has no column {', '.join(map(repr, missing))}; Salmon's "
            f"quant.sf has {', '.join(QUANT_COLUMNS)} (found: {', '.join(frame.columns[:8])})."
        )
    names = frame["Name"].astype(str).str.strip()
    if names.duplicated().any():
        raise SourceFormatError(
            f"{where}: the transcript {names[names.duplicated()].iloc[0]!r} is listed twice."
        )
    out = pd.DataFrame(index=pd.Index(names.to_numpy(), dtype=object, name="Name"))
    for col in QUANT_COLUMNS[1:]:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() & frame[col].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise SourceFormatError(
                f"{where}: non-numeric {col} {frame[col].iloc[i]!r} for transcript "
                f"{names.iloc[i]!r} (line {i + 2})."
            )
        out[col] = values.to_numpy(dtype=np.float64)
    return out


@dataclass
class QuantGroup:
    """The quant.sf files of one group, aligned by transcript.

    Attributes
    ----------
    samples
        Sample accessions (rows of the arrays).
    transcripts
        Transcript names (columns), in the first file's order; a transcript some file lacks has
        NaN there.
    length
        Each transcript's length (from the first file listing it).
    num_reads, tpm, effective_length
        samples x transcripts arrays.
    """

    samples: list[str]
    transcripts: pd.Index
    length: np.ndarray
    num_reads: np.ndarray
    tpm: np.ndarray
    effective_length: np.ndarray


def read_quant_group(store: Store, members: Mapping[str, str]) -> QuantGroup:
    """Read ``accession -> member`` quant.sf files, each aligned by transcript name."""
    tables = {
        acc: read_quant_sf(store.read_bytes(m), f"{store.label}: {m}") for acc, m in members.items()
    }
    transcripts = pd.Index([], dtype=object)
    for t in tables.values():
        transcripts = t.index if not len(transcripts) else transcripts.union(t.index, sort=False)
    transcripts = pd.Index(transcripts, dtype=object, name=None)
    shape = (len(tables), len(transcripts))
    arrays = {c: np.full(shape, np.nan) for c in QUANT_COLUMNS[1:]}
    for i, table in enumerate(tables.values()):
        pos = transcripts.get_indexer(table.index)
        for col, array in arrays.items():
            array[i, pos] = table[col].to_numpy()
    length = pd.DataFrame(arrays["Length"]).bfill(axis=0).to_numpy()[0]
    return QuantGroup(
        samples=list(tables),
        transcripts=transcripts,
        length=length,
        num_reads=arrays["NumReads"],
        tpm=arrays["TPM"],
        effective_length=arrays["EffectiveLength"],
    )


def read_tx2gene(table: Any) -> pd.Series:
    """A transcript-to-gene table as ``transcript -> gene``.

    ``table`` is a path to a tab- or comma-separated file of two columns (transcript id, gene
    id; a header row is recognized and skipped), a two-column DataFrame, or a mapping.

    Examples
    --------
    >>> read_tx2gene({"ENST1.1": "ENSG1"}).to_dict()
    {'ENST1.1': 'ENSG1'}
    """
    if isinstance(table, Mapping):
        return pd.Series(dict(table), dtype=object)
    if isinstance(table, pd.DataFrame):
        frame = table
    else:
        path = os.fspath(table)
        try:
            frame = pd.read_csv(path, sep=None, engine="python", header=None, dtype=str)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DatasetSpecError(
                f"Cannot read the transcript-to-gene table {path} ({exc}): expected two "
                "columns, transcript id and gene id."
            ) from None
        first = [str(v).lower() for v in frame.iloc[0, :2]] if len(frame) else []
        if any(w in c for c in first for w in ("transcript", "tx", "gene", "name", "id")):
            frame = frame.iloc[1:]
    if frame.shape[1] < 2 or not len(frame):
        raise DatasetSpecError(
            "A transcript-to-gene table needs two columns (transcript id, gene id) and at least "
            f"one row; got {frame.shape[1]} column(s) and {len(frame)} row(s)."
        )
    tx = frame.iloc[:, 0].astype(str).str.strip()
    genes = frame.iloc[:, 1].astype(str).str.strip()
    return pd.Series(genes.to_numpy(), index=pd.Index(tx.to_numpy(), dtype=object), dtype=object)


def _gene_of(transcripts: pd.Index, tx2gene: pd.Series) -> np.ndarray:
    """Each transcript's gene (``None`` when unmapped); ids with a version match ids without."""
    table = tx2gene[~tx2gene.index.duplicated()]
    genes = table.reindex(transcripts).to_numpy(dtype=object)
    unmapped = pd.isna(genes)
    if unmapped.any():
        bare = table.copy()
        bare.index = bare.index.str.replace(_VERSION, "", regex=True)
        bare = bare[~bare.index.duplicated()]
        stripped = transcripts[unmapped].str.replace(_VERSION, "", regex=True)
        genes[unmapped] = bare.reindex(stripped).to_numpy(dtype=object)
    return genes


def summarize_to_genes(group: QuantGroup, tx2gene: pd.Series) -> tuple[pd.DataFrame, int]:
    """Gene-level ``lengthScaledTPM`` values (genes x samples), as tximport computes them.

    Per gene and sample: abundance = the sum of its transcripts' TPM; length = the
    TPM-weighted mean of their effective lengths (a gene with no abundance in a sample takes the
    geometric mean over the samples where it has one, else the mean effective length of its
    transcripts);
    counts = abundance x the gene's mean length over samples, rescaled so each sample's total
    equals its total NumReads. Returns ``(values, number of transcripts without a gene)``.
    """
    genes = _gene_of(group.transcripts, tx2gene)
    mapped = ~pd.isna(genes)
    if not mapped.any():
        raise DatasetSpecError(
            f"No transcript of the quant.sf files is in the transcript-to-gene table: the files "
            f"have {', '.join(map(str, group.transcripts[:3]))} ...; the table maps "
            f"{', '.join(map(str, tx2gene.index[:3]))} .... Use the table of the same "
            "transcriptome (and organism)."
        )
    codes, gene_ids = pd.factorize(pd.Series(genes[mapped]), sort=True)
    n_genes = len(gene_ids)
    indicator = sp.csr_matrix(
        (np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(n_genes, len(codes))
    )
    tpm = np.nan_to_num(group.tpm[:, mapped]).T  # transcripts x samples
    reads = np.nan_to_num(group.num_reads[:, mapped]).T
    eff = group.effective_length[:, mapped].T
    abundance = indicator @ tpm
    weighted = indicator @ (tpm * np.nan_to_num(eff))
    with np.errstate(invalid="ignore", divide="ignore"):
        length = np.where(abundance > 0, weighted / abundance, np.nan)
        counts_of_gene = np.maximum(indicator.sum(axis=1).A1, 1)
        simple = (indicator @ np.nanmean(eff, axis=1, keepdims=True)).ravel() / counts_of_gene
        fill = np.exp(np.nanmean(np.log(length), axis=1))  # geometric mean over samples
    fill = np.where(np.isnan(fill), simple, fill)
    length = np.where(np.isnan(length), fill[:, None], length)
    new = abundance * length.mean(axis=1, keepdims=True)
    totals = reads.sum(axis=0)
    new_totals = new.sum(axis=0)
    scale = np.divide(totals, new_totals, out=np.zeros_like(totals), where=new_totals > 0)
    values = pd.DataFrame(
        new * scale, index=pd.Index(gene_ids.astype(str), dtype=object), columns=group.samples
    )
    return values, int((~mapped).sum())
