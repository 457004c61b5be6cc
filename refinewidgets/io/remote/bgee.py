"""Bgee's droplet single-cell files, listed and fetched from its FTP site over HTTPS.

Bgee publishes its processed single-cell data as plain folders with HTML index pages under its
download root, ``https://www.bgee.org/ftp/current/download/`` (BgeeDB/bgee_apps,
``bgee-webapp/src/main/resources/bgee.properties``, ``org.bgee.webapp.downloadRootDirectory``,
commit fea9f741a2e2972988b7b4236f0c710b9f0d838b). ``h5ad/droplet_based/`` holds one folder per
species (``Homo_sapiens/``; ``DownloadFileService.java``, same commit, builds
``<root>h5ad/droplet_based/<Genus_species>/<Genus_species>_<EXP>_droplet_based.h5ad``), and each
species folder the species tarball ``<Genus_species>_droplet_based_h5ad.tar.gz`` (BgeeDB/
bgee_pipeline, ``pipeline/download_files/insert_download_file_info.pl``, suffix ``_h5ad.tar.gz``
under ``droplet_based/<species>/``, commit cdb2d2ec26152f3270834b0d772050e5cb44bb95; Bgee 15.2:
human about 4.4 GB) and, where Bgee publishes them, per-experiment files and ``<file>.md5``
checksums. We read those index pages (Apache's and nginx's layouts), so nothing is hard-coded but
the folder. When a species folder answers 404, the other published layout
(``processed_expr_values/sc_rnaseq/``: bgee.properties,
``org.bgee.webapp.downloadSingleCellRNASeqProcExprValueFilesRootDirectory``, same commit; also
linked from Bgee's documentation pages) is tried, and the error names every address tried;
``folder=`` pins one folder.

The base address is ``$REFINEWIDGETS_BGEE_FTP`` (default the download root above).
Bgee's REST API (which BgeeDB uses) is not used: the FTP listing is all we need and is stable
across releases.

Fetching an experiment Bgee does not publish as its own file downloads the species tarball, which
holds every experiment; ``rw.open_catalog(tarball)`` indexes it without extracting it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import pandas as pd

from ..bgee.conventions import parse_file_name
from .cache import DownloadCache, safe_name
from .errors import RemoteError, RemoteNotFoundError
from .http import Http

__all__ = [
    "DEFAULT_FTP",
    "DROPLET_FOLDER",
    "FALLBACK_FOLDER",
    "FTP_ENV",
    "Bgee",
    "fetch",
    "list_experiments",
    "list_files",
    "list_species",
]

FTP_ENV = "REFINEWIDGETS_BGEE_FTP"
# bgee_apps bgee.properties (fea9f741): org.bgee.webapp.downloadRootDirectory
DEFAULT_FTP = "https://www.bgee.org/ftp/current/download/"
#: The folder of droplet-based H5AD files under the download root (bgee_apps
#: DownloadFileService.java, fea9f741: "h5ad/" + "droplet_based/" + <Genus_species> + "/").
DROPLET_FOLDER = "h5ad/droplet_based/"
#: The other published layout, tried when a species folder of the first answers 404 (bgee_apps
#: bgee.properties, fea9f741: downloadSingleCellRNASeqProcExprValueFilesRootDirectory).
FALLBACK_FOLDER = "processed_expr_values/sc_rnaseq/"
_SPECIES = re.compile(r"[A-Z][a-z]+(?:_[a-z]+){1,2}")
_SIZE = re.compile(r"(\d+(?:\.\d+)?[KMGTP]?)\s*$")
# bgee_pipeline insert_download_file_info.pl (cdb2d2ec): $h5ad_suffix = "_h5ad.tar.gz" under
# droplet_based/<species>/
_TARBALL = "_droplet_based_h5ad.tar.gz"
_FILE_COLUMNS = ["name", "kind", "experiment", "size", "url"]


def species_name(value: str) -> str:
    """Bgee's ``Genus_species`` from ``Homo sapiens``, ``homo_sapiens`` or ``HOMO_SAPIENS``.

    Examples
    --------
    >>> species_name("HOMO_SAPIENS"), species_name("danio rerio")
    ('Homo_sapiens', 'Danio_rerio')
    """
    text = str(value).strip().replace(" ", "_").lower()
    text = text[:1].upper() + text[1:]
    if not _SPECIES.fullmatch(text):
        raise RemoteNotFoundError(
            f"{value!r} is not a species name such as Homo_sapiens (Bgee's folder names); "
            "`rw.remote.bgee.list_species()` lists them."
        )
    return text


class _Index(HTMLParser):
    """The links of an index page, with the text that follows each (date and size)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[list[str]] = []
        self._in_a = False

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append([href, ""])
                self._in_a = True

    def handle_endtag(self, tag):
        if tag == "a":
            self._in_a = False

    def handle_data(self, data):
        if self.links and not self._in_a:
            self.links[-1][1] += data


def parse_index(html: str) -> list[tuple[str, bool, str]]:
    """``(name, is_folder, size text)`` of each entry of an HTML index page; parent links,
    sort links, absolute and unsafe names are left out.

    Examples
    --------
    >>> page = '<a href="../">../</a> <a href="Homo_sapiens/">Homo_sapiens/</a> 2023-11-14 -'
    >>> page += '<a href="x_droplet_based.h5ad">x</a> 2023-11-14 22:13  4.4G'
    >>> parse_index(page)
    [('Homo_sapiens', True, ''), ('x_droplet_based.h5ad', False, '4.4G')]
    """
    parser = _Index()
    parser.feed(html)
    entries = []
    for href, tail in parser.links:
        if "?" in href or "#" in href or urlsplit(href).scheme or href.startswith("/"):
            continue
        name = unquote(href)
        folder = name.endswith("/")
        name = name.rstrip("/")
        if not name or "/" in name or name in (".", "..") or name.startswith("."):
            continue
        match = _SIZE.search(tail.replace("\xa0", " ").strip())
        size = match.group(1) if match and not folder else ""
        entries.append((name, folder, size))
    return entries


class Bgee:
    """A client of Bgee's FTP site.

    Parameters
    ----------
    ftp
        The download root over HTTPS (default ``$REFINEWIDGETS_BGEE_FTP`` or Bgee's current
        release, https://www.bgee.org/ftp/current/download/).
    folder
        The folder of droplet H5AD files under the root; by default Bgee's
        ``h5ad/droplet_based/``, then ``processed_expr_values/sc_rnaseq/`` for a species the
        first does not have.
    cache_dir, timeout, retries, backoff
        As for :class:`~refinewidgets.io.remote.refinebio.RefineBio`.

    Examples
    --------
    >>> Bgee("http://127.0.0.1:9/ftp/current/download/").droplet_url
    'http://127.0.0.1:9/ftp/current/download/h5ad/droplet_based/'
    """

    def __init__(
        self,
        ftp: str | None = None,
        *,
        folder: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        backoff: float | None = None,
    ) -> None:
        self.http = Http(
            ftp or os.environ.get(FTP_ENV) or DEFAULT_FTP,
            service="Bgee",
            hint=f"the address in ${FTP_ENV}",
            timeout=timeout,
            retries=retries,
            backoff=backoff,
        )
        folders = (DROPLET_FOLDER, FALLBACK_FOLDER) if folder is None else (folder,)
        #: The folder URLs tried in turn, Bgee's own layout first.
        self.folder_urls = [self.http.url(f if f.endswith("/") else f + "/") for f in folders]
        self.droplet_url = self.folder_urls[0]
        self.cache = DownloadCache(cache_dir)

    def _index(self, url: str, what: str) -> list[tuple[str, bool, str]]:
        return parse_index(self.http.text(url, what=what))

    def _first_index(self, urls: list[str], what: str, missing: str):
        """``(url, entries)`` of the first of ``urls`` that is not a 404; else a
        RemoteNotFoundError listing every address tried."""
        for url in urls:
            try:
                return url, self._index(url, what)
            except RemoteNotFoundError:
                continue
        tried = ", ".join(urls)
        raise RemoteNotFoundError(
            f"{missing} (Bgee answered 404 for every address tried: {tried})."
        )

    def list_species(self) -> list[str]:
        """The species with droplet single-cell files (folder names, ``Genus_species``)."""
        _, entries = self._first_index(
            self.folder_urls,
            "Bgee's droplet folder",
            f"Bgee has no droplet single-cell folder at {self.http.base_url}; is "
            f"${FTP_ENV} its download root?",
        )
        return [name for name, folder, _ in entries if folder and _SPECIES.fullmatch(name)]

    def list_files(self, species: str) -> pd.DataFrame:
        """The files of a species' folder: name, kind (``tarball``, ``h5ad``, ``md5``, ``other``),
        experiment (for an H5AD file), size (as the index page shows it) and url."""
        sp = species_name(species)
        url, entries = self._first_index(
            [f"{folder}{sp}/" for folder in self.folder_urls],
            f"the species {sp}",
            f"Bgee has no droplet single-cell folder for {sp}. "
            "`rw.remote.bgee.list_species()` lists the species that have one",
        )
        rows = []
        for name, folder, size in entries:
            if folder:
                continue
            kind, experiment = "other", ""
            if name == f"{sp}{_TARBALL}":
                kind = "tarball"
            elif name.endswith(".md5"):
                kind = "md5"
            elif name.lower().endswith(".h5ad"):
                kind = "h5ad"
                experiment = parse_file_name(name[: -len(".h5ad")])[1]
            rows.append((name, kind, experiment, size, url + name))
        return pd.DataFrame(rows, columns=_FILE_COLUMNS)

    def list_experiments(self, species: str) -> pd.DataFrame:
        """The droplet experiments of a species: experiment, species, file, size, source.

        ``source`` is ``file`` for an experiment Bgee publishes as its own H5AD file and
        ``tarball`` for one found in the species tarball, which is listed only once the
        tarball is in the cache (``fetch(species)`` downloads it).
        """
        sp = species_name(species)
        files = self.list_files(sp)
        h5ad = files[files["kind"] == "h5ad"]
        rows = [
            (e, sp, n, s, "file")
            for e, n, s in h5ad[["experiment", "name", "size"]].itertuples(index=False)
        ]
        tarball = self.cache.path_for("bgee", sp, f"{sp}{_TARBALL}")
        if self.cache.record(tarball) is not None:
            from ..bgee.tarball import BgeeTarball

            known = {r[0] for r in rows}
            for member in BgeeTarball(tarball, self.cache.root.parent).members:
                if member.experiment not in known:
                    rows.append(
                        (
                            member.experiment,
                            sp,
                            PurePosixPath(member.name).name,
                            str(member.size),
                            "tarball",
                        )
                    )
        frame = pd.DataFrame(rows, columns=["experiment", "species", "file", "size", "source"])
        frame.attrs["tarball"] = bool((files["kind"] == "tarball").any())
        return frame

    def fetch(
        self,
        species: str,
        experiments: Iterable[str] = (),
        *,
        out: str | os.PathLike | None = None,
        refresh: bool = False,
        progress=None,
    ) -> list[Path]:
        """Download the species tarball (no ``experiments``) or the chosen experiments' files;
        cached; returns paths for ``rw.open_catalog(*paths)`` (copies in ``out`` when given).

        An experiment without a file of its own is taken from the species tarball (downloaded
        once); one in neither raises RemoteNotFoundError listing what Bgee has.
        """
        sp = species_name(species)
        wanted = [experiments] if isinstance(experiments, str) else list(dict.fromkeys(experiments))
        cached = None if refresh else self._cached(sp, wanted)
        if cached is not None:  # everything asked for is in the cache: no network needed
            return [self.cache.copy_to(p, out) for p in cached] if out is not None else cached
        files = self.list_files(sp)
        md5 = {
            n[: -len(".md5")]: u
            for n, u in files.loc[files["kind"] == "md5", ["name", "url"]].itertuples(index=False)
        }
        chosen: list[tuple[str, str]] = []
        need_tarball = not wanted
        for exp in wanted:
            match = files[(files["kind"] == "h5ad") & (files["experiment"] == exp)]
            if len(match):
                chosen.extend(match[["name", "url"]].itertuples(index=False))
            else:
                need_tarball = True
        paths = [self._get(name, url, sp, md5, progress, refresh) for name, url in chosen]
        if need_tarball:
            paths.append(self._get_tarball(sp, wanted, files, md5, progress, refresh))
        if out is not None:
            paths = [self.cache.copy_to(p, out) for p in paths]
        return paths

    def _get_tarball(
        self, sp: str, wanted: list[str], files: pd.DataFrame, md5: dict, progress, refresh: bool
    ) -> Path:
        """The species tarball, downloaded (or cached), once it is known to hold the experiments
        of ``wanted`` that have no file of their own."""
        tar = files[files["kind"] == "tarball"]
        if tar.empty:
            listed = sorted(set(files.loc[files["kind"] == "h5ad", "experiment"]))
            raise RemoteNotFoundError(
                f"Bgee lists no file for {', '.join(wanted) or 'the species'} of {sp} and no "
                f"species tarball; it has: {', '.join(listed) or 'nothing'}."
            )
        name, url = tar.iloc[0][["name", "url"]]
        tarball = self._get(name, url, sp, md5, progress, refresh)
        missing = [e for e in wanted if e not in set(files["experiment"])]
        if missing:
            from ..bgee.tarball import BgeeTarball

            inside = {m.experiment for m in BgeeTarball(tarball, self.cache.root.parent).members}
            absent = [e for e in missing if e not in inside]
            if absent:
                raise RemoteNotFoundError(
                    f"Bgee has no droplet experiment {', '.join(absent)} for {sp}: not as a "
                    f"file, not in {name} (which holds {', '.join(sorted(inside)) or 'none'})."
                )
        return tarball

    def _cached(self, sp: str, wanted: list[str]) -> list[Path] | None:
        """The cached files that hold ``wanted`` (the tarball when nothing is named), or None."""
        folder = self.cache.path_for("bgee", sp)
        complete = [p for p in self.cache.complete_paths("bgee") if p.parent == folder]
        tarball = [p for p in complete if p.name == f"{sp}{_TARBALL}"]
        if not wanted:
            return tarball or None
        files = {}
        for p in complete:
            if p.name.lower().endswith(".h5ad"):
                files.setdefault(parse_file_name(p.name[: -len(".h5ad")])[1], p)
        if all(e in files for e in wanted):
            return [files[e] for e in wanted]
        if tarball:  # the species tarball, indexed locally, may hold the others
            from ..bgee.tarball import BgeeTarball

            inside = {m.experiment for m in BgeeTarball(tarball[0], self.cache.root.parent).members}
            if all(e in files or e in inside for e in wanted):
                return list(dict.fromkeys([files[e] for e in wanted if e in files] + tarball))
        return None

    def _get(self, name: str, url: str, sp: str, md5: dict, progress, refresh) -> Path:
        path = self.cache.path_for("bgee", sp, safe_name(name, "file name"))
        if not refresh and self.cache.record(path) is not None:
            return path
        checksum = None
        if name in md5:
            text = self.http.text(md5[name], what=f"the checksum of {name}")
            value = text.split()[0] if text.split() else ""
            if not re.fullmatch(r"[0-9a-fA-F]{32}", value):
                raise RemoteError(
                    f"Bgee's {name}.md5 does not hold an MD5 checksum: {text[:80]!r}."
                )
            checksum = f"md5:{value}"
        return self.cache.download(
            self.http, url, path, checksum=checksum, progress=progress, refresh=refresh, what=name
        )


def list_species(*, ftp: str | None = None) -> list[str]:
    """Species with droplet single-cell files (see :meth:`Bgee.list_species`).

    Examples
    --------
    >>> list_species()  # doctest: +SKIP
    ['Danio_rerio', 'Homo_sapiens', ...]
    """
    return Bgee(ftp).list_species()


def list_files(species: str, *, ftp: str | None = None) -> pd.DataFrame:
    """The files of a species' folder (see :meth:`Bgee.list_files`)."""
    return Bgee(ftp).list_files(species)


def list_experiments(species: str, *, ftp: str | None = None, cache_dir=None) -> pd.DataFrame:
    """The droplet experiments of a species (see :meth:`Bgee.list_experiments`).

    Examples
    --------
    >>> list_experiments("Homo_sapiens")  # doctest: +SKIP
    """
    return Bgee(ftp, cache_dir=cache_dir).list_experiments(species)


def fetch(
    species: str,
    experiments: Iterable[str] = (),
    *,
    ftp: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    **kwargs,
) -> list[Path]:
    """Download a species tarball or experiments' files (see :meth:`Bgee.fetch`).

    Examples
    --------
    >>> paths = fetch("Danio_rerio")  # doctest: +SKIP
    >>> cat = rw.open_catalog(*paths)  # doctest: +SKIP
    """
    return Bgee(ftp, cache_dir=cache_dir).fetch(species, experiments, **kwargs)
