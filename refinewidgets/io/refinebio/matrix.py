"""refine.bio's matrix TSV in a store: header, values (whole or in blocks of genes), writing.

The parsing and formatting themselves are in :mod:`.matrix_tsv`; this module finds a matrix in
a :class:`~refinewidgets.io.containers.stores.Store` and names what is wrong with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO

import numpy as np

from ...errors import (
    SourceFormatError,
)
from ..containers.stores import Store
from .matrix_tsv import format_matrix, parse_matrix, parse_matrix_blocks

#: What a name in a tab-separated matrix cannot hold.
_UNWRITABLE = re.compile(r"[\t\r\n\x00]")

__all__ = [
    "matrix_header",
    "read_matrix",
    "read_matrix_blocks",
    "write_matrix",
]


def _find_bad_value(store: Store, name: str, columns: list[str] | None) -> str:
    header = matrix_header(store, name)
    with store.open(name) as fh:
        fh.readline()
        wanted = set(columns) if columns is not None else set(header[1:])
        for lineno, raw in enumerate(fh, start=2):
            cells = raw.decode("utf-8", "replace").rstrip("\r\n").split("\t")
            for col, cell in zip(header[1:], cells[1:]):
                if col not in wanted or cell.strip() in ("", "NA", "NaN", "nan"):
                    continue
                try:
                    float(cell)
                except ValueError:
                    return f"line {lineno}, column {col!r} (gene {cells[0]!r}): {cell!r}"
    return "an unparseable value"


def matrix_header(store: Store, name: str) -> list[str]:
    """The header cells of a matrix TSV: the gene column's name, then the sample accessions.

    A byte-order mark, surrounding whitespace and double quotes are removed from each name;
    the first cell may be empty (species compendia) or ``Gene``.
    """
    try:
        line = store.first_line(name)
    except UnicodeDecodeError as exc:
        raise SourceFormatError(
            f"{store.label}: the header of {name} is not UTF-8 text ({exc}); a matrix header "
            "holds 'Gene' and the sample accessions, tab-separated."
        ) from None
    cells = [c.strip().strip('"').strip() for c in line.lstrip("\ufeff").split("\t")]
    if len(cells) < 2 and not cells[0]:
        raise SourceFormatError(
            f"{store.label}: {name} is empty; expected a header 'Gene<TAB>sample...'."
        )
    seen: set[str] = set()
    for c in cells[1:]:
        if c in seen:
            raise SourceFormatError(
                f"{store.label}: {name} lists the sample {c!r} twice in its header: each "
                "column must be a different sample accession. Remove the duplicate column."
            )
        seen.add(c)
    return cells


def read_matrix(
    store: Store, name: str, columns: list[str] | None = None
) -> tuple[list[str], list[str], np.ndarray]:
    """Read a refine.bio matrix TSV: ``(gene ids, sample columns, values samples x genes)``.

    Only ``columns`` (sample accessions) are parsed when given, each found by its name in the
    header. Empty cells, ``NA`` and ``NaN`` become NaN. A non-numeric value raises
    SourceFormatError naming the file, line and column. The text is inflated in one thread and
    parsed in batches of rows straight into the returned array (see
    :mod:`refinewidgets.io.refinebio.matrix_tsv`).
    """
    header = matrix_header(store, name)
    position = {c: i for i, c in enumerate(header) if i}
    samples = header[1:] if columns is None else list(columns)
    missing = [s for s in samples if s not in position]
    if missing:
        raise SourceFormatError(
            f"{store.label}: {name} has no column for {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}."
        )
    genes, X = parse_matrix(
        lambda: store.chunks(name),
        header,
        [position[s] for s in samples],
        size=store.size(name),
        label=store.label,
        name=name,
        bad_value=lambda: _find_bad_value(store, name, samples),
    )
    empty = [i for i, gene in enumerate(genes) if not gene.strip()]  # 4x pandas' str.strip
    if empty:
        raise SourceFormatError(
            f"{store.label}: {name} has {len(empty)} row(s) without a gene id (the first on line "
            f"{empty[0] + 2}): their values cannot be joined with other samples' genes. Fill in "
            "the gene ids or remove those rows."
        )
    return genes, samples, X


def read_matrix_blocks(store: Store, name: str) -> Iterator[tuple[list[str], np.ndarray]]:
    """Every sample of a matrix TSV as consecutive blocks of genes: ``(gene ids, values
    samples x genes)``, the samples in the header's order; memory stays bounded whatever the
    member's size (see :func:`~refinewidgets.io.refinebio.matrix_tsv.parse_matrix_blocks`). Errors as
    :func:`read_matrix`.
    """
    header = matrix_header(store, name)
    return parse_matrix_blocks(
        lambda: store.chunks(name),
        header,
        list(range(1, len(header))),
        size=store.size(name),
        label=store.label,
        name=name,
        bad_value=lambda: _find_bad_value(store, name, None),
    )


def write_matrix(
    fh: IO[bytes],
    genes: list[str] | np.ndarray,
    samples: list[str],
    X: np.ndarray,
    *,
    float32: bool = False,
) -> None:
    """Write a samples x genes array as refine.bio's genes x samples TSV (``Gene`` header).

    Each value is written as the shortest text that parses back to the same float64 (pandas'
    ``repr`` of it may differ in form, e.g. ``1e+20`` against ``1e20``, never in value); NaN is
    an empty cell. ``float32=True`` rounds the values to float32 first and writes the shortest
    text of the float32 (about 7 significant digits, a smaller file): parsed as float32, it
    gives exactly the rounded value.

    A tab, line break or NUL inside a gene id or sample name would shift every column after
    it, so such a name is refused.
    """
    for what, names in (("sample name", samples), ("gene id", genes)):
        text = [str(n) for n in names]
        if _UNWRITABLE.search("\x01".join(text)):  # one scan (pandas' str.contains: 5x)
            bad = next(n for n in text if _UNWRITABLE.search(n))
            raise SourceFormatError(
                f"The {what} {bad!r} holds a tab, a line break or a NUL character: "
                "it cannot be written to a tab-separated matrix. Rename it."
            )
    fh.write(("Gene\t" + "\t".join(samples) + "\n").encode("utf-8"))
    if len(genes) == 0 or len(samples) == 0:
        if len(genes):
            fh.write(("\n".join(map(str, genes)) + "\n").encode("utf-8"))
        return
    format_matrix(
        fh.write, np.asarray(genes, dtype=object).astype(str), samples, X, float32=float32
    )
