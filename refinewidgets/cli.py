"""The ``refinewidgets`` command: serve the app, build a dataset headless, describe a file.

``refinewidgets app [PATH ...] [--port N] [--no-browser] [--no-token] [--output-dir DIR]
[--cull-idle-seconds S] [--max-pages N]``
``refinewidgets build SPEC.json [--source PATH ...] -o dataset.zip``
``refinewidgets info PATH``
``refinewidgets demo [-o demo_dataset.zip]``
``refinewidgets search [TEXT] [--organism O] [--technology T] [--platform P] [--max N]``
``refinewidgets fetch refinebio EXP ... [--out DIR] [--email E] [--accept-terms]``
``refinewidgets fetch bgee SPECIES [EXP ...] [--out DIR] [--list]``
``refinewidgets cache list|prune [--all] [--older-than DAYS] [--dry-run]``

Errors are one ``error: ...`` line each (exit status 2), ours and the OS errors a user can cause
(a read-only or full disk, a folder where a file is expected, permission denied); ``--debug``
adds the traceback.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
import traceback
import warnings
from pathlib import Path

from .errors import (
    OutputExistsError,
    RefineWidgetsError,
    RefineWidgetsWarning,
    UnknownAccessionError,
)

__all__ = ["main"]


def _progress(enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=1, unit="step", file=sys.stderr, leave=False)


def _describe_result(res, out=None) -> None:
    out = out or sys.stdout
    meta = res.aggregated_metadata
    print(
        f"aggregate_by={res.aggregate_by} quantile_normalized={meta.get('quantile_normalized')} "
        f"scale_by={res.scale_by}: {meta.get('num_experiments')} experiment(s), "
        f"{meta.get('num_samples')} sample(s)",
        file=out,
    )
    for key in res:
        adata = res[key]
        info = adata.uns.get("refinewidgets", {})
        rows = "cells" if info.get("kind") == "cells" else "samples"
        cols = "transcripts" if info.get("kind") == "transcripts" else "genes"
        line = f"  {key}: {adata.n_vars} {cols} x {adata.n_obs} {rows}"
        report = info.get("gene_report") or {}
        if report:
            line += (
                f"; the {report.get('join')} join kept {report.get('kept')} of "
                f"{report.get('union')} genes (smallest sample {report.get('smallest_sample')}: "
                f"{report.get('smallest_sample_genes')} genes)"
            )
            if report.get("low_overlap"):
                line += " - LOW GENE OVERLAP: less than half of the smallest sample's genes"
        print(line, file=out)
    if len(res.filtered_samples):
        print(f"  filtered: {len(res.filtered_samples)} sample(s)", file=out)
        for acc, exp, reason in res.filtered_samples.itertuples(index=False):
            print(f"    {acc} ({exp}): {reason}", file=out)


def _check_output(path: str, overwrite: bool) -> None:
    """Refuse ``-o PATH`` before building, in the command line's words."""
    from .io.containers.atomic import check_output

    try:
        check_output(path, overwrite=overwrite)
    except OutputExistsError as exc:
        if Path(path).is_dir():
            raise
        raise OutputExistsError(
            f"{path} exists: choose another name with -o, or add --overwrite to replace it."
        ) from exc


def _cmd_build(args) -> int:
    from .core.build import build
    from .core.spec import Dataset
    from .io.catalog_open import open_catalog

    try:
        spec = json.loads(Path(args.spec).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RefineWidgetsError(
            f"{args.spec} does not exist: give the path of a dataset spec JSON file."
        ) from None
    except IsADirectoryError:
        raise RefineWidgetsError(
            f"{args.spec} is a folder: give the path of a dataset spec JSON file."
        ) from None
    except UnicodeDecodeError as exc:
        raise RefineWidgetsError(
            f"{args.spec} is not UTF-8 text (byte {exc.start}): a dataset spec is JSON, as "
            "written by rw.Dataset(...).to_json()."
        ) from None
    except json.JSONDecodeError as exc:
        raise RefineWidgetsError(f"{args.spec} is not valid JSON ({exc}).") from None
    dataset = Dataset.from_dict(spec)
    _check_output(args.output, args.overwrite)
    catalog = open_catalog(*args.source)
    missing = [e for e in dataset.data if e not in catalog.experiment_ids]
    if missing:
        where = ", ".join(args.source) if args.source else "the bundled demo (no --source given)"
        raise UnknownAccessionError(
            f"Experiment(s) not in the sources: {', '.join(missing)} (opened: {where}). Add the "
            "download that holds them with --source PATH (a refine.bio zip or folder, a Bgee "
            ".h5ad file or tarball, or a folder of them; repeatable), or fetch them first with "
            "`refinewidgets fetch refinebio ACCESSION ...`."
        )
    result = build(dataset, catalog, progress=_progress(not args.quiet))
    path = result.write_zip(
        args.output, overwrite=args.overwrite, progress=_progress(not args.quiet)
    )
    _describe_result(result)
    print(f"wrote {path}")
    return 0


def _cmd_info(args) -> int:
    from .io.catalog_open import TARBALL_SUFFIXES, open_catalog
    from .io.refinebio.download import AGGREGATED
    from .io.refinebio.zip import read_zip

    path = Path(args.path)
    if path.suffix.lower() == ".h5ad" or path.name.lower().endswith(TARBALL_SUFFIXES):
        cat = open_catalog(path)
        print(cat)
        _describe_cells(cat)
        return 0
    if path.is_file() or (path / AGGREGATED).exists():
        res = read_zip(path)
        print(f"{path}: a refine.bio download")
        _describe_result(res)
        return 0
    cat = open_catalog(path)
    print(cat)
    cols = ["technology", "organisms", "num_samples", "num_processed", "source", "title"]
    print(cat.experiments[cols].to_string(max_colwidth=50))
    _describe_cells(cat)
    return 0


def _describe_cells(cat) -> None:
    """Per single-cell experiment: its files, libraries, cells and cells per cell type."""
    for experiment in cat.experiments.index:
        if not cat.is_single_cell(experiment):
            continue
        cells = cat.cells(experiment)
        record = cat.experiment_record(experiment)
        types = cells["cell_type"].astype(str).replace("", "(not annotated)").value_counts()
        shown = ", ".join(f"{name} {count:,}" for name, count in types.head(12).items())
        more = f", ... ({len(types)} cell types)" if len(types) > 12 else ""
        print(
            f"{experiment} ({', '.join(record.get('organisms') or ())}): "
            f"{cells['library'].nunique():,} libraries, {len(cells):,} cells; "
            f"cell types: {shown}{more}"
        )


def _cmd_app(args) -> int:
    from .app import serve

    return serve(
        args.paths,
        port=args.port,
        open_browser=not args.no_browser,
        token=not args.no_token,
        output_dir=args.output_dir,
        cull_idle_seconds=args.cull_idle_seconds,
        max_pages=args.max_pages,
        pool_size=args.pool_size,
        theme=args.theme,
    )


def _cmd_demo(args) -> int:
    from .core.build import build
    from .core.spec import SINGLE_CELL, Dataset
    from .io.catalog_open import open_catalog

    _check_output(args.output, args.overwrite)
    catalog = open_catalog()
    print(catalog)
    experiments = catalog.experiments
    print(
        experiments[["technology", "organisms", "num_samples", "title"]].to_string(max_colwidth=60)
    )
    dataset = Dataset(
        {
            acc: ["ALL"]
            for acc in experiments.index
            if experiments.loc[acc, "technology"] != SINGLE_CELL
        },
        aggregate_by="SPECIES",
        scale_by="STANDARD",
    )
    print("\nBuilding:\n" + dataset.to_code())
    result = build(dataset, catalog, progress=_progress(not args.quiet))
    path = result.write_zip(args.output, overwrite=args.overwrite)
    _describe_result(result)
    print(f"wrote {path}")
    return 0


def _say(text: str) -> None:
    """A line on stderr saying what the command is doing (before it waits for a service)."""
    print(text, file=sys.stderr, flush=True)


def _cmd_search(args) -> int:
    from .io.remote.config import api_address

    _say(f"Searching refine.bio ({api_address()[0]}) ...")  # before the client's imports
    from .io.remote.refinebio import RefineBio

    found = RefineBio().search(
        args.text,
        organism=args.organism,
        technology=args.technology,
        platform=args.platform,
        max_results=args.max,
    )
    print(f"{found.count} experiment(s) match; showing {len(found.experiments)}")
    if len(found.experiments):
        cols = [
            c
            for c in ("technology", "organism_names", "num_downloadable_samples", "title")
            if c in found.experiments
        ]
        print(found.experiments[cols].to_string(max_colwidth=60))
    for name, counts in found.facets.items():
        shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
        print(f"{name}: {shown or '-'}")
    return 0


def _cmd_fetch(args) -> int:
    if args.service == "refinebio":
        from .io.remote.config import api_address

        if not args.quiet:
            shown = ", ".join(args.names) or "a token"
            _say(
                f"Asking refine.bio ({api_address()[0]}) for {shown} (files already in the "
                "cache are reused) ..."
            )
        from .io.remote.refinebio import RefineBio

        client = RefineBio(token=args.token, email=args.email)
        if args.accept_terms and client.token(required=False) is None:
            client.create_token(accept_terms=True)
            print(f"created and saved a refine.bio token (terms accepted) in {_config_path()}")
        if not args.names:
            raise RefineWidgetsError("Give at least one experiment accession to fetch.")
        if not args.quiet:
            _say_what_refinebio_includes(client, args.names, args.refresh)
        paths = client.fetch(
            args.names,
            out=args.out,
            refresh=args.refresh,
            poll_interval=args.poll_interval,
            timeout=args.timeout,
            progress=not args.quiet,
        )
    else:
        if not args.names:
            raise RefineWidgetsError("Give a species (such as Danio_rerio) to fetch from Bgee.")
        if not args.quiet:
            _say(f"Asking Bgee for {' '.join(args.names)} ...")  # before the client's imports
        from .io.remote.bgee import Bgee

        client = Bgee()
        species, experiments = args.names[0], args.names[1:]
        if args.list:
            table = client.list_experiments(species)
            print(table.to_string(index=False) if len(table) else "no experiment file listed")
            if table.attrs.get("tarball"):
                print(
                    f"(the species tarball holds all of them: refinewidgets fetch bgee {species})"
                )
            return 0
        paths = client.fetch(
            species, experiments, out=args.out, refresh=args.refresh, progress=not args.quiet
        )
    for path in paths:
        print(path)
    return 0


def _say_what_refinebio_includes(client, names, refresh: bool) -> None:
    """Before a fetch: the samples refine.bio will leave out of each download to come (its
    ``["ALL"]`` holds only processed samples of organisms with a QN target)."""
    from .io.remote.errors import ResponseFormatError

    for acc in dict.fromkeys(names):
        if not refresh and client.cached_download(acc) is not None:
            continue
        try:
            table = client.included_samples(acc)
        except ResponseFormatError as exc:  # the fetch itself may still work: say and go on
            _say(f"Cannot tell in advance which samples of {acc} refine.bio will include: {exc}")
            continue
        left = table[~table["included"]]
        if len(left):
            shown = "; ".join(f"{s}: {r}" for s, r in list(left["reason"].items())[:3])
            more = f" (and {len(left) - 3} more)" if len(left) > 3 else ""
            _say(
                f"refine.bio will put {len(table) - len(left)} of the {len(table)} samples of "
                f"{acc} in its download; left out: {shown}{more}."
            )


def _config_path():
    from .io.remote.config import config_path

    return config_path()


def _cmd_cache(args) -> int:
    from .io.remote.cache import DownloadCache

    cache = DownloadCache(args.cache_dir)
    if args.action == "list":
        entries = list(cache.entries())
        for e in entries:
            state = "" if e.complete else "  (unfinished)"
            print(f"{e.size:>14,}  {e.downloaded_at or '-':20}  {e.path}{state}")
        print(f"{len(entries)} file(s), {sum(e.size for e in entries):,} bytes in {cache.root}")
        return 0
    removed = cache.prune(
        everything=args.all, older_than_days=args.older_than, dry_run=args.dry_run
    )
    verb = "would remove" if args.dry_run else "removed"
    for path in removed:
        print(f"{verb} {path}")
    print(f"{verb} {len(removed)} file(s) from {cache.root}")
    return 0


def _positive_days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        days = float("nan")
    if not days > 0 or days == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days above 0 (e.g. 30)")
    return days


def _add_remote_commands(sub) -> None:
    s = sub.add_parser("search", help="search refine.bio's experiments (needs the network)")
    s.add_argument("text", nargs="?", default=None, help="words to search for")
    s.add_argument("--organism", action="append", help="e.g. HOMO_SAPIENS (repeatable)")
    s.add_argument("--technology", action="append", help="microarray or rna-seq (repeatable)")
    s.add_argument("--platform", action="append", help="a platform accession (repeatable)")
    s.add_argument("--max", type=int, default=25, help="experiments to show (default %(default)s)")
    s.set_defaults(func=_cmd_search)

    f = sub.add_parser("fetch", help="download refine.bio experiments or Bgee files into the cache")
    f.add_argument("service", choices=["refinebio", "bgee"])
    f.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="refinebio: experiment accessions; bgee: a species (Danio_rerio), then experiments",
    )
    f.add_argument("--out", metavar="DIR", help="also copy the files into this folder")
    f.add_argument("--refresh", action="store_true", help="download again even if cached")
    f.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    f.add_argument("--email", help="refinebio: your e-mail (default $REFINEBIO_EMAIL)")
    f.add_argument("--token", help="refinebio: an API token (default $REFINEBIO_TOKEN)")
    f.add_argument(
        "--accept-terms",
        action="store_true",
        help="refinebio: create a token if none is set, accepting refine.bio's terms of use "
        "(https://www.refine.bio/terms) and privacy policy",
    )
    f.add_argument(
        "--poll-interval", type=float, default=10.0, help="refinebio: seconds between polls"
    )
    f.add_argument(
        "--timeout", type=float, default=None, help="refinebio: give up waiting after S seconds"
    )
    f.add_argument("--list", action="store_true", help="bgee: list the species' experiments")
    f.set_defaults(func=_cmd_fetch)

    c = sub.add_parser("cache", help="list or prune the download cache")
    c.add_argument("action", choices=["list", "prune"])
    c.add_argument("--cache-dir", default=None, help="default: $REFINEWIDGETS_CACHE or the user's")
    c.add_argument("--all", action="store_true", help="prune: remove every download")
    c.add_argument(
        "--older-than",
        type=_positive_days,
        default=None,
        metavar="DAYS",
        help="prune: also remove downloads made more than DAYS days ago",
    )
    c.add_argument("--dry-run", action="store_true", help="prune: only say what would go")
    c.set_defaults(func=_cmd_cache)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="refinewidgets",
        description="Assemble refine.bio-style gene-expression datasets: serve the app, build a "
        "dataset headless, describe a file, search and fetch from refine.bio and Bgee.",
        epilog="Run `refinewidgets COMMAND --help` for a command's options.",
    )
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback of an error, not just its line"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_app_command(sub)
    _add_file_commands(sub)
    _add_remote_commands(sub)
    return parser


def _add_app_command(sub) -> None:
    """``refinewidgets app``: serve the builder (Voila)."""
    a = sub.add_parser("app", help="serve the dataset builder as a web app (Voila)")
    a.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="refine.bio zips/folders, Bgee .h5ad files or folders of them (default: the demo)",
    )
    a.add_argument("--port", type=int, default=None, help="port to listen on (default: a free one)")
    a.add_argument(
        "--no-browser", action="store_true", help="do not open a browser; just print the URL"
    )
    a.add_argument(
        "--no-token",
        action="store_true",
        help="serve without a token: anyone who can reach the port can use the app",
    )
    a.add_argument(
        "--output-dir",
        metavar="DIR",
        default=None,
        help="the existing folder the app saves into (default: the current folder)",
    )
    a.add_argument(
        "--cull-idle-seconds",
        type=int,
        default=120,
        metavar="S",
        help="shut down kernels idle with no page connected for S seconds (0: never; "
        "default %(default)s)",
    )
    a.add_argument(
        "--max-pages",
        type=int,
        default=None,
        metavar="N",
        help="pages open at once, each with its own kernel; one more takes the kernel of a "
        "page gone or is asked to wait (0: no bound; default $REFINEWIDGETS_APP_MAX_PAGES or 4)",
    )
    a.add_argument(
        "--pool-size",
        type=int,
        default=4,
        metavar="N",
        help="kernels kept ready with the app loaded, so that a page opens at once "
        "(at most --max-pages; 0: start one per page; default %(default)s)",
    )
    a.add_argument(
        "--theme",
        choices=("auto", "light", "dark"),
        default="auto",
        help="the page's theme; auto follows the browser's light or dark preference (a page "
        "can also ask for ?theme=dark; default %(default)s)",
    )
    a.set_defaults(func=_cmd_app)


def _add_file_commands(sub) -> None:
    """``refinewidgets build``, ``info`` and ``demo``: datasets from local files."""
    b = sub.add_parser(
        "build", help="build a dataset from a spec JSON file and write the refine.bio zip"
    )
    b.add_argument("spec", help="dataset spec JSON (rw.Dataset(...).to_json())")
    b.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="PATH",
        help="a refine.bio zip/folder, Bgee .h5ad or folder of them (repeatable; default: the demo)",
    )
    b.add_argument("-o", "--output", required=True, help="the zip to write")
    b.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_cmd_build)

    i = sub.add_parser("info", help="what a zip, H5AD file or folder holds")
    i.add_argument(
        "path",
        help="a refine.bio zip or folder, a Bgee .h5ad file or species tarball, or a folder of them",
    )
    i.set_defaults(func=_cmd_info)

    d = sub.add_parser(
        "demo", help="build the bundled demo (by species, QN, Z-score) and write its zip"
    )
    d.add_argument(
        "-o", "--output", default="demo_dataset.zip", help="the zip to write (default %(default)s)"
    )
    d.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=_cmd_demo)


_OS_HINTS = {
    errno.EROFS: "the file system is read-only: write somewhere else",
    errno.ENOSPC: "no space left on the disk: free some space or write somewhere else",
    errno.EDQUOT: "disk quota exceeded: free some space or write somewhere else",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EISDIR: "a folder, where a file is expected",
    errno.ENOTDIR: "a file, where a folder is expected",
    errno.ENOENT: "no such file or folder",
    errno.EEXIST: "it exists already",
}


def os_error_message(exc: OSError) -> str:
    """One line for an OS error: the file it concerns and what to do about it.

    Examples
    --------
    >>> os_error_message(OSError(errno.EROFS, "Read-only file system", "/mnt/cd/out.zip"))
    '/mnt/cd/out.zip: the file system is read-only: write somewhere else'
    """
    what = _OS_HINTS.get(exc.errno) or exc.strerror or str(exc) or type(exc).__name__
    names = [n for n in (exc.filename, exc.filename2) if n is not None]
    return f"{' -> '.join(str(n) for n in names)}: {what}" if names else what


def _scrubbed(text: str, args) -> str:
    """``text`` without the refine.bio token (the argument, the environment, the config file):
    error lines are pasted into issues and chats."""
    import os

    secrets = [getattr(args, "token", None), os.environ.get("REFINEBIO_TOKEN")]
    if "token" in text.lower() or any(s and s in text for s in secrets):
        try:
            from .io.remote.config import read_config

            secrets.append(read_config().get("token"))
        except (RefineWidgetsError, OSError):
            pass
    for secret in secrets:
        if isinstance(secret, str) and len(secret.strip()) >= 4:
            text = text.replace(secret.strip(), "[token]")
    return text


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for an error it reports in one line)."""
    args = _parser().parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RefineWidgetsWarning)
        try:
            status = args.func(args)
        except RefineWidgetsError as exc:
            if args.debug:
                traceback.print_exc()
            print(f"error: {_scrubbed(str(exc), args)}", file=sys.stderr)
            status = 2
        except OSError as exc:  # read-only or full disk, permission denied, a folder...
            if args.debug:
                traceback.print_exc()
            print(f"error: {os_error_message(exc)}", file=sys.stderr)
            status = 2
        finally:
            for w in caught:  # ours as one line each; anything else as Python shows it
                if issubclass(w.category, RefineWidgetsWarning):
                    print(f"warning: {_scrubbed(str(w.message), args)}", file=sys.stderr)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
