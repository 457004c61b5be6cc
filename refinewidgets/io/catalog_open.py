"""``open_catalog``: turn paths (or nothing, for the demo) into a :class:`Catalog`."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from ..core.catalog import Catalog
from ..errors import PathNotFoundError, SourceFormatError
from .sources import QN_TARGET_PATTERN, QnTargetSource, RefinebioSource

__all__ = ["demo_path", "find_sources", "open_catalog"]

AGGREGATED = "aggregated_metadata.json"


def demo_path() -> Path:
    """The folder of the bundled demo compendium."""
    return Path(str(resources.files("refinewidgets") / "data" / "demo"))


def _open_file(path: Path, tx2gene=None):
    name = path.name.lower()
    if name.endswith(".zip"):
        return RefinebioSource(path, tx2gene=tx2gene)
    if QN_TARGET_PATTERN.match(path.name):
        return QnTargetSource(path)
    if name.endswith(".h5ad"):
        from .bgee_source import BgeeSource

        return BgeeSource(path)
    raise SourceFormatError(
        f"Cannot open {path}: expected a refine.bio download (.zip or its unzipped folder), a Bgee "
        ".h5ad file, a qn_target_<ORGANISM>.tsv file, or a folder holding them."
    )


def find_sources(path: str | os.PathLike, *, tx2gene=None, _seen=None) -> list:
    """The sources at ``path``: a file, an unzipped download, or a folder searched recursively
    (a folder reached twice through symbolic links is read once)."""
    path = Path(path)
    seen = set() if _seen is None else _seen
    if path.is_dir():
        real = path.resolve()
        if real in seen:
            return []
        seen.add(real)
    if not path.exists():
        raise PathNotFoundError(f"{path} does not exist: check the path.")
    if path.is_file():
        return [_open_file(path, tx2gene)]
    if (path / AGGREGATED).exists():
        return [RefinebioSource(path, tx2gene=tx2gene)]
    found = []
    # files first, then subfolders, each sorted by name: a stable, predictable source order
    for child in sorted(path.iterdir(), key=lambda p: (p.is_dir(), p.name)):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            found.extend(find_sources(child, tx2gene=tx2gene, _seen=seen))
        elif child.suffix.lower() in (".zip", ".h5ad") or QN_TARGET_PATTERN.match(child.name):
            found.append(_open_file(child, tx2gene))
    return found


def open_catalog(*paths: str | os.PathLike, tx2gene=None) -> Catalog:
    """Open refine.bio downloads, Bgee H5AD files and folders of them as one catalog.

    With no argument, opens the demo compendium bundled with the package (works offline).
    ``tx2gene`` (a two-column transcript-to-gene file, DataFrame or mapping) lets a build sum
    the transcripts of refine.bio's quant.sf-only downloads (RNA-seq quantpendia) into genes.

    Examples
    --------
    >>> import refinewidgets as rw
    >>> cat = rw.open_catalog()
    >>> sorted(cat.samples["refinebio_organism"].unique())
    ['HOMO_SAPIENS', 'MUS_MUSCULUS']
    """
    if not paths:
        paths = (demo_path(),)
    sources = []
    for p in paths:
        found = find_sources(p, tx2gene=tx2gene)
        if not found and Path(p).is_dir():
            raise SourceFormatError(
                f"{p} holds no refine.bio download (.zip or folder with {AGGREGATED}) and no Bgee .h5ad file."
            )
        sources.extend(found)
    # A dataset refinewidgets built (say, saved into a folder of downloads) comes after the
    # downloads it was built from, so it never shadows the original values.
    originals = {
        e for src in sources if not getattr(src, "derived", False) for e in src.experiments
    }
    if any(getattr(src, "derived", False) and originals & set(src.experiments) for src in sources):
        sources.sort(key=lambda src: bool(getattr(src, "derived", False)))
    return Catalog(sources)
