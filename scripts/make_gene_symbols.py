"""Derive the human gene-symbol table shipped in refinewidgets/data/gene_symbols/ (offline).

    apt-get install r-bioc-org.hs.eg.db   # Bioconductor's org.Hs.eg.db, as Debian ships it
    python scripts/make_gene_symbols.py

Reads, with R, every Ensembl gene id of org.Hs.eg.db (``org.Hs.egENSEMBL``) and the symbol of its
Entrez gene (``org.Hs.egSYMBOL``), and writes ``HOMO_SAPIENS.tsv.gz``: comment lines naming the
annotation release, then ``ensembl_id<TAB>symbol``, one row per Ensembl id. An Ensembl id that
org.Hs.eg.db maps to several Entrez genes with different symbols gets them all, sorted and
joined by ``;``. Gzip without a time stamp, so the same release gives the same bytes.
"""

from __future__ import annotations

import gzip
import io
import subprocess
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "refinewidgets" / "data" / "gene_symbols" / "HOMO_SAPIENS.tsv.gz"

R_EXPORT = """
suppressMessages(library(org.Hs.eg.db))
m <- metadata(org.Hs.eg.db)
meta <- setNames(m$value, m$name)
pairs <- merge(toTable(org.Hs.egENSEMBL), toTable(org.Hs.egSYMBOL), by = "gene_id")
write.table(pairs[, c("ensembl_id", "symbol")], file = "{pairs}", sep = "\\t",
            quote = FALSE, row.names = FALSE)
writeLines(c(as.character(packageVersion("org.Hs.eg.db")), meta[["EGSOURCEDATE"]],
             meta[["ENSOURCEDATE"]]), "{meta}")
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pairs_path, meta_path = Path(tmp) / "pairs.tsv", Path(tmp) / "meta.txt"
        script = R_EXPORT.replace("{pairs}", str(pairs_path)).replace("{meta}", str(meta_path))
        subprocess.run(["Rscript", "-e", script], check=True)
        pairs = pd.read_csv(pairs_path, sep="\t", dtype=str, keep_default_na=False)
        version, eg_date, ens_date = meta_path.read_text().split("\n")[:3]
    table = (
        pairs.drop_duplicates()
        .groupby("ensembl_id")["symbol"]
        .agg(lambda s: ";".join(sorted(set(s))))
        .sort_index()
    )
    release = f"org.Hs.eg.db {version} (Bioconductor; Entrez Gene {eg_date}, Ensembl {ens_date})"
    text = io.StringIO()
    text.write("# refinewidgets gene symbols of HOMO_SAPIENS: Ensembl gene id -> symbol\n")
    text.write(f"# release: {release}\n")
    text.write("# made by scripts/make_gene_symbols.py from Debian's r-bioc-org.hs.eg.db\n")
    text.write("ensembl_id\tsymbol\n")
    for ensembl_id, symbol in table.items():
        text.write(f"{ensembl_id}\t{symbol}\n")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(text.getvalue().encode("utf-8"))
    several = int(table.str.contains(";").sum())
    print(f"{OUT}: {len(table):,} Ensembl ids ({several} with several symbols), {release}")


if __name__ == "__main__":
    main()
