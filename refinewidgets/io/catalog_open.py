"""``open_catalog``: turn paths (or nothing, for the demo) into a :class:`Catalog`."""

from __future__ import annotations

import os
import warnings
from importlib import resources
from pathlib import Path

from ..core.catalog import Catalog
from ..errors import (
    DuplicateSourceWarning,
    PathNotFoundError,
    SourceFormatError,
    SourceFormatWarning,
)
from .containers.stores import not_regular_file
from .refinebio.download import AGGREGATED
from .refinebio.sources import QN_TARGET_PATTERN, QnTargetSource, RefinebioSource

__all__ = ["demo_path", "drop_duplicate_files", "find_sources", "open_catalog"]


def demo_path() -> Path:
    """The folder of the bundled demo compendium."""
    return Path(str(resources.files("refinewidgets") / "data" / "demo"))


TARBALL_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def tarball_sources(path: Path, cache_dir=None) -> list:
    """One source per H5AD member of a Bgee species tarball, read from the tarball's index
    (see :mod:`.bgee.tarball`); a member's counts are extracted into the cache when first read."""
    from .bgee.source import BgeeSource
    from .bgee.tarball import BgeeTarball

    tarball = BgeeTarball(path, cache_dir)
    return [
        BgeeSource(
            tarball.stub(member.name),
            counts_file=MemberFile(
                str(path), None if cache_dir is None else str(cache_dir), member.name
            ),
            label=f"{path.name}:{Path(member.name).name}",
        )
        for member in tarball.members
    ]


class MemberFile:
    """A tarball member's full file, extracted into the cache when first called (picklable,
    so that a Dask worker can extract it too)."""

    def __init__(self, tarball: str, cache_dir: str | None, name: str) -> None:
        self.tarball, self.cache_dir, self.name = tarball, cache_dir, name

    def __call__(self) -> Path:
        from .bgee.tarball import BgeeTarball

        return BgeeTarball(self.tarball, self.cache_dir).extract(self.name)


def _open_file(path: Path, tx2gene=None, cache_dir=None) -> list:
    name = path.name.lower()
    if name.endswith(".zip"):
        return [RefinebioSource(path, tx2gene=tx2gene)]
    if QN_TARGET_PATTERN.match(path.name):
        return [QnTargetSource(path)]
    if name.endswith(".h5ad"):
        from .bgee.source import BgeeSource

        return [BgeeSource(path)]
    if name.endswith(TARBALL_SUFFIXES):
        return tarball_sources(path, cache_dir)
    raise SourceFormatError(
        f"Cannot open {path}: expected a refine.bio download (.zip or its unzipped folder), a Bgee "
        ".h5ad file or species tarball (.tar.gz), a qn_target_<ORGANISM>.tsv file, or a folder "
        "holding them."
    )


def find_sources(path: str | os.PathLike, *, tx2gene=None, cache_dir=None, _seen=None) -> list:
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
        return _open_file(path, tx2gene, cache_dir)
    if not path.is_dir():
        raise SourceFormatError(not_regular_file(path))
    if (path / AGGREGATED).exists():
        return [RefinebioSource(path, tx2gene=tx2gene)]
    found = []
    # files first, then subfolders, each sorted by name: a stable, predictable source order
    for child in sorted(path.iterdir(), key=lambda p: (p.is_dir(), p.name)):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            found.extend(find_sources(child, tx2gene=tx2gene, cache_dir=cache_dir, _seen=seen))
        elif (
            child.suffix.lower() in (".zip", ".h5ad")
            or child.name.lower().endswith(TARBALL_SUFFIXES)
            or QN_TARGET_PATTERN.match(child.name)
        ):
            if not child.is_file():  # a pipe or device would block the reader: never opened
                if child.exists():
                    warnings.warn(
                        not_regular_file(child) + " It was skipped.",
                        SourceFormatWarning,
                        stacklevel=2,
                    )
                continue
            found.extend(_open_file(child, tx2gene, cache_dir))
    return found


def drop_duplicate_files(sources: list) -> list:
    """Keep one file per Bgee experiment and species.

    The same experiment and species in two files (two releases, or an FTP copy beside a
    BgeeDB copy) would add its cells twice. The rule: the newest Bgee writer wins (newest,
    after 15.2, 15.2, 15.1; see :data:`~refinewidgets.io.bgee.conventions.WRITERS`); then a file under
    Bgee's own name over a BgeeDB save; then the path found first. A
    :class:`~refinewidgets.errors.DuplicateSourceWarning` names every file and the one used.
    """
    groups: dict[tuple[str, str], list] = {}
    for src in sources:
        rank = getattr(src, "release_rank", None)
        if rank is not None:
            groups.setdefault((src.experiment, src.organism), []).append(src)
    dropped: set[int] = set()
    for (experiment, organism), group in groups.items():
        if len(group) < 2:
            continue
        ranked = sorted(group, key=lambda src: src.release_rank, reverse=True)  # stable
        chosen, others = ranked[0], ranked[1:]
        for other in others:
            dropped.add(id(other))
            other.close()
        warnings.warn(
            f"{experiment} ({organism}) is in {len(group)} files: "
            + "; ".join(f"{src.origin} ({src.describe_origin()})" for src in ranked)
            + f". Using {chosen.origin} only: of copies of one experiment and species the newest "
            "Bgee release wins (then Bgee's own file name over a BgeeDB save, then the path "
            "found first). Remove the other copies to silence this warning.",
            DuplicateSourceWarning,
            stacklevel=3,
        )
    return [src for src in sources if id(src) not in dropped]


def open_catalog(*paths: str | os.PathLike, tx2gene=None, cache_dir=None) -> Catalog:
    """Open refine.bio downloads, Bgee H5AD files and folders of them as one catalog.

    With no argument, opens the demo compendium bundled with the package (works offline).
    ``tx2gene`` (a two-column transcript-to-gene file, DataFrame or mapping) lets a build sum
    the transcripts of refine.bio's quant.sf-only downloads (RNA-seq quantpendia) into genes.
    Bgee species tarballs are indexed into ``cache_dir`` (default:
    :func:`~refinewidgets.io.bgee.tarball.default_cache_dir`, or ``$REFINEWIDGETS_CACHE``); a
    member's counts are extracted there when a build first reads them.

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
        found = find_sources(p, tx2gene=tx2gene, cache_dir=cache_dir)
        if not found and Path(p).is_dir():
            raise SourceFormatError(
                f"{p} holds no refine.bio download (.zip or folder with {AGGREGATED}) and no Bgee .h5ad file or species tarball."
            )
        sources.extend(found)
    sources = drop_duplicate_files(sources)
    # A dataset refinewidgets built (say, saved into a folder of downloads) comes after the
    # downloads it was built from, so it never shadows the original values.
    originals = {
        e for src in sources if not getattr(src, "derived", False) for e in src.experiments
    }
    if any(getattr(src, "derived", False) and originals & set(src.experiments) for src in sources):
        sources.sort(key=lambda src: bool(getattr(src, "derived", False)))
    return Catalog(sources)
