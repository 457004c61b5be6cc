"""Build the trimmed Cell Ontology (CL) and UBERON tables refinewidgets ships.

The terms come from the ontology files that the PyPI package ``cellxgene-ontology-guide``
(CZ CELLxGENE's ontology package, MIT licence) bundles: one JSON file per ontology release,
``{term id: {"label", "ancestors": {id: distance}, "deprecated", ...}}``, zstandard-compressed.
The package itself is about 100 MB (every release of a dozen ontologies), too big to depend on
for two ontologies, so this script keeps, of the release the package names as latest, each
non-deprecated term's id, label and direct parents (its ancestors at distance 1), one gzipped
TSV per ontology (CL about 60 KB, UBERON about 300 KB), with a first comment line recording the
release and where it came from. Descendants are the transitive closure of the parents (what
:mod:`refinewidgets.core.ontology` computes); a handful of the package's ancestors reached only
through other ontologies (GO terms) are not kept.

Usage (the wheel from PyPI, no install needed)::

    pip download --no-deps cellxgene-ontology-guide==1.11.1 -d /tmp/onto
    python scripts/make_ontology_tables.py /tmp/onto/cellxgene_ontology_guide-1.11.1-py3-none-any.whl

Decompressing needs the ``zstd`` command (Debian package ``zstd``) or the ``zstandard`` module.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "refinewidgets" / "data" / "ontology"
ONTOLOGIES = ("CL", "UBERON")
DATA = "cellxgene_ontology_guide/data/"


def _unzstd(raw: bytes) -> bytes:
    try:
        import zstandard
    except ImportError:
        if shutil.which("zstd") is None:
            sys.exit("need the zstd command (apt-get install zstd) or the zstandard module")
        return subprocess.run(["zstd", "-dcq"], input=raw, capture_output=True, check=True).stdout
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()


def tables(wheel: Path) -> dict[str, tuple[str, list[tuple[str, str, list[str]]]]]:
    """``{ontology: (version, [(id, label, parents)])}`` from the package's wheel."""
    match = re.search(r"cellxgene_ontology_guide-([^-]+)-", wheel.name)
    package = f"cellxgene-ontology-guide {match.group(1) if match else '?'}"
    out = {}
    with zipfile.ZipFile(wheel) as z:
        latest = json.loads(z.read(DATA + "latest_ontology_info.json"))["ontologies"]
        for name in ONTOLOGIES:
            version = latest[name]["version"]
            terms = json.loads(_unzstd(z.read(f"{DATA}{name}-ontology-{version}.json.zst")))
            rows = []
            for term, info in sorted(terms.items()):
                if info.get("deprecated") or not term.startswith(f"{name}:"):
                    continue
                parents = sorted(
                    a
                    for a, distance in (info.get("ancestors") or {}).items()
                    if distance == 1 and a.startswith(f"{name}:")
                )
                label = " ".join(str(info.get("label") or "").split())
                rows.append((term, label, parents))
            out[name] = (f"{version} ({package}, PyPI)", rows)
    return out


def write(name: str, version: str, rows, folder: Path = OUT) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.tsv.gz"
    text = io.StringIO()
    text.write(f"# {name} {version}\n")
    text.write("id\tlabel\tparents\n")
    for term, label, parents in rows:
        text.write(f"{term}\t{label}\t{';'.join(parents)}\n")
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(text.getvalue().encode("utf-8"))
    tmp.replace(path)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help="a cellxgene_ontology_guide-*.whl from PyPI")
    args = parser.parse_args(argv)
    for name, (version, rows) in tables(args.wheel).items():
        path = write(name, version, rows)
        print(
            f"{path.relative_to(ROOT)}: {len(rows)} terms, {path.stat().st_size:,} bytes, {version}"
        )


if __name__ == "__main__":
    main()
