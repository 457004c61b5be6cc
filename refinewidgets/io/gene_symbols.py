"""Gene symbols for refine.bio's Ensembl gene ids: offline for human, fetched once for the rest.

- ``HOMO_SAPIENS``: a table the package ships (``data/gene_symbols/HOMO_SAPIENS.tsv.gz``), made
  by ``scripts/make_gene_symbols.py`` from Bioconductor's ``org.Hs.eg.db`` as Debian packages
  it; its release (the package's version and the Entrez Gene and Ensembl dates it was built
  from) is in the table's header and recorded with every use. An Ensembl id that the release
  maps to several genes with different symbols has them all, joined by ``;``.
- Every other organism: Ensembl's REST service (``POST lookup/id``, at most 1,000 ids a
  request, answering ``{id: {"display_name": ...} or null}``; the release from ``GET
  info/data``; https://rest.ensembl.org/documentation/info/lookup_post), asked only for the ids
  not yet in the cache, ``<cache>/gene-symbols/<ORGANISM>.tsv``; from then on the cache answers
  offline. Ids Ensembl does not know are cached too (with no symbol), so they are not asked
  again. ``offline=True`` never asks: ids missing from the cache are then an error that says
  how to fetch them. The service's address is ``$REFINEWIDGETS_ENSEMBL_URL`` (tests point it at
  :mod:`refinewidgets.testing.fake_ensembl`).

:func:`symbols_for` is the one lookup (bulk results through :func:`add_gene_symbols`, single
cells can use it too); :meth:`GeneSymbols.ids_for` turns names a user typed (ids or symbols)
into ids, warning when a symbol names several ids.
"""

from __future__ import annotations

import functools
import gzip
import io
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..core.cache_dir import default_cache_dir
from ..core.names import check_organism
from ..errors import DatasetSpecError, GeneSelectionWarning
from .containers.atomic import atomic_output

if TYPE_CHECKING:  # pragma: no cover
    from ..core.result import Result

__all__ = [
    "ENSEMBL_ENV",
    "ENSEMBL_REST",
    "GeneSymbols",
    "add_gene_symbols",
    "shipped_organisms",
    "symbols_for",
]

ENSEMBL_REST = "https://rest.ensembl.org/"
ENSEMBL_ENV = "REFINEWIDGETS_ENSEMBL_URL"
#: Ids per ``POST lookup/id`` (Ensembl's limit).
BATCH = 1000
_SHIPPED = {"HOMO_SAPIENS": "HOMO_SAPIENS.tsv.gz"}
_VERSION = re.compile(r"^(ENS[A-Z]*G\d+)\.\d+$")  # a versioned Ensembl gene id


def shipped_organisms() -> list[str]:
    """Organisms whose symbols the package ships (no network ever).

    Examples
    --------
    >>> shipped_organisms()
    ['HOMO_SAPIENS']
    """
    return sorted(_SHIPPED)


@dataclass
class GeneSymbols:
    """Symbols of some gene ids of one organism.

    ``symbols`` is indexed by the ids asked for, in their order (``""``: no symbol known);
    ``release`` names the annotation they come from, ``source`` where it was read.
    """

    organism: str
    symbols: pd.Series
    release: str
    source: str

    @property
    def share(self) -> float:
        """The share of the ids that have a symbol."""
        return float((self.symbols != "").mean()) if len(self.symbols) else 0.0

    def record(self) -> dict[str, Any]:
        """What a result records about these symbols (``uns``, provenance)."""
        return {
            "organism": self.organism,
            "release": self.release,
            "source": self.source,
            "genes": len(self.symbols),
            "with_symbol": int((self.symbols != "").sum()),
        }

    def ids_for(self, names: Iterable[str]) -> list[str]:
        """The ids that ``names`` (ids or symbols, in any mix) stand for, in their order.

        A symbol that names several ids gives all of them, with a
        :class:`~refinewidgets.GeneSelectionWarning` naming them; names that are neither an id
        nor a symbol of these genes are a :class:`~refinewidgets.DatasetSpecError`.

        Examples
        --------
        >>> s = GeneSymbols("X", pd.Series({"G1": "TP53", "G2": "A;B", "G3": ""}), "r", "t")
        >>> s.ids_for(["TP53", "G3", "B"])
        ['G1', 'G3', 'G2']
        """
        by_symbol: dict[str, list[str]] = {}
        for gene_id, text in self.symbols.items():
            for symbol in filter(None, str(text).split(";")):
                by_symbol.setdefault(symbol.upper(), []).append(str(gene_id))
        ids = set(map(str, self.symbols.index))
        out: list[str] = []
        unknown, shared = [], []
        for name in names:
            if name in ids:
                found = [name]
            else:
                found = by_symbol.get(str(name).upper(), [])
                if len(found) > 1:
                    shared.append(f"{name}: {', '.join(found)}")
            if not found:
                unknown.append(str(name))
            out += [g for g in found if g not in out]
        if unknown:
            raise DatasetSpecError(
                f"{len(unknown)} gene(s) are neither an id nor a symbol of these "
                f"{self.organism} genes: {', '.join(unknown[:10])}. Check the spelling "
                f"(symbols from {self.release})."
            )
        if shared:
            warnings.warn(
                "Some symbols name several gene ids, all of them kept: " + "; ".join(shared),
                GeneSelectionWarning,
                stacklevel=2,
            )
        return out


def _read_table(text: str) -> tuple[dict[str, str], list[str]]:
    """``({id: symbol}, releases)`` of a symbol table: ``# release:`` lines, a header, rows."""
    releases = [
        line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("# release:")
    ]
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    frame = pd.read_csv(io.StringIO(body), sep="\t", dtype=str, keep_default_na=False)
    return dict(zip(frame["ensembl_id"], frame["symbol"])), releases


@functools.lru_cache(maxsize=4)
def _shipped(organism: str) -> tuple[dict[str, str], str]:
    path = resources.files("refinewidgets") / "data" / "gene_symbols" / _SHIPPED[organism]
    with path.open("rb") as raw:
        table, releases = _read_table(gzip.decompress(raw.read()).decode("utf-8"))
    return table, releases[0]


def _key(gene_id: str) -> str:
    match = _VERSION.match(gene_id)
    return match.group(1) if match else gene_id


def symbols_for(
    organism: str,
    ids: Sequence[str],
    *,
    cache_dir: str | os.PathLike | None = None,
    offline: bool = False,
    server: str | None = None,
) -> GeneSymbols:
    """The symbols of ``ids`` (Ensembl gene ids) of ``organism`` (``HOMO_SAPIENS``...).

    Human: the shipped table, never the network. Others: the cache in ``cache_dir`` (default
    the download cache), ids missing from it fetched from Ensembl's REST service (``server``,
    default ``$REFINEWIDGETS_ENSEMBL_URL`` or https://rest.ensembl.org/) and cached, unless
    ``offline``. A versioned id (``ENSG00000141510.17``) is looked up without its version.

    Raises
    ------
    SourceFormatError
        ``organism`` is not an organism name (it becomes a file name).
    DatasetSpecError
        ``offline=True`` and some ids are not in the cache.
    RemoteError
        Ensembl cannot be reached or refuses the request.

    Examples
    --------
    >>> s = symbols_for("HOMO_SAPIENS", ["ENSG00000141510", "ENSG00000012048.23", "ENSG0"])
    >>> s.symbols.tolist(), s.release.split(" (")[0]
    (['TP53', 'BRCA1', ''], 'org.Hs.eg.db 3.16.0')
    """
    organism = check_organism(organism, "gene symbols")
    ids = [str(i) for i in ids]
    keys = [_key(i) for i in ids]
    if organism in _SHIPPED:
        table, release = _shipped(organism)
        source = f"table shipped with refinewidgets ({_SHIPPED[organism]})"
    else:
        table, release = _cached(organism, keys, cache_dir, offline, server)
        source = "Ensembl REST, cached in the download cache"
    symbols = pd.Series(
        [table.get(k, "") for k in keys], index=pd.Index(ids, dtype=object), name="gene_symbol"
    )
    return GeneSymbols(organism, symbols, release, source)


def _cache_path(organism: str, cache_dir) -> Path:
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return folder / "gene-symbols" / f"{organism}.tsv"


def _cached(organism, keys, cache_dir, offline, server) -> tuple[dict[str, str], str]:
    path = _cache_path(organism, cache_dir)
    table: dict[str, str] = {}
    releases: list[str] = []
    if path.exists():
        table, releases = _read_table(path.read_text(encoding="utf-8"))
    missing = list(dict.fromkeys(k for k in keys if k not in table))
    if missing and offline:
        raise DatasetSpecError(
            f"{len(missing)} {organism} gene id(s) have no symbol in the cache ({path}): "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}. Run once with the "
            "network (offline=False) to fetch them from Ensembl; they are kept for later."
        )
    if missing:
        fetched, release = _fetch(organism, missing, server)
        table.update(fetched)
        if release not in releases:
            releases.append(release)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path, overwrite=True) as tmp:
            lines = [f"# refinewidgets gene symbols of {organism}, from Ensembl REST"]
            lines += [f"# release: {r}" for r in releases]
            lines.append("ensembl_id\tsymbol")
            lines += [f"{k}\t{v}" for k, v in sorted(table.items())]
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return table, ", ".join(releases) or "Ensembl (cache)"


def _clean(symbol: Any) -> str:
    """A symbol as text fit for a table cell: no tabs or line breaks."""
    return re.sub(r"[\t\r\n;]+", " ", str(symbol)).strip() if symbol else ""


def _fetch(organism: str, ids: list[str], server: str | None) -> tuple[dict[str, str], str]:
    from .remote.http import Http

    base = server or os.environ.get(ENSEMBL_ENV) or ENSEMBL_REST
    http = Http(base, service="Ensembl", hint=f"${ENSEMBL_ENV} sets its address")
    info = http.json("info/data/", headers={"Accept": "application/json"})
    releases = info.get("releases") if isinstance(info, dict) else None
    release = f"Ensembl {releases[0]}" if releases else "Ensembl (release not given)"
    out: dict[str, str] = {}
    for start in range(0, len(ids), BATCH):
        part = ids[start : start + BATCH]
        answer = http.json(
            "lookup/id",
            method="POST",
            json={"ids": part},
            headers={"Accept": "application/json", "Content-Type": "application/json"},
        )
        if not isinstance(answer, dict):
            answer = {}
        for gene_id in part:
            found = answer.get(gene_id)
            out[gene_id] = _clean(found.get("display_name")) if isinstance(found, dict) else ""
    return out, release


def add_gene_symbols(
    result: Result,
    *,
    cache_dir: str | os.PathLike | None = None,
    offline: bool = False,
    server: str | None = None,
    skip_missing: bool = False,
) -> Result:
    """Put ``var["gene_symbol"]`` in each sample group of ``result`` (in place; returned).

    Each group's genes are looked up for its organism (recorded by the build, else the samples'
    ``refinebio_organism``) with :func:`symbols_for` (a group of several organisms is left as it is, as are groups of cells, which have their file's
    symbols); what was used is recorded in ``uns["refinewidgets"]["gene_symbols"]`` (release,
    source, how many genes have a symbol). With ``offline=True`` and ``skip_missing=True`` (the
    app: it never goes to the network for symbols), a group whose ids are not all in the cache
    gets no symbols, and the record says why and how to fetch them.

    Examples
    --------
    >>> import refinewidgets as rw
    >>> res = rw.build(rw.Dataset({"SRP091833": ["ALL"]}), rw.open_catalog())
    >>> info = add_gene_symbols(res)["SRP091833"].uns["refinewidgets"]["gene_symbols"]
    >>> info["organism"], info["genes"] == res["SRP091833"].n_vars
    ('HOMO_SAPIENS', True)
    """
    from ..core.provenance import UNS_KEY
    from ..core.result import is_cell_group

    for adata in result.values():
        ours = adata.uns.setdefault(UNS_KEY, {})
        organisms = list(ours.get("organisms") or [])
        if not organisms and "refinebio_organism" in adata.obs:  # a zip read back
            organisms = sorted(set(adata.obs["refinebio_organism"].astype(str)) - {""})
        if is_cell_group(adata) or len(organisms) != 1:
            continue
        try:
            found = symbols_for(
                organisms[0],
                list(adata.var_names),
                cache_dir=cache_dir,
                offline=offline,
                server=server,
            )
        except DatasetSpecError:
            if not (offline and skip_missing):
                raise
            ours["gene_symbols"] = {
                "organism": organisms[0],
                "missing": "not fetched yet: refinewidgets.io.gene_symbols.add_gene_symbols("
                "result) fetches them once from Ensembl",
            }
            continue
        adata.var["gene_symbol"] = found.symbols.to_numpy()
        ours["gene_symbols"] = found.record()
    return result
