"""Bgee's species tarballs (``<Genus_species>_droplet_based_h5ad.tar.gz``), opened without
extracting them.

Bgee 15.2 ships its droplet single-cell data as one tarball per species (human: about 4.4 GB),
each member one experiment's H5AD file. :class:`BgeeTarball` reads such a tarball once, as a
stream, and keeps a small **index** in a cache folder: for every ``.h5ad`` member a **stub**
H5AD holding the member's ``obs``, ``var`` and ``uns`` (copied with h5py, every attribute and
encoding kept) but no ``X``, and a JSON manifest listing the members. Opening the same tarball
again reuses the index. A member's full file is extracted only when asked for
(:meth:`BgeeTarball.extract`), into the same cache folder.

Cache layout (``cache_dir`` defaults to :func:`default_cache_dir`)::

    <cache_dir>/bgee-tarballs/<key>/manifest.json            the index (written last)
    <cache_dir>/bgee-tarballs/<key>/stubs/<member file>       obs, var, uns of each member
    <cache_dir>/bgee-tarballs/<key>/members/<member file>     extracted members (evictable)

``<key>`` is a hash of the tarball's identity (resolved path, size, modification and change
times in ns, inode, a digest of its first and last MiB): a changed or replaced tarball gets a new
index, also when it was rewritten in place with its size and modification time kept (``touch
-d`` sets the modification time, never the change time). An extracted member is checked before
each use: its size, then its inode and change time against those recorded when it was extracted
(``<member file>.check.json``), and, when they differ, a digest of its bytes against the one
taken when it was indexed; a member that fails is extracted again. ``<member file>`` is the member's base name
(checked against a strict pattern), in a numbered subfolder when two members share a base name;
names from the archive are never used as paths otherwise. Everything is written to a temporary
name and renamed into place, so an interrupted index or extraction leaves nothing that a later
open would use (its leftovers are removed by the next index of the same cache).

Decisions:

- Member names are checked as the stream is read, before anything is written: an absolute name,
  a ``..`` part or a drive letter, a link (symbolic or hard), a device or a FIFO anywhere in the
  tarball refuses the whole tarball (:class:`~refinewidgets.errors.UnsafeArchiveError`), as
  :class:`~refinewidgets.io.containers.stores.TarStore` does. Sizes are checked against
  :data:`~refinewidgets.io.containers.limits.READ_LIMITS`.
- A ``.h5ad`` member's base name must match ``[A-Za-z0-9][A-Za-z0-9._-]*\\.h5ad`` (every name
  Bgee writes does; the suffix in any case); another name refuses the tarball with a message
  saying how to fix it. Folder parts are only checked for safety: they never become paths.
  Hidden files (base name starting with ``.``, e.g. macOS ``._x.h5ad``) and other files are not
  members.
- A tarball is recognized by its content (:func:`tar_compression`, :func:`is_tarball`), not its
  name: gzip, bzip2, xz or none, holding a tar header.
- Extracted members are bounded by ``max_cache_bytes`` (default 50 GiB, environment variable
  ``REFINEWIDGETS_CACHE_MAX_BYTES``, 0 for no bound), counted over every tarball in the cache;
  the least recently used members are removed first. Stubs and manifests are never removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import h5py
import numpy as np

from ...core.cache_dir import CACHE_ENV, default_cache_dir
from ...errors import (
    PathNotFoundError,
    RefineWidgetsError,
    SourceFormatError,
)
from ..containers.atomic import atomic_output
from ..containers.names import check_name_part
from ..containers.tarball import (
    READ_ERRORS,
    TarStream,
    check_record,
    clean_stale_dirs,
    intact,
    is_tarball,
    record_check,
    tar_compression,
    unwritable,
)
from .conventions import parse_file_name

__all__ = [
    "CACHE_ENV",
    "DEFAULT_MAX_CACHE_BYTES",
    "MAX_CACHE_ENV",
    "BgeeTarball",
    "TarballMember",
    "default_cache_dir",
    "is_tarball",
    "tar_compression",
]

#: Environment variable naming the cache folder.
#: Environment variable bounding the bytes of extracted members kept in the cache (0: no bound).
MAX_CACHE_ENV = "REFINEWIDGETS_CACHE_MAX_BYTES"
DEFAULT_MAX_CACHE_BYTES = 50 << 30

_INDEX_ROOT = "bgee-tarballs"
_MANIFEST = "manifest.json"
_FORMAT = "refinewidgets-bgee-tarball-index"
_VERSION = 2  # 2: the tarball's identity has its inode, ctime and edges; members their digest
_BASENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.(?i:h5ad)")
_SHOWN = 8  # names listed in an error message


def _max_cache_bytes(value: int | None) -> int:
    if value is not None:
        return int(value)
    text = os.environ.get(MAX_CACHE_ENV)
    if not text:
        return DEFAULT_MAX_CACHE_BYTES
    try:
        return int(text)
    except ValueError:
        raise SourceFormatError(
            f"The environment variable {MAX_CACHE_ENV}={text!r} is not a number of bytes."
        ) from None


@dataclass(frozen=True)
class TarballMember:
    """One H5AD file in a species tarball, as recorded in the index."""

    #: The member's name in the tarball, e.g. ``Homo_sapiens/Homo_sapiens_ERP1_droplet_based.h5ad``.
    name: str
    #: Its size in bytes.
    size: int
    #: Its file name in the cache (base name, or ``<n>/<base name>`` for a repeated base name).
    file: str
    #: Experiment accession and ``Genus_species`` (or None) parsed from the base name.
    experiment: str
    species: str | None
    #: ``X``: rows (cells), columns (genes), anndata encoding (``csr_matrix``, ``array``, ...).
    n_obs: int | None
    n_vars: int | None
    x_encoding: str | None
    #: BLAKE2b digest of its bytes, taken when indexed: an extracted copy is checked against it.
    digest: str


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value[()])
    return str(value)


def _x_info(f: h5py.File) -> dict:
    """Shape, encoding, dtype and stored values of ``X``, from its attributes (no data read)."""
    x = f.get("X")
    if x is None:
        return {}
    attrs = x.attrs
    if isinstance(x, h5py.Dataset):
        encoding = _text(attrs.get("encoding-type", "array"))
        return {"shape": tuple(int(n) for n in x.shape), "encoding": encoding, "dtype": x.dtype}
    encoding = attrs.get("encoding-type")
    if encoding is None and "h5sparse_format" in attrs:  # anndata 0.6
        encoding = _text(attrs["h5sparse_format"]) + "_matrix"
    shape = attrs.get("shape", attrs.get("h5sparse_shape"))
    info = {"encoding": _text(encoding) if encoding is not None else "unknown"}
    if shape is not None:
        info["shape"] = tuple(int(n) for n in np.asarray(shape).ravel())
    data = x.get("data")
    if isinstance(data, h5py.Dataset):
        info["dtype"], info["nnz"] = data.dtype, int(data.shape[0]) if data.shape else 0
    return info


class BgeeTarball(TarStream):
    """A Bgee species tarball, indexed in a cache folder; members extracted on demand.

    Parameters
    ----------
    path
        The tarball, e.g. ``Homo_sapiens_droplet_based_h5ad.tar.gz`` (gzip, bzip2 or xz
        compressed, or a plain ``.tar``; recognized by its first bytes, not its name).
    cache_dir
        The cache folder (default :func:`default_cache_dir`); the index goes in its
        ``bgee-tarballs`` subfolder.
    max_cache_bytes
        Bound on the bytes of extracted members in the cache (default ``$REFINEWIDGETS_CACHE_
        MAX_BYTES`` or 50 GiB; 0: no bound). Least recently used members are removed first;
        the members just extracted are kept even when they alone exceed the bound.
    progress
        Called as ``progress(bytes_read, tarball_bytes)`` (compressed bytes) at each member
        header while the tarball is read (indexing, extraction), and with equal values at the
        end of a full read.

    Opening reads the whole tarball once (a stream: nothing but one member at a time is
    written to disk), unless the cache already holds its index.

    Attributes
    ----------
    passes
        How many times this object read the tarball (0 when the index was reused).
    index_dir
        The tarball's folder in the cache.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        cache_dir: str | os.PathLike | None = None,
        *,
        max_cache_bytes: int | None = None,
        progress: Callable[[int, int], object] | None = None,
    ) -> None:
        self.path = Path(path)
        self.progress = progress
        self.label = self.path.name
        if not self.path.is_file():
            raise PathNotFoundError(
                f"{self.path} does not exist or is not a file: check the path."
                if not self.path.exists()
                else f"{self.path} is a folder, not a tarball: give the .tar.gz file."
            )
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.max_cache_bytes = _max_cache_bytes(max_cache_bytes)
        self.passes = 0
        self._identity = self._stat()
        self.compression = self._detect()
        digest = hashlib.sha256(
            "\0".join(str(v) for v in self._identity).encode("utf-8", "surrogateescape")
        ).hexdigest()[:32]
        self._root = self.cache_dir / _INDEX_ROOT
        self.index_dir = self._root / digest
        self._key = digest
        manifest = self._load_manifest()
        if manifest is None:
            manifest = self._build_index()
        self._manifest = manifest
        self._members = {m["name"]: TarballMember(**m) for m in manifest["members"]}

    # -- public ----------------------------------------------------------------------------

    @property
    def members(self) -> list[TarballMember]:
        """The tarball's H5AD members, in the tarball's order."""
        return list(self._members.values())

    def member(self, name: str) -> TarballMember:
        """The record of the member ``name`` (its name in the tarball)."""
        try:
            return self._members[name]
        except KeyError:
            shown = ", ".join(list(self._members)[:_SHOWN])
            raise SourceFormatError(
                f"{self.label} has no H5AD member {name!r}; it has {len(self._members)}: "
                f"{shown}{', ...' if len(self._members) > _SHOWN else ''}."
            ) from None

    def stub(self, name: str) -> Path:
        """The stub H5AD of member ``name``: its ``obs``, ``var`` and ``uns``, no ``X``.

        Its root attributes ``refinewidgets_member`` (name), ``refinewidgets_member_size``,
        ``refinewidgets_x_shape``, ``refinewidgets_x_encoding``, ``refinewidgets_x_dtype`` and
        (sparse ``X``) ``refinewidgets_x_nnz`` describe the member and its ``X``.
        """
        path = self.index_dir / "stubs" / self.member(name).file
        if not path.is_file():
            raise SourceFormatError(
                f"The index of {self.label} in {self.index_dir} lost {path.name}: open the "
                "tarball again (or call clear(index=True) first) to rebuild it."
            )
        return path

    def extract(self, name: str) -> Path:
        """The full H5AD file of member ``name``, extracted into the cache if not already there.

        Reads the tarball from its start to that member. The file is written under a temporary
        name and renamed, so a reader never sees part of it.
        """
        return self.extract_many([name])[name]

    def extract_many(self, names: Iterable[str]) -> dict[str, Path]:
        """Extract several members in one read of the tarball; ``{name: path}``."""
        wanted = {name: self.member(name) for name in names}
        folder = self.index_dir / "members"
        paths = {name: folder / m.file for name, m in wanted.items()}
        missing = {}
        for name, m in wanted.items():
            if intact(paths[name], m):
                with contextlib.suppress(OSError):
                    os.utime(check_record(paths[name]))  # most recently used
                continue
            missing[name] = m
        if not missing:
            return paths
        if self._stat() != self._identity:
            raise SourceFormatError(
                f"{self.path} changed since it was indexed: open it again (BgeeTarball(path))."
            )
        needed = sum(m.size for m in missing.values())
        self._evict(keep=set(paths.values()), room=needed)
        for target in {paths[n].parent for n in missing}:
            try:
                target.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise unwritable(target, exc) from None
        stream = contextlib.closing(self._stream(stop_after=set(missing)))
        with stream as members:
            self._extract_from(members, missing, paths)
        if missing:
            raise SourceFormatError(
                f"{self.path} no longer holds {', '.join(missing)}: the tarball changed since it "
                "was indexed; open it again."
            )
        self._evict(keep=set(paths.values()), room=0)
        return paths

    def _extract_from(self, members, missing: dict, paths: dict) -> None:
        for info, tar in members:
            m = missing.get(info.name)
            if m is None or not info.isfile():
                continue
            if info.size != m.size:
                raise SourceFormatError(
                    f"{self.path}: {info.name} is {info.size:,} bytes, not {m.size:,} as when it "
                    "was indexed: the tarball changed; open it again."
                )
            with atomic_output(paths[info.name], overwrite=True) as tmp:
                if self._copy_member(tar, info, tmp) != m.digest:
                    raise SourceFormatError(
                        f"{self.path}: {info.name} holds other bytes than when it was indexed: "
                        "the tarball changed; open it again."
                    )
            record_check(paths[info.name], m)
            del missing[info.name]
            if not missing:
                return

    def clear(self, *, index: bool = False) -> None:
        """Remove this tarball's extracted members from the cache; with ``index=True`` its
        index too (this object can then no longer be used; open the tarball again)."""
        target = self.index_dir if index else self.index_dir / "members"
        shutil.rmtree(target, ignore_errors=True)

    def cached_bytes(self) -> int:
        """Bytes of extracted members in the whole cache (all tarballs)."""
        return sum(size for _, size, _ in self._cached_members())

    def __repr__(self) -> str:
        return f"BgeeTarball({str(self.path)!r}, {len(self._members)} members)"

    # -- the tarball -----------------------------------------------------------------------

    def _stat(self) -> tuple:
        """The tarball's identity (see :func:`~refinewidgets.io.refinebio.parsed_cache.file_identity`)."""
        from ..refinebio.parsed_cache import file_identity

        try:
            found = file_identity(self.path)
        except OSError as exc:
            raise SourceFormatError(f"Cannot read {self.path} ({exc.strerror or exc}).") from None
        return (
            found["path"],
            found["size"],  # second: the packed size the read caps compare with
            found["mtime_ns"],
            found["ctime_ns"],
            *found["inode"],
            found["edges"],
        )

    def _detect(self) -> str:
        """The tarball's compression, from its first bytes (and those of its first header)."""
        try:
            kind = tar_compression(self.path)
        except READ_ERRORS as exc:
            raise self._corrupt(exc) from None
        if kind is None:
            raise SourceFormatError(
                f"{self.path} is not a tar archive (neither a tar header, nor a gzip, bzip2 or "
                "xz stream holding one): Bgee's species tarballs are <Genus_species>_droplet_"
                "based_h5ad.tar.gz. Download it again, or open a single .h5ad file directly."
            )
        return kind

    # -- the index -------------------------------------------------------------------------

    def _load_manifest(self) -> dict | None:
        try:
            manifest = json.loads((self.index_dir / _MANIFEST).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        ok = (
            isinstance(manifest, dict)
            and manifest.get("format") == _FORMAT
            and manifest.get("version") == _VERSION
            and manifest.get("tarball") == list(self._identity)
            and isinstance(manifest.get("members"), list)
        )
        if not ok:
            return None
        fields = set(TarballMember.__dataclass_fields__)
        for m in manifest["members"]:
            if not isinstance(m, dict) or set(m) != fields:
                return None
            try:
                for part in PurePosixPath(m["file"]).parts:
                    check_name_part(part, "cached file name")
            except (SourceFormatError, TypeError):
                return None
        return manifest

    def _writable_root(self) -> None:
        try:
            self._root.mkdir(parents=True, exist_ok=True)
            probe = tempfile.mkdtemp(prefix=".probe.", dir=self._root)
            os.rmdir(probe)
        except OSError as exc:
            raise unwritable(self._root, exc) from None

    def _build_index(self) -> dict:
        self._writable_root()
        clean_stale_dirs(self._root)
        work = Path(
            tempfile.mkdtemp(
                prefix=f".{self._key}.{os.getpid()}.", suffix=".partial", dir=self._root
            )
        )
        try:
            records, others = self._index_into(work)
            if not records:
                shown = ", ".join(others[:_SHOWN]) + (", ..." if len(others) > _SHOWN else "")
                raise SourceFormatError(
                    f"{self.path} holds no .h5ad file"
                    + (f"; it holds {len(others)} other files: {shown}" if others else "")
                    + ". Bgee's droplet tarballs (<Genus_species>_droplet_based_h5ad.tar.gz) "
                    "hold one <Genus_species>_<EXP>_droplet_based.h5ad per experiment: check "
                    "that this is the right download."
                )
            manifest = {
                "format": _FORMAT,
                "version": _VERSION,
                "tarball": list(self._identity),
                "members": [asdict(r) for r in records],
            }
            (work / _MANIFEST).write_text(json.dumps(manifest, indent=1), "utf-8")
            self._publish(work)
        except RefineWidgetsError:
            raise
        except OSError as exc:
            raise unwritable(self._root, exc) from None
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return self._load_manifest() or manifest

    def _publish(self, work: Path) -> None:
        """Move the finished index folder into place (another process may have won the race)."""
        try:
            os.rename(work, self.index_dir)
            return
        except OSError:
            if self._load_manifest() is not None:
                return  # an equal index was published meanwhile
        # an unusable folder (a lost manifest, an older format) holds the name: replace it
        old = Path(
            tempfile.mkdtemp(
                prefix=f".{self._key}.{os.getpid()}.", suffix=".partial", dir=self._root
            )
        )
        os.rename(self.index_dir, old / "old")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(work, self.index_dir)

    def _index_into(self, work: Path) -> tuple[list[TarballMember], list[str]]:
        stubs = work / "stubs"
        stubs.mkdir()
        records: list[TarballMember] = []
        others: list[str] = []
        used: set[str] = set()
        tmp = work / ".member.tmp"
        with contextlib.closing(self._stream()) as stream:
            for info, tar in stream:
                self._index_member(info, tar, stubs, tmp, used, records, others)
        return records, others

    def _index_member(
        self,
        info: tarfile.TarInfo,
        tar: tarfile.TarFile,
        stubs: Path,
        tmp: Path,
        used: set[str],
        records: list[TarballMember],
        others: list[str],
    ) -> None:
        """Write the stub of one member (or note a file that is not a member)."""
        if not info.isfile():
            return
        base = PurePosixPath(info.name.replace("\\", "/")).name
        if not base.lower().endswith(".h5ad") or base.startswith("."):
            others.append(info.name)
            return
        if not _BASENAME.fullmatch(base):
            raise SourceFormatError(
                f"{self.label} holds {info.name!r}, a file name Bgee does not write (a base "
                "name of letters, digits, '.', '_' and '-' ending in .h5ad, at most 205 "
                "characters): it was refused. Rename the file and re-pack the tarball."
            )
        file = base
        n = 1
        while file.lower() in used:
            n += 1
            file = f"{n}/{base}"
        used.add(file.lower())
        digest = self._copy_member(tar, info, tmp)
        stub = stubs / file
        stub.parent.mkdir(parents=True, exist_ok=True)
        x = self._write_stub(info, tmp, stub)
        tmp.unlink()
        species, experiment = parse_file_name(base[: -len(".h5ad")])
        shape = x.get("shape") or (None, None)
        records.append(
            TarballMember(
                name=info.name,
                size=info.size,
                file=file,
                experiment=experiment,
                species=species,
                n_obs=shape[0] if len(shape) == 2 else None,
                n_vars=shape[1] if len(shape) == 2 else None,
                x_encoding=x.get("encoding"),
                digest=digest,
            )
        )

    def _write_stub(self, info: tarfile.TarInfo, member: Path, stub: Path) -> dict:
        try:
            src = h5py.File(member, "r")
        except OSError as exc:
            raise SourceFormatError(
                f"{self.label}: the member {info.name} is not a valid HDF5 (H5AD) file ({exc}): "
                "the tarball may be corrupt; download it again."
            ) from None
        with src:
            lacking = [g for g in ("obs", "var") if g not in src]
            if lacking:
                raise SourceFormatError(
                    f"{self.label}: the member {info.name} is an HDF5 file but not an H5AD file "
                    f"(no {' or '.join(lacking)} group; it holds {', '.join(list(src)[:_SHOWN])}). "
                    "Remove it from the tarball, or get the tarball again."
                )
            try:
                x = _x_info(src)
                with h5py.File(stub, "w") as out:
                    for key, value in src.attrs.items():
                        out.attrs[key] = value
                    for group in ("obs", "var", "uns"):
                        if group in src:
                            src.copy(src[group], out, group)
                    out.attrs["refinewidgets_member"] = info.name
                    out.attrs["refinewidgets_member_size"] = info.size
                    out.attrs["refinewidgets_tarball"] = self.label
                    if "shape" in x:
                        out.attrs["refinewidgets_x_shape"] = np.asarray(x["shape"], dtype=np.int64)
                    if "encoding" in x:
                        out.attrs["refinewidgets_x_encoding"] = x["encoding"]
                    if "dtype" in x:
                        out.attrs["refinewidgets_x_dtype"] = str(x["dtype"])
                    if "nnz" in x:
                        out.attrs["refinewidgets_x_nnz"] = x["nnz"]
            except (KeyError, ValueError, RuntimeError, TypeError) as exc:
                raise SourceFormatError(
                    f"{self.label}: the member {info.name} is a damaged H5AD file ({exc}): "
                    "download the tarball again."
                ) from None
            except OSError as exc:
                if stub.parent.is_dir() and os.access(stub.parent, os.W_OK):
                    raise SourceFormatError(
                        f"{self.label}: the member {info.name} is a damaged H5AD file ({exc}): "
                        "download the tarball again."
                    ) from None
                raise
        return x
