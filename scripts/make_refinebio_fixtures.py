"""Regenerate the small refine.bio download fixtures in tests/data/refinebio/ (seeded, offline).

    python scripts/make_refinebio_fixtures.py

The files are laid out exactly as refine.bio's own workers write them. This script does NOT use
the refinewidgets package: it re-implements, with the standard library and pandas, the code
paths of refine.bio's smasher (workers/data_refinery_workers/processors/smasher.py and
smashing_utils.py: compile_metadata, write_non_data_files, get_tsv_columns, get_tsv_row_data,
write_tsv_json, _smash_key), of create_compendia.py (root ``<ORG>.tsv``) and of
create_quantpendia.py (``<EXP>/<sample>_quant.sf``), and of ``shutil.make_archive``'s member
order, with fixed zip timestamps so that two runs give byte-identical files.

Value encoding (tests decode it): with ``s = int(trailing digits of the sample accession) % 1000``
and ``g = int(trailing digits of the gene id) % 1000``, every matrix value is ``s + g / 1000``
(float32 in smasher matrices, float64 in the compendium). In quant.sf files, for transcript
``ENST00000000TTT.v`` (``t = TTT % 1000``): NumReads = ``s + t/1000``, TPM = NumReads / 10,
Length = ``1000 + t``, EffectiveLength = ``1000 + t - 50 - s % 7``.

tests/data/refinebio/README.md is written by this script too, from the same data.
"""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
import tempfile
import zipfile
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "refinebio"

CREATED_AT = "2024-01-01T00:00:00"  # timezone.now().strftime("%Y-%m-%dT%H:%M:%S"), frozen
ZIP_DATE_TIME = (2024, 1, 1, 0, 0, 0)
MAX_FIXTURE_BYTES = 30_000

FILTERED_REASON = "This sample did not have a processed file associated with it in our database."

# Short stand-ins for the files refine.bio copies into every download (the real LICENSE is 17 KB).
README_DATASET = (
    "# refine.bio Aggregated Dataset\n\nThis is a refine.bio dataset.\n\n"
    "(Test fixture: abbreviated copy of refine.bio's workers/README_DATASET.md.)\n"
)
README_NORMALIZED = (
    "# refine.bio Normalized Compendium\n\nThis is a refine.bio normalized compendium.\n\n"
    "(Test fixture: abbreviated copy of refine.bio's workers/README_NORMALIZED.md.)\n"
)
README_QUANT = (
    "# refine.bio RNA-Seq Sample Compendium\n\nThis is a refine.bio RNA-seq sample compendium.\n\n"
    "(Test fixture: abbreviated copy of refine.bio's workers/README_QUANT.md.)\n"
)
LICENSE_DATASET = (
    "THE WORK (AS DEFINED BELOW) IS PROVIDED UNDER THE TERMS OF THIS CREATIVE COMMONS PUBLIC "
    'LICENSE ("CCPL" OR "LICENSE").\n\n'
    "(Test fixture: abbreviated copy of refine.bio's workers/LICENSE_DATASET.txt.)\n"
)

PROC_AFFY = {"id": 15, "name": "Affymetrix SCAN", "version": "v1.35.2"}
PROC_TXIMPORT = {"id": 23, "name": "Tximport", "version": "v1.35.2"}
PROC_SALMON = {"id": 22, "name": "Salmon Quant", "version": "v1.35.2"}

PLATFORM_HUGENE = "Affymetrix Human Gene 1.0 ST Array (hugene10st)"
PLATFORM_U133 = "Affymetrix Human Genome U133 Plus 2.0 Array (hgu133plus2)"
PLATFORM_MOE = "Affymetrix Mouse Gene 1.0 ST Array (mogene10st)"
PLATFORM_HISEQ = "Illumina HiSeq 2500"
PLATFORM_NEXTSEQ = "NextSeq 500"


# --------------------------------------------------------------------------------------------
# The encoding


def trailing_int(accession: str) -> int:
    """Trailing digits of an accession or id (``GSM1237810`` -> 1237810)."""
    m = re.search(r"(\d+)$", accession)
    if m is None:
        raise ValueError(f"{accession!r} does not end in digits")
    return int(m.group(1))


def s_of(sample: str) -> int:
    return trailing_int(sample) % 1000


def g_of(gene: str) -> int:
    return trailing_int(gene) % 1000


def t_of(transcript: str) -> int:
    return trailing_int(transcript.split(".", 1)[0]) % 1000


def encoded(sample: str, gene: str) -> float:
    return s_of(sample) + g_of(gene) / 1000


def human_gene(g: int) -> str:
    return f"ENSG00000000{g:03d}"


def mouse_gene(g: int) -> str:
    return f"ENSMUSG00000000{g:03d}"


# --------------------------------------------------------------------------------------------
# Database stand-ins: Sample / Experiment rows and their to_metadata_dict()


def source_url(acc: str, db: str, experiment: str) -> str:
    if db == "GEO":
        return f"ftp://ftp.ncbi.nlm.nih.gov/geo/samples/{acc[:-3]}nnn/{acc}/suppl/{acc}.CEL.gz"
    if db == "ARRAY_EXPRESS":
        return f"https://www.ebi.ac.uk/arrayexpress/files/{experiment}/{experiment}.raw.1.zip"
    return f"ftp://ftp.sra.ebi.ac.uk/vol1/fastq/{acc[:6]}/{acc}/{acc}_1.fastq.gz"


def make_sample(
    acc: str,
    experiment: str,
    *,
    title: str,
    organism: str,
    db: str,
    technology: str,
    platform: str,
    processor: dict,
    annotations: list | None = None,
    attributes: list | None = None,
    **fields,
) -> dict:
    """A Sample row. ``attributes``: MetaSRA SampleAttribute rows ``(name, value, unit)``."""
    row = {
        "accession_code": acc,
        "experiment": experiment,
        "title": title,
        "organism": organism,
        "source_database": db,
        "source_archive_url": source_url(acc, db, experiment),
        "technology": technology,
        "pretty_platform": platform,
        "processor": processor,
        "annotations": annotations or [],
        "attributes": attributes or [],
        "has_raw": True,
        "age": None,
    }
    for name in (
        "sex",
        "specimen_part",
        "genetic_information",
        "disease",
        "disease_stage",
        "cell_line",
        "treatment",
        "race",
        "subject",
        "compound",
        "time",
        "developmental_stage",
    ):
        row[name] = ""
    unknown = set(fields) - set(row)
    if unknown:
        raise TypeError(f"unknown sample fields {sorted(unknown)}")
    row.update(fields)
    if row["age"] is not None:  # DecimalField(max_digits=8, decimal_places=3): Decimal("54.000")
        row["age"] = Decimal(row["age"]).quantize(Decimal("0.001"))
    return row


def to_metadata_dict(sample: dict, with_computed_file: bool) -> dict:
    """Sample.to_metadata_dict(computed_file): same keys, same order."""
    md = {}
    md["refinebio_title"] = sample["title"]
    md["refinebio_accession_code"] = sample["accession_code"]
    md["refinebio_organism"] = sample["organism"]
    md["refinebio_source_database"] = sample["source_database"]
    md["refinebio_source_archive_url"] = sample["source_archive_url"]
    md["refinebio_sex"] = sample["sex"]
    md["refinebio_age"] = sample["age"] or ""  # a DecimalField(decimal_places=3), or ""
    md["refinebio_specimen_part"] = sample["specimen_part"]
    md["refinebio_genetic_information"] = sample["genetic_information"]
    md["refinebio_disease"] = sample["disease"]
    md["refinebio_disease_stage"] = sample["disease_stage"]
    md["refinebio_cell_line"] = sample["cell_line"]
    md["refinebio_treatment"] = sample["treatment"]
    md["refinebio_race"] = sample["race"]
    md["refinebio_subject"] = sample["subject"]
    md["refinebio_compound"] = sample["compound"]
    md["refinebio_time"] = sample["time"]
    md["refinebio_platform"] = sample["pretty_platform"]
    md["refinebio_processed"] = sample["has_raw"]
    md["refinebio_annotations"] = [dict(a) for a in sample["annotations"]]
    md["refinebio_developmental_stage"] = sample["developmental_stage"]
    if with_computed_file:
        md["refinebio_processor_id"] = sample["processor"]["id"]
        md["refinebio_processor_name"] = sample["processor"]["name"]
        md["refinebio_processor_version"] = sample["processor"]["version"]
    return md


def make_experiment(
    acc: str, *, title: str, organisms: list, technology: str, db_samples: list, **fields
) -> dict:
    """An Experiment row. ``db_samples``: all its samples in refine.bio's DB, in DB order."""
    row = {
        "accession_code": acc,
        "title": title,
        "organisms": organisms,
        "technology": technology,
        "db_samples": db_samples,
        "description": f"Description of {acc}.",
        "protocol_description": "",
        "submitter_institution": "",
        "has_publication": False,
        "publication_title": "",
        "publication_doi": "",
        "pubmed_id": "",
        "source_first_published": "2017-03-14T00:00:00",
        "source_last_modified": "2019-05-02T00:00:00",
    }
    unknown = set(fields) - set(row)
    if unknown:
        raise TypeError(f"unknown experiment fields {sorted(unknown)}")
    row.update(fields)
    return row


def experiment_metadata_dict(exp: dict) -> dict:
    """Experiment.to_metadata_dict(): same keys, same order."""
    md = {}
    md["title"] = exp["title"]
    md["accession_code"] = exp["accession_code"]
    md["organisms"] = list(exp["organisms"])
    md["sample_accession_codes"] = list(exp["db_samples"])
    md["description"] = exp["description"]
    md["protocol_description"] = exp["protocol_description"]
    md["technology"] = exp["technology"]
    md["submitter_institution"] = exp["submitter_institution"]
    md["has_publication"] = exp["has_publication"]
    md["publication_title"] = exp["publication_title"]
    md["publication_doi"] = exp["publication_doi"]
    md["pubmed_id"] = exp["pubmed_id"]
    md["source_first_published"] = exp["source_first_published"]
    md["source_last_modified"] = exp["source_last_modified"]
    return md


# --------------------------------------------------------------------------------------------
# Writers (smashing_utils.py)


def dump_json(obj, path: Path) -> None:
    """simplejson.dump(obj, f, indent=4, sort_keys=True): Decimals written as numbers (54.000)."""

    def mark(o):
        if isinstance(o, Decimal):
            return f"@@DECIMAL@@{o}@@"
        if isinstance(o, dict):
            return {k: mark(v) for k, v in o.items()}
        if isinstance(o, list):
            return [mark(v) for v in o]
        return o

    text = json.dumps(mark(obj), indent=4, sort_keys=True)
    text = re.sub(r'"@@DECIMAL@@([-0-9.]+)@@"', r"\1", text)
    # newline="\n": refine.bio runs on Linux, so no newline translation happens on write.
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def get_experiment_accession(acc: str, dataset_data: dict) -> str:
    for experiment_accession, samples in dataset_data.items():
        if acc in samples:
            return experiment_accession
    return ""


def _add_annotation_column(columns: set, name: str) -> None:
    if not name.startswith("refinebio_"):
        columns.add(name)


def _add_annotation_value(row: dict, name: str, value) -> None:
    if name.startswith("refinebio_"):
        return  # refine.bio logs "Annotation value skipped"
    if name not in row:
        row[name] = value  # first value wins


def get_tsv_row_data(md: dict, dataset_data: dict, attributes: dict) -> dict:
    acc = md.get("refinebio_accession_code", "")
    ae = md.get("refinebio_source_database", "") == "ARRAY_EXPRESS"
    geo = md.get("refinebio_source_database", "") == "GEO"
    row = {}
    for key, value in md.items():
        if key != "refinebio_annotations":
            row[key] = value
            continue
        for annotation in value:
            for akey, avalue in annotation.items():
                if ae and akey == "characteristic":
                    for pair in avalue:
                        if "category" in pair and "value" in pair:
                            _add_annotation_value(
                                row, "characteristic_" + pair["category"], pair["value"]
                            )
                elif ae and akey == "variable":
                    # refine.bio names the row key variable_<name> but the COLUMN
                    # characteristic_<name>: the value never reaches the TSV.
                    for pair in avalue:
                        if "name" in pair and "value" in pair:
                            _add_annotation_value(row, "variable_" + pair["name"], pair["value"])
                elif ae and akey == "source":
                    continue
                elif geo and akey == "characteristics_ch1":
                    for pair_str in avalue:
                        if ":" in pair_str:
                            name, val = pair_str.split(":", 1)
                            _add_annotation_value(row, "characteristics_ch1_" + name, val.strip())
                elif isinstance(avalue, dict) and len(avalue) == 1 and "name" in avalue:
                    _add_annotation_value(row, akey, avalue["name"])
                elif isinstance(avalue, list) and len(avalue) == 1:
                    _add_annotation_value(row, akey, avalue[0])
                else:
                    _add_annotation_value(row, akey, avalue)
    for name, val, unit in attributes.get(acc, []):
        _add_annotation_value(row, f"MetaSRA_{name}", val)
        if unit is not None:
            _add_annotation_value(row, f"MetaSRA_{name}.unit", unit)
    row["experiment_accession"] = get_experiment_accession(acc, dataset_data)
    return row


def get_tsv_columns(samples_metadata: dict, attributes: dict) -> list:
    refinebio_columns = set()
    annotation_columns = set()
    for md in samples_metadata.values():
        ae = md.get("refinebio_source_database", "") == "ARRAY_EXPRESS"
        geo = md.get("refinebio_source_database", "") == "GEO"
        for key, value in md.items():
            if key != "refinebio_annotations":
                refinebio_columns.add(key)
                continue
            for annotation in value:
                for akey, avalue in annotation.items():
                    if ae and akey == "characteristic":
                        for pair in avalue:
                            if "category" in pair and "value" in pair:
                                _add_annotation_column(
                                    annotation_columns, "characteristic_" + pair["category"]
                                )
                    elif ae and akey == "variable":
                        for pair in avalue:
                            if "name" in pair and "value" in pair:
                                _add_annotation_column(
                                    annotation_columns, "characteristic_" + pair["name"]
                                )
                    elif ae and akey == "source":
                        continue
                    elif geo and akey == "characteristics_ch1":
                        for pair_str in avalue:
                            if ":" in pair_str:
                                _add_annotation_column(
                                    annotation_columns,
                                    "characteristics_ch1_" + pair_str.split(":", 1)[0],
                                )
                    else:
                        _add_annotation_column(annotation_columns, akey)
        for name, _val, unit in attributes.get(md["refinebio_accession_code"], []):
            _add_annotation_column(annotation_columns, f"MetaSRA_{name}")
            if unit is not None:
                _add_annotation_column(annotation_columns, f"MetaSRA_{name}.unit")
    refinebio_columns.discard("refinebio_accession_code")
    return (
        ["refinebio_accession_code", "experiment_accession"]
        + sorted(refinebio_columns)
        + sorted(annotation_columns)
    )


def write_metadata_tsv(path: Path, columns: list, rows: list) -> None:
    # open() WITHOUT newline="": csv's "\r\n" line terminator reaches the file as is (on Linux,
    # where refine.bio runs; newline="\n" makes that explicit and platform independent).
    with open(path, "w", encoding="utf-8", newline="\n") as tsv_file:
        dw = csv.DictWriter(tsv_file, columns, delimiter="\t", extrasaction="ignore")
        dw.writeheader()
        for row in rows:
            dw.writerow(row)


class Download:
    """One refine.bio job: the dataset, its samples, and everything it writes to output_dir."""

    def __init__(
        self,
        *,
        aggregate_by: str,
        dataset_data: dict,
        experiments: list,
        samples: list,
        sample_query_order: list,
        quantile_normalize: bool = False,
        scale_by: str = "NONE",
        quant_sf_only: bool = False,
        compendium_version: int | None = None,
        ks: tuple | None = None,
    ):
        self.aggregate_by = aggregate_by
        self.dataset_data = dataset_data
        self.experiments = experiments
        self.samples = {s["accession_code"]: s for s in samples}
        self.sample_query_order = sample_query_order
        self.quantile_normalize = quantile_normalize
        self.scale_by = scale_by
        self.quant_sf_only = quant_sf_only
        self.compendium_version = compendium_version
        self.ks = ks
        self.filtered_samples: dict = {}
        self.group_by_keys: list = []
        self.attributes = {a: s["attributes"] for a, s in self.samples.items() if s["attributes"]}
        requested = [a for accs in dataset_data.values() for a in accs]
        if sorted(sample_query_order) != sorted(set(requested)):
            raise ValueError("sample_query_order must list each requested sample once")

    def filter_sample(self, acc: str) -> None:
        """prepare_files(): a requested sample without a smashable computed file."""
        self.filtered_samples[acc] = {
            **to_metadata_dict(self.samples[acc], with_computed_file=False),
            "reason": FILTERED_REASON,
            "experiment_accession_code": get_experiment_accession(acc, self.dataset_data),
        }

    def compile_metadata(self) -> dict:
        md = {}
        md["num_experiments"] = len(self.experiments)
        md["quant_sf_only"] = self.quant_sf_only
        if self.compendium_version is not None:
            md["compendium_version"] = self.compendium_version
        if not self.quant_sf_only:
            md["aggregate_by"] = self.aggregate_by
            md["scale_by"] = self.scale_by
            md["ks_statistic"] = self.ks[0] if self.ks else None
            md["ks_pvalue"] = self.ks[1] if self.ks else None
            md["ks_warning"] = None
            md["quantile_normalized"] = self.quantile_normalize
        samples = {}
        for acc in self.sample_query_order:
            if acc in self.filtered_samples:
                continue
            samples[acc] = to_metadata_dict(self.samples[acc], with_computed_file=True)
        md["samples"] = samples
        md["num_samples"] = len(samples)
        experiments = {}
        for exp in self.experiments:
            emd = experiment_metadata_dict(exp)
            emd["sample_accession_codes"] = [
                c for c in emd["sample_accession_codes"] if c not in self.filtered_samples
            ]
            experiments[exp["accession_code"]] = emd
        md["experiments"] = experiments
        return md

    def write_non_data_files(self, out: Path, readme: str = README_DATASET) -> dict:
        """Returns {metadata file: [sample accessions, in row order]}."""
        self.metadata = self.compile_metadata()
        (out / "README.md").write_text(readme, encoding="utf-8", newline="\n")
        (out / "LICENSE.TXT").write_text(LICENSE_DATASET, encoding="utf-8", newline="\n")
        rows_written = self.write_tsv_json(out)
        self.metadata["created_at"] = CREATED_AT
        dump_json(self.metadata, out / "aggregated_metadata.json")
        if self.filtered_samples:
            dump_json(self.filtered_samples, out / "filtered_samples_metadata.json")
            columns = get_tsv_columns(self.filtered_samples, self.attributes)
            rows = [
                get_tsv_row_data(md, self.dataset_data, self.attributes)
                for md in self.filtered_samples.values()
            ]
            write_metadata_tsv(out / "filtered_samples_metadata.tsv", columns, rows)
            rows_written["filtered_samples_metadata.tsv"] = list(self.filtered_samples)
        return rows_written

    def write_tsv_json(self, out: Path) -> dict:
        samples = self.metadata["samples"]
        columns = get_tsv_columns(samples, self.attributes)
        self.tsv_columns = columns
        written = {}
        if self.aggregate_by == "EXPERIMENT":
            for exp_acc, exp_md in self.metadata["experiments"].items():
                (out / exp_acc).mkdir(exist_ok=True)
                order = [a for a in samples if a in exp_md["sample_accession_codes"]]
                rows = [
                    get_tsv_row_data(samples[a], self.dataset_data, self.attributes) for a in order
                ]
                name = f"{exp_acc}/metadata_{exp_acc}.tsv"
                write_metadata_tsv(out / name, columns, rows)
                written[name] = order
        elif self.aggregate_by == "SPECIES":
            for species in self.group_by_keys:
                (out / species).mkdir(exist_ok=True)
                order = [
                    a for a, md in samples.items() if md.get("refinebio_organism", "") == species
                ]
                rows = [
                    get_tsv_row_data(samples[a], self.dataset_data, self.attributes) for a in order
                ]
                name = f"{species}/metadata_{species}.tsv"
                write_metadata_tsv(out / name, columns, rows)
                written[name] = order
                if order:
                    dump_json(
                        {"species": species, "samples": [samples[a] for a in order]},
                        out / f"{species}/metadata_{species}.json",
                    )
                    written[f"{species}/metadata_{species}.json"] = order
        else:
            (out / "ALL").mkdir(exist_ok=True)
            order = list(samples)
            rows = [get_tsv_row_data(samples[a], self.dataset_data, self.attributes) for a in order]
            write_metadata_tsv(out / "ALL/metadata_ALL.tsv", columns, rows)
            written["ALL/metadata_ALL.tsv"] = order
        return written


def smash_key(out: Path, key: str, columns: list, genes: list, nan_cells=()) -> pd.DataFrame:
    """smasher._smash_key without QN or scaling: per-sample float32 frames inner-joined in the
    order the samples came out of the database, index renamed "Gene", written with to_csv."""
    frames = []
    for acc in columns:
        values = np.array([encoded(acc, g) for g in genes], dtype=np.float32)
        for gene, sample in nan_cells:
            if sample == acc:
                values[genes.index(gene)] = np.nan
        frames.append(pd.DataFrame({acc: values}, index=pd.Index(genes)))
    merged = frames[0]
    for frame in frames[1:]:
        merged = merged.merge(frame, how="inner", left_index=True, right_index=True)
    assert all(dt == np.float32 for dt in merged.dtypes)
    untransposed = merged.transpose().transpose()
    untransposed.index = untransposed.index.rename("Gene")  # refine.bio: rename(..., inplace=True)
    (out / key).mkdir(exist_ok=True)
    # lineterminator="\n": pandas' default is os.linesep, "\n" on refine.bio's Linux workers.
    untransposed.to_csv(out / key / f"{key}.tsv", sep="\t", encoding="utf-8", lineterminator="\n")
    return untransposed


# --------------------------------------------------------------------------------------------
# Zips: shutil.make_archive(base, "zip", output_dir), with fixed timestamps


def make_archive(src: Path, zip_path: Path) -> list:
    """Member order as shutil.make_archive writes it (os.walk top-down: at each level the sorted
    directory entries ``KEY/``, then that level's files; then each subdirectory). Files are
    sorted too (os.walk's own order is the file system's)."""
    members = []

    def walk(rel: str) -> None:
        here = src / rel if rel else src
        dirs = sorted(p.name for p in here.iterdir() if p.is_dir())
        files = sorted(p.name for p in here.iterdir() if p.is_file())
        for d in dirs:
            members.append((f"{rel}{d}/", None))
        for f in files:
            members.append((f"{rel}{f}", (here / f).read_bytes()))
        for d in dirs:
            walk(f"{rel}{d}/")

    walk("")
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.create_system = 3
            if data is None:
                info.external_attr = (0o40755 << 16) | 0x10
                info.compress_type = zipfile.ZIP_STORED
                zf.writestr(info, b"")
            else:
                info.external_attr = 0o100644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
    return [name for name, _ in members]


# --------------------------------------------------------------------------------------------
# Orders


def shuffled(rng: random.Random, items: list, *, differ_from: list = ()) -> list:
    """A seeded permutation of ``items`` that is not sorted and differs from each of
    ``differ_from`` (lists restricted to the same items)."""
    items = list(items)
    for _ in range(1000):
        order = items[:]
        rng.shuffle(order)
        bad = [sorted(items)] + [[x for x in d if x in items] for d in differ_from]
        if len(items) < 2 or all(order != b for b in bad):
            return order
    raise RuntimeError("could not find a different order")


# --------------------------------------------------------------------------------------------
# Fixture 1: experiment_shuffled


def fixture_experiment(staging: Path) -> dict:
    rng = random.Random(101)
    geo, ae = "GSE100001", "E-MTAB-4001"
    hs = "HOMO_SAPIENS"

    def geo_sample(acc, title, chars, *, age=None, attributes=None, sex="female", **kw):
        return make_sample(
            acc,
            geo,
            title=title,
            organism=hs,
            db="GEO",
            technology="MICROARRAY",
            platform=PLATFORM_HUGENE,
            processor=PROC_AFFY,
            sex=sex,
            age=age,
            specimen_part="lung",
            attributes=attributes,
            annotations=[
                {
                    "characteristics_ch1": chars,
                    "source_name_ch1": ["lung biopsy"],
                    "data_processing": ["SCAN", "Brainarray ENSG mapping"],
                }
            ],
            **kw,
        )

    def ae_sample(acc, title, part, sex, *, extra=(), **kw):
        return make_sample(
            acc,
            ae,
            title=title,
            organism=hs,
            db="ARRAY_EXPRESS",
            technology="MICROARRAY",
            platform=PLATFORM_U133,
            processor=PROC_AFFY,
            sex=sex,
            specimen_part=part,
            annotations=[
                {
                    "source": {"name": f"{acc} source"},
                    "characteristic": [
                        {"category": "organism part", "value": part},
                        {"category": "individual", "value": f"donor {s_of(acc)}"},
                    ],
                    "variable": [{"name": "dose", "value": "5 mg"}],
                    "extract": {"name": f"extract {s_of(acc)}"},
                    "assay": [f"{acc} hyb"],
                    "protocol": ["P-MTAB-1", "P-MTAB-2"],
                },
                *extra,
            ],
            **kw,
        )

    samples = [
        geo_sample(
            "GSM3170811",
            "COPD lung 1",
            ["tissue: lung", "age: 54", "disease: COPD"],
            age="54",
            attributes=[("age", 54.0, "year")],
            disease="COPD",
        ),
        geo_sample(
            "GSM3170327",
            "COPD lung 2",
            ["tissue: lung", "age: 67", "tissue: bronchus", "smoker"],
            age="67",
            disease="COPD",
            sex="male",
        ),
        geo_sample(
            "GSM3170545",
            "control lung 1",
            ["tissue: lung", "age: 61"],
            age="61",
            attributes=[("age", 61.0, "year")],
        ),
        geo_sample(
            "GSM3170190", "control lung 2", ["tissue: lung", "age: 48"], age="48", sex="male"
        ),
        geo_sample("GSM3170672", "control lung 3", ["tissue: lung", "age: 70"], age="70"),
        ae_sample(
            "ERS1430433", "liver donor 433", "liver", "female", extra=[{"refinebio_sex": "unknown"}]
        ),
        ae_sample("ERS1430758", "liver donor 758", "liver", "male"),
        ae_sample("ERS1430216", "kidney donor 216, 5 µg", "kidney", "female"),
        ae_sample("ERS1430904", 'kidney "K2" donor 904', "kidney", "male"),
    ]
    dataset_data = {
        geo: ["GSM3170811", "GSM3170327", "GSM3170545", "GSM3170190", "GSM3170672"],
        ae: ["ERS1430433", "ERS1430758", "ERS1430216", "ERS1430904"],
    }
    experiments = [
        make_experiment(
            geo,
            title="Lung transcriptomes of COPD patients",
            organisms=[hs],
            technology="MICROARRAY",
            # every sample of the experiment in refine.bio's DB, incl. one nobody requested
            db_samples=[
                "GSM3170545",
                "GSM3170999",
                "GSM3170811",
                "GSM3170672",
                "GSM3170190",
                "GSM3170327",
            ],
            submitter_institution="University of Somewhere",
            has_publication=True,
            publication_title="COPD lungs",
            publication_doi="10.1000/copd.2017.1",
            pubmed_id="28000001",
            protocol_description=["Lungs were biopsied.", "RNA was ..."],
        ),
        make_experiment(
            ae,
            title="Liver and kidney dose response",
            organisms=[hs],
            technology="MICROARRAY",
            db_samples=["ERS1430904", "ERS1430216", "ERS1430433", "ERS1430758"],
            submitter_institution="Universitätsklinikum Nord",
            protocol_description=[{"type": "sample collection protocol", "text": "Organs ..."}],
        ),
    ]
    unsmashable = ["GSM3170190"]  # has a computed file, but smashing it failed: no column
    filtered = ["GSM3170672"]  # no processed file at all
    query_order = shuffled(rng, [a for accs in dataset_data.values() for a in accs])
    dl = Download(
        aggregate_by="EXPERIMENT",
        dataset_data=dataset_data,
        experiments=experiments,
        samples=samples,
        sample_query_order=query_order,
    )
    for acc in filtered:
        dl.filter_sample(acc)
    genes = {
        geo: [human_gene(g) for g in (3, 5, 419, 457, 460, 938, 971)],
        ae: [human_gene(g) for g in (3, 5, 419, 457, 460, 971)],
    }
    nan_cells = [(human_gene(419), "ERS1430758")]
    metadata_rows = {
        k: [a for a in query_order if a in dataset_data[k] and a not in filtered]
        for k in dataset_data
    }
    matrix_columns = {}
    for key, accs in dataset_data.items():
        smashable = [a for a in accs if a not in filtered and a not in unsmashable]
        matrix_columns[key] = shuffled(rng, smashable, differ_from=[metadata_rows[key]])
        smash_key(staging, key, matrix_columns[key], genes[key], nan_cells)
    rows = dl.write_non_data_files(staging)
    return {
        "download": dl,
        "matrix_columns": matrix_columns,
        "genes": genes,
        "rows": rows,
        "nan_cells": nan_cells,
        "unsmashable": unsmashable,
        "filtered": filtered,
    }


# --------------------------------------------------------------------------------------------
# Fixture 3: species


def sra_annotations(tissue: str) -> list:
    return [
        {
            "library_layout": "PAIRED",
            "library_source": "TRANSCRIPTOMIC",
            "tissue": [tissue],
        }
    ]


def fixture_species(staging: Path) -> dict:
    rng = random.Random(303)
    hs, mm = "HOMO_SAPIENS", "MUS_MUSCULUS"

    def geo(acc, exp, org, platform, chars, **kw):
        return make_sample(
            acc,
            exp,
            title=f"{exp} sample {s_of(acc)}",
            organism=org,
            db="GEO",
            technology="MICROARRAY",
            platform=platform,
            processor=PROC_AFFY,
            annotations=[{"characteristics_ch1": chars}],
            **kw,
        )

    def sra(acc, exp, org, tissue, **kw):
        return make_sample(
            acc,
            exp,
            title=f"{exp} run {s_of(acc)}",
            organism=org,
            db="SRA",
            technology="RNA-SEQ",
            platform=PLATFORM_HISEQ,
            processor=PROC_TXIMPORT,
            annotations=sra_annotations(tissue),
            specimen_part=tissue,
            **kw,
        )

    samples = [
        geo(
            "GSM4000121",
            "GSE200001",
            hs,
            PLATFORM_HUGENE,
            ["cell type: T cell", "treatment: control"],
            treatment="control",
        ),
        geo(
            "GSM4000348",
            "GSE200001",
            hs,
            PLATFORM_HUGENE,
            ["cell type: T cell", "treatment: IL-2"],
            treatment="IL-2",
        ),
        geo(
            "GSM4000563",
            "GSE200001",
            hs,
            PLATFORM_HUGENE,
            ["cell type: B cell", "treatment: control"],
            treatment="control",
        ),
        sra("SRR5000274", "SRP100002", hs, "brain", attributes=[("age", 33.0, "year")], age="33"),
        sra("SRR5000789", "SRP100002", hs, "brain"),
        sra(
            "SRR5000915",
            "SRP100002",
            hs,
            "cerebellum",
            attributes=[("age", 41.0, "year")],
            age="41",
        ),
        sra("SRR6000436", "SRP100003", mm, "liver"),
        sra("SRR6000652", "SRP100003", mm, "liver"),
        sra("SRR6000087", "SRP100003", mm, "heart"),
        geo(
            "GSM5000330",
            "GSE200004",
            mm,
            PLATFORM_MOE,
            ["strain: C57BL/6J", "genotype: wild type"],
            genetic_information="wild type",
        ),
        geo(
            "GSM5000701",
            "GSE200004",
            mm,
            PLATFORM_MOE,
            ["strain: C57BL/6J", "genotype: Tp53-/-"],
            genetic_information="Tp53-/-",
        ),
    ]
    dataset_data = {}
    for s in samples:
        dataset_data.setdefault(s["experiment"], []).append(s["accession_code"])
    experiments = []
    for exp, accs in dataset_data.items():
        org = hs if exp in ("GSE200001", "SRP100002") else mm
        tech = "MICROARRAY" if exp.startswith("GSE") else "RNA-SEQ"
        experiments.append(
            make_experiment(
                exp,
                title=f"Experiment {exp}",
                organisms=[org],
                technology=tech,
                db_samples=shuffled(rng, accs),
            )
        )
    query_order = shuffled(rng, [s["accession_code"] for s in samples])
    dl = Download(
        aggregate_by="SPECIES",
        dataset_data=dataset_data,
        experiments=experiments,
        samples=samples,
        sample_query_order=query_order,
    )
    dl.group_by_keys = [hs, mm]
    organism_of = {s["accession_code"]: s["organism"] for s in samples}
    genes = {
        hs: [human_gene(g) for g in (3, 5, 419, 457, 460, 938)],
        mm: [mouse_gene(g) for g in (1, 28, 31, 37, 49, 56)],
    }
    matrix_columns = {}
    for key in dl.group_by_keys:
        accs = [a for a in query_order if organism_of[a] == key]
        matrix_columns[key] = shuffled(rng, accs, differ_from=[accs])
        smash_key(staging, key, matrix_columns[key], genes[key])
    rows = dl.write_non_data_files(staging)
    return {"download": dl, "matrix_columns": matrix_columns, "genes": genes, "rows": rows}


# --------------------------------------------------------------------------------------------
# Fixture 4: all


def fixture_all(staging: Path) -> dict:
    rng = random.Random(404)
    mm = "MUS_MUSCULUS"
    samples = []
    for acc, strain in (
        ("GSM6000214", "BALB/c"),
        ("GSM6000583", "BALB/c"),
        ("GSM6000842", "C57BL/6J"),
    ):
        samples.append(
            make_sample(
                acc,
                "GSE300001",
                title=f"spleen {s_of(acc)}",
                organism=mm,
                db="GEO",
                technology="MICROARRAY",
                platform=PLATFORM_MOE,
                processor=PROC_AFFY,
                specimen_part="spleen",
                annotations=[{"characteristics_ch1": [f"strain: {strain}", "tissue: spleen"]}],
            )
        )
    for acc, tissue in (
        ("SRR7000129", "spleen"),
        ("SRR7000467", "thymus"),
        ("SRR7000690", "thymus"),
    ):
        samples.append(
            make_sample(
                acc,
                "SRP300002",
                title=f"{tissue} run {s_of(acc)}",
                organism=mm,
                db="SRA",
                technology="RNA-SEQ",
                platform=PLATFORM_NEXTSEQ,
                processor=PROC_TXIMPORT,
                specimen_part=tissue,
                annotations=sra_annotations(tissue),
            )
        )
    dataset_data = {}
    for s in samples:
        dataset_data.setdefault(s["experiment"], []).append(s["accession_code"])
    experiments = [
        make_experiment(
            exp,
            title=f"Mouse immune organs ({exp})",
            organisms=[mm],
            technology="MICROARRAY" if exp.startswith("GSE") else "RNA-SEQ",
            db_samples=shuffled(rng, accs),
        )
        for exp, accs in dataset_data.items()
    ]
    query_order = shuffled(rng, [s["accession_code"] for s in samples])
    dl = Download(
        aggregate_by="ALL",
        dataset_data=dataset_data,
        experiments=experiments,
        samples=samples,
        sample_query_order=query_order,
    )
    dl.group_by_keys = ["ALL"]
    genes = {"ALL": [mouse_gene(g) for g in (1, 28, 31, 37, 49, 56, 58)]}
    matrix_columns = {"ALL": shuffled(rng, query_order, differ_from=[query_order])}
    smash_key(staging, "ALL", matrix_columns["ALL"], genes["ALL"])
    rows = dl.write_non_data_files(staging)
    return {"download": dl, "matrix_columns": matrix_columns, "genes": genes, "rows": rows}


# --------------------------------------------------------------------------------------------
# Fixture 5: species compendium (create_compendia)


def fixture_compendium(staging: Path) -> dict:
    rng = random.Random(505)
    hs = "HOMO_SAPIENS"
    samples = []
    for acc, disease in (("GSM7000901", "asthma"), ("GSM7000234", ""), ("GSM7000567", "asthma")):
        samples.append(
            make_sample(
                acc,
                "GSE500001",
                title=f"airway {s_of(acc)}",
                organism=hs,
                db="GEO",
                technology="MICROARRAY",
                platform=PLATFORM_U133,
                processor=PROC_AFFY,
                disease=disease,
                specimen_part="airway epithelium",
                annotations=[
                    {
                        "characteristics_ch1": [
                            "tissue: airway epithelium",
                            f"disease: {disease or 'none'}",
                        ]
                    }
                ],
            )
        )
    samples.append(
        make_sample(
            "ERR4000123",
            "ERP500002",
            title="blood run 123",
            organism=hs,
            db="SRA",
            technology="RNA-SEQ",
            platform=PLATFORM_HISEQ,
            processor=PROC_TXIMPORT,
            specimen_part="blood",
            annotations=sra_annotations("blood"),
        )
    )
    for acc in ("SRR8000789", "SRR8000456"):
        samples.append(
            make_sample(
                acc,
                "SRP500003",
                title=f"skin run {s_of(acc)}",
                organism=hs,
                db="SRA",
                technology="RNA-SEQ",
                platform=PLATFORM_NEXTSEQ,
                processor=PROC_TXIMPORT,
                specimen_part="skin",
                annotations=sra_annotations("skin"),
                attributes=[("age", 29.0, "year")] if acc == "SRR8000456" else None,
            )
        )
    dataset_data = {}
    for s in samples:
        dataset_data.setdefault(s["experiment"], []).append(s["accession_code"])
    experiments = [
        make_experiment(
            exp,
            title=f"Compendium experiment {exp}",
            organisms=[hs],
            technology="MICROARRAY" if exp.startswith("GSE") else "RNA-SEQ",
            db_samples=list(accs),
        )
        for exp, accs in dataset_data.items()
    ]
    # microarray columns sorted, then RNA-seq columns sorted (smashing_utils.process_frames_for_key)
    micro = sorted(s["accession_code"] for s in samples if s["technology"] == "MICROARRAY")
    rnaseq = sorted(s["accession_code"] for s in samples if s["technology"] == "RNA-SEQ")
    columns = micro + rnaseq
    query_order = shuffled(rng, columns, differ_from=[columns])
    dl = Download(
        aggregate_by="SPECIES",
        dataset_data=dataset_data,
        experiments=experiments,
        samples=samples,
        sample_query_order=query_order,
        quantile_normalize=True,
        compendium_version=1,
        ks=(0.0, 1.0),
    )
    dl.group_by_keys = [hs]
    genes = sorted(human_gene(g) for g in (971, 3, 460, 128, 5, 938, 419, 457))
    # Index without a name: the compendium's first header cell is empty. float64 values.
    matrix = pd.DataFrame(
        {acc: np.array([encoded(acc, g) for g in genes], dtype=np.float64) for acc in columns},
        index=pd.Index(genes),
    )
    rows = dl.write_non_data_files(staging, readme=README_NORMALIZED)
    matrix.to_csv(staging / f"{hs}.tsv", sep="\t", encoding="utf-8", lineterminator="\n")
    return {"download": dl, "matrix_columns": {hs: columns}, "genes": {hs: genes}, "rows": rows}


# --------------------------------------------------------------------------------------------
# Fixture 6: quantpendium (create_quantpendia) + tx2gene


TX2GENE = [  # (transcript with version, gene)
    ("ENST00000000020.9", human_gene(3)),
    ("ENST00000000424.1", human_gene(3)),
    ("ENST00000000771.5", human_gene(3)),
    ("ENST00000000031.5", human_gene(5)),
    ("ENST00000000971.1", human_gene(5)),
    ("ENST00000000152.5", human_gene(419)),
    ("ENST00000000582.8", human_gene(419)),
    ("ENST00000000588.10", human_gene(419)),
]


def quant_sf_text(acc: str, transcripts: list) -> str:
    s = s_of(acc)
    lines = ["Name\tLength\tEffectiveLength\tTPM\tNumReads"]
    for tx in transcripts:
        t = t_of(tx)
        num_reads = s + t / 1000
        lines.append(
            f"{tx}\t{1000 + t}\t{1000 + t - 50 - s % 7:.3f}\t{num_reads / 10:.6f}\t{num_reads:.3f}"
        )
    return "\n".join(lines) + "\n"


def fixture_quantpendium(staging: Path) -> dict:
    rng = random.Random(606)
    hs = "HOMO_SAPIENS"
    dataset_data = {
        "SRP400001": ["SRR9000118", "SRR9000263", "SRR9000395"],
        "SRP400002": ["SRR9000547", "SRR9000731", "SRR9000884"],
    }
    samples = [
        make_sample(
            acc,
            exp,
            title=f"{exp} run {s_of(acc)}",
            organism=hs,
            db="SRA",
            technology="RNA-SEQ",
            platform=PLATFORM_HISEQ,
            processor=PROC_SALMON,
            specimen_part="colon",
            annotations=sra_annotations("colon"),
        )
        for exp, accs in dataset_data.items()
        for acc in accs
    ]
    experiments = [
        make_experiment(
            exp,
            title=f"Colon RNA-seq ({exp})",
            organisms=[hs],
            technology="RNA-SEQ",
            db_samples=list(accs),
        )
        for exp, accs in dataset_data.items()
    ]
    query_order = shuffled(rng, [s["accession_code"] for s in samples])
    dl = Download(
        aggregate_by="EXPERIMENT",
        dataset_data=dataset_data,
        experiments=experiments,
        samples=samples,
        sample_query_order=query_order,
        quant_sf_only=True,
        compendium_version=1,
    )
    transcripts = [tx for tx, _ in TX2GENE]
    tx_orders = {}
    for exp, accs in dataset_data.items():
        (staging / exp).mkdir()
        for acc in accs:
            order = shuffled(rng, transcripts, differ_from=[transcripts, *tx_orders.values()])
            tx_orders[acc] = order
            (staging / exp / f"{acc}_quant.sf").write_text(
                quant_sf_text(acc, order), encoding="utf-8", newline="\n"
            )
    # write_non_data_files copies README_DATASET.md; _add_metadata then overwrites README.md
    rows = dl.write_non_data_files(staging, readme=README_QUANT)
    return {"download": dl, "tx_orders": tx_orders, "rows": rows}


# --------------------------------------------------------------------------------------------
# README


def fmt(items) -> str:
    return ", ".join(f"`{x}`" for x in items)


def readme_text(facts: dict, members: dict, sizes: dict) -> str:
    ex, sp, al, co, qu = (facts[k] for k in ("experiment", "species", "all", "compendium", "quant"))
    lines = [
        "# refine.bio download fixtures",
        "",
        "Generated by `python scripts/make_refinebio_fixtures.py` (seeded, deterministic: a second",
        "run gives byte-identical files). Do not edit by hand. The generator does not use",
        "refinewidgets: it re-implements refine.bio's writers (smasher `_smash_key`,",
        "`smashing_utils.compile_metadata` / `write_non_data_files` / `get_tsv_columns` /",
        "`get_tsv_row_data` / `write_tsv_json`, `create_compendia`, `create_quantpendia`,",
        "`shutil.make_archive`).",
        "",
        "## Conventions shared by all fixtures",
        "",
        "- **Value encoding.** `s = int(trailing digits of the sample accession) % 1000`,",
        "  `g = int(trailing digits of the gene id) % 1000`; every matrix value is `s + g/1000`",
        "  (e.g. `GSM3170811` x `ENSG00000000419` = `811.419`). s values are unique within a",
        "  fixture. Smasher matrices are float32 written by pandas (`811.419`), the compendium",
        "  float64. Readers must not transform values.",
        "- **quant.sf encoding** (transcript `ENST00000000TTT.v`, `t = TTT % 1000`):",
        "  `NumReads = s + t/1000` (`%.3f`), `TPM = NumReads/10` (`%.6f`), `Length = 1000 + t`",
        "  (int), `EffectiveLength = 1000 + t - 50 - s % 7` (`%.3f`).",
        "- **Zips**: members in `shutil.make_archive` order (at each level the sorted directory",
        "  entries `KEY/`, then the level's files sorted, then each subdirectory), deflated, all",
        "  dated 2024-01-01 00:00:00. `README.md` and `LICENSE.TXT` are short stand-ins.",
        "- **Metadata TSVs** (`metadata_*.tsv`, `filtered_samples_metadata.tsv`): `csv.DictWriter`,",
        "  tab-separated, **CRLF** line ends, QUOTE_MINIMAL, UTF-8. Columns:",
        "  `refinebio_accession_code`, `experiment_accession`, the other `refinebio_*` keys",
        "  sorted (no `refinebio_annotations`), then annotation columns sorted. One header for",
        "  every metadata TSV of a download (computed over all its non-filtered samples), so",
        "  a column can be empty for every row of one file. Booleans are `True`, Decimals",
        "  `54.000`, lists `['a', 'b']`, None/missing empty.",
        "- **Smasher matrices** (`<KEY>/<KEY>.tsv`): genes x samples, first header cell `Gene`, LF,",
        "  empty cell = NaN. Matrix column order is NOT the metadata row order, and not sorted.",
        "- **JSON**: `indent=4, sort_keys=True`, no trailing newline, `created_at`",
        f'  `{CREATED_AT}`; `refinebio_age` is a JSON number with 3 decimals (`54.000`) or `""`.',
        "- `tx2gene_HOMO_SAPIENS.tsv`: header `transcript_id\\tgene_id`, LF; every transcript of",
        "  the quantpendium (with its version suffix) -> gene:",
        "",
    ]
    for tx, gene in TX2GENE:
        lines.append(f"  - `{tx}` -> `{gene}`")
    lines.append("")

    def member_block(name):
        return [
            f"Members ({len(members[name])}, {sizes[name]} bytes):",
            "",
            *[f"    {m}" for m in members[name]],
            "",
        ]

    # 1
    dl = ex["download"]
    md = dl.metadata
    lines += [
        "## 1 + 2. `experiment_shuffled.zip` and `experiment_shuffled/`",
        "",
        "EXPERIMENT aggregation, not quantile normalized (`quantile_normalized: false`,",
        "`scale_by: NONE`, `ks_*: null`, `quant_sf_only: false`), 2 experiments. The folder",
        "`experiment_shuffled/` holds byte-identical copies of the zip's files.",
        "",
        *member_block("experiment_shuffled.zip"),
    ]
    for key, cols in ex["matrix_columns"].items():
        rows = ex["rows"][f"{key}/metadata_{key}.tsv"]
        lines += [
            f"- `{key}/{key}.tsv`: genes {fmt(ex['genes'][key])};",
            f"  columns, in file order: {fmt(cols)}.",
            f"  `{key}/metadata_{key}.tsv` rows, in file order: {fmt(rows)}.",
        ]
    exp_codes = {k: v["sample_accession_codes"] for k, v in md["experiments"].items()}
    lines += [
        f"- Metadata-only sample (the refine.bio bug): `{ex['unsmashable'][0]}` is in",
        "  `GSE100001/metadata_GSE100001.tsv` and in `aggregated_metadata.json` `samples` (with",
        "  processor fields) but has NO matrix column (smashing its file failed; refine.bio",
        "  then only logs it: it is not in `filtered_samples_metadata.*`).",
        f"- Filtered sample: `{ex['filtered'][0]}`: in `filtered_samples_metadata.json` and",
        "  `.tsv` only (not in any matrix, metadata TSV or `samples`), `reason` =",
        f'  "{FILTERED_REASON}",',
        "  `experiment_accession_code` = `GSE100001`, no `refinebio_processor_*` keys. Its TSV",
        "  has its own header, computed over the filtered records only: `reason` and",
        "  `experiment_accession_code` sort among the non-annotation columns, no processor or",
        "  ArrayExpress/MetaSRA columns; its `experiment_accession` cell is `GSE100001`.",
        f"- NaN: `{ex['nan_cells'][0][0]}` x `{ex['nan_cells'][0][1]}` in `E-MTAB-4001.tsv` is an"
        " empty cell.",
        f"- `aggregated_metadata.json`: `num_samples` {md['num_samples']}, `num_experiments`"
        f" {md['num_experiments']}; `samples` keys = {fmt(sorted(md['samples']))}.",
        "  `experiments[...].sample_accession_codes` are refine.bio's DB lists minus the filtered",
        "  sample, so they include `GSM3170999`, which is in the DB but was not requested (it is",
        "  nowhere else): " + "; ".join(f"`{k}`: {fmt(v)}" for k, v in exp_codes.items()) + ".",
        "- Metadata header (both experiment TSVs, identical):",
        "",
        "      " + "\\t".join(dl.tsv_columns),
        "",
        "- Annotation flattening to check:",
        '  - GEO `characteristics_ch1: ["tissue: lung", "age: 54", ...]` ->',
        "    `characteristics_ch1_tissue` = `lung`, `characteristics_ch1_age` = `54`.",
        "    `GSM3170327` has `tissue: lung` then `tissue: bronchus`: first value wins (`lung`);",
        "    its entry `smoker` has no `:` and makes no column.",
        '  - GEO `source_name_ch1: ["lung biopsy"]` (one element) -> `lung biopsy`;',
        "    `data_processing` (two elements) -> `['SCAN', 'Brainarray ENSG mapping']`.",
        "  - ArrayExpress `characteristic` -> `characteristic_organism part` (`liver`/`kidney`),",
        "    `characteristic_individual` (`donor 433`, ...); `variable` dose -> column",
        "    `characteristic_dose` that is EMPTY in every row (refine.bio drops the value);",
        '    `source` -> no column; `extract: {"name": "extract 433"}` -> `extract 433`;',
        '    `assay: ["ERS1430433 hyb"]` -> `ERS1430433 hyb`; `protocol` (two elements) ->',
        "    `['P-MTAB-1', 'P-MTAB-2']`.",
        '  - `ERS1430433` also has the annotation `{"refinebio_sex": "unknown"}`: ignored;',
        "    its `refinebio_sex` stays `female`.",
        "  - MetaSRA attributes (TSV only, not in the JSON annotations): `GSM3170811`",
        "    `MetaSRA_age` = `54.0`, `MetaSRA_age.unit` = `year`; `GSM3170545` `61.0` / `year`;",
        "    empty for every other sample. `refinebio_age` is `54.000` / `61.000` (TSV and JSON),",
        "    `characteristics_ch1_age` `54` / `61`.",
        "  - GEO rows have empty ArrayExpress columns and vice versa; `experiment_accession` is",
        "    the sample's experiment; `refinebio_processed` = `True`.",
        '  - Quoting/encoding: `ERS1430904`\'s title `kidney "K2" donor 904` is written quoted',
        '    (`"kidney ""K2"" donor 904"`); `ERS1430216`\'s title contains `µ` (UTF-8);',
        "    `E-MTAB-4001`'s `submitter_institution` is `Universitätsklinikum Nord`.",
        "",
    ]
    # 3
    dl = sp["download"]
    lines += [
        "## 3. `species.zip`",
        "",
        "SPECIES aggregation (`quantile_normalized: false`, `scale_by: NONE`), 4 experiments:",
        "`GSE200001` (human microarray), `SRP100002` (human RNA-seq), `SRP100003` (mouse",
        "RNA-seq), `GSE200004` (mouse microarray). Each species matrix mixes microarray and",
        "RNA-seq columns. No filtered samples (no `filtered_samples_metadata.*`).",
        "",
        *member_block("species.zip"),
    ]
    for key, cols in sp["matrix_columns"].items():
        lines += [
            f"- `{key}/{key}.tsv`: genes {fmt(sp['genes'][key])};",
            f"  columns, in file order: {fmt(cols)}.",
            f"  `{key}/metadata_{key}.tsv` rows (and `metadata_{key}.json` `samples` list, same",
            f"  order): {fmt(sp['rows'][f'{key}/metadata_{key}.tsv'])}.",
        ]
    lines += [
        '- `metadata_<SP>.json` = `{"species": SP, "samples": [full sample records incl.',
        "  refinebio_annotations and processor fields]}`.",
        "- MetaSRA: `SRR5000274` `MetaSRA_age` `33.0` (`refinebio_age` `33.000`), `SRR5000915`",
        '  `41.0`; `tissue: ["brain"]` -> column `tissue` = `brain`; `library_layout` `PAIRED`.',
        f"- `num_samples` {dl.metadata['num_samples']}, `num_experiments`"
        f" {dl.metadata['num_experiments']}.",
        "",
    ]
    # 4
    dl = al["download"]
    lines += [
        "## 4. `all.zip`",
        "",
        "ALL aggregation (`quantile_normalized: false`), MUS_MUSCULUS only: `GSE300001`",
        "(microarray) and `SRP300002` (RNA-seq), 3 samples each, no filtered samples.",
        "",
        *member_block("all.zip"),
        f"- `ALL/ALL.tsv`: genes {fmt(al['genes']['ALL'])};",
        f"  columns, in file order: {fmt(al['matrix_columns']['ALL'])}.",
        f"- `ALL/metadata_ALL.tsv` rows, in file order: {fmt(al['rows']['ALL/metadata_ALL.tsv'])}",
        "  (`experiment_accession` = GSE300001 for GSM*, SRP300002 for SRR*).",
        f"- `num_samples` {dl.metadata['num_samples']}, `num_experiments`"
        f" {dl.metadata['num_experiments']}.",
        "",
    ]
    # 5
    dl = co["download"]
    hs = "HOMO_SAPIENS"
    lines += [
        "## 5. `compendium_HOMO_SAPIENS.zip`",
        "",
        "Normalized species compendium (create_compendia): the matrix is `HOMO_SAPIENS.tsv` AT",
        "THE ZIP ROOT, written from a frame whose index has no name, so its header line starts",
        "with a tab (empty first cell). float64 values, still following the encoding.",
        "`aggregated_metadata.json`: `aggregate_by: SPECIES`, `quantile_normalized: true`,",
        "`scale_by: NONE`, `compendium_version: 1`, `quant_sf_only: false`, `ks_statistic: 0.0`,",
        "`ks_pvalue: 1.0`, `ks_warning: null`.",
        "",
        *member_block("compendium_HOMO_SAPIENS.zip"),
        f"- `HOMO_SAPIENS.tsv`: genes (sorted) {fmt(co['genes'][hs])};",
        f"  columns: microarray sorted, then RNA-seq sorted (so not globally sorted):"
        f" {fmt(co['matrix_columns'][hs])}.",
        f"- `HOMO_SAPIENS/metadata_HOMO_SAPIENS.tsv` rows (and the `.json` samples list):"
        f" {fmt(co['rows'][f'{hs}/metadata_{hs}.tsv'])}.",
        "- Experiments: `GSE500001` (microarray, GSM*), `ERP500002` (`ERR4000123`), `SRP500003`",
        "  (`SRR8000456`, `SRR8000789`). `SRR8000456` has `MetaSRA_age` `29.0` / `year`.",
        "",
    ]
    # 6
    dl = qu["download"]
    lines += [
        "## 6. `quantpendium_HOMO_SAPIENS.zip` (+ `tx2gene_HOMO_SAPIENS.tsv`)",
        "",
        "RNA-seq sample compendium (create_quantpendia): EXPERIMENT-keyed folders with one",
        "Salmon `<sample>_quant.sf` per sample and `metadata_<EXP>.tsv`; NO matrix.",
        "`aggregated_metadata.json` has `quant_sf_only: true`, `compendium_version: 1`, and no",
        "`aggregate_by` / `scale_by` / `ks_*` / `quantile_normalized` keys; processor",
        "`Salmon Quant`. quant.sf: header `Name\\tLength\\tEffectiveLength\\tTPM\\tNumReads`, LF,",
        "8 transcripts (versioned ids), each file in a DIFFERENT row order.",
        "",
        *member_block("quantpendium_HOMO_SAPIENS.zip"),
    ]
    for exp, accs in dl.dataset_data.items():
        lines.append(
            f"- `{exp}`: samples {fmt(accs)}; `metadata_{exp}.tsv` rows:"
            f" {fmt(qu['rows'][f'{exp}/metadata_{exp}.tsv'])}."
        )
    lines += ["- Transcript row order per quant.sf:", ""]
    for acc, order in qu["tx_orders"].items():
        lines.append(f"  - `{acc}`: {', '.join(order)}")
    acc0 = next(iter(qu["tx_orders"]))
    example = quant_sf_text(acc0, qu["tx_orders"][acc0]).splitlines()[:2]
    lines += [
        "",
        f"- Example, first lines of `{acc0}_quant.sf`:",
        "",
        *[f"      {x}" for x in example],
        "",
        "  Summing NumReads per gene via tx2gene: gene `ENSG00000000003` in `SRR9000118` =",
        "  `(118.020 + 118.424 + 118.771)` = `355.215`.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    builders = {
        "experiment": ("experiment_shuffled.zip", fixture_experiment),
        "species": ("species.zip", fixture_species),
        "all": ("all.zip", fixture_all),
        "compendium": ("compendium_HOMO_SAPIENS.zip", fixture_compendium),
        "quant": ("quantpendium_HOMO_SAPIENS.zip", fixture_quantpendium),
    }
    facts, members, sizes = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (zip_name, build) in builders.items():
            staging = Path(tmp) / name
            staging.mkdir()
            facts[name] = build(staging)
            members[zip_name] = make_archive(staging, OUT / zip_name)
            sizes[zip_name] = (OUT / zip_name).stat().st_size
            if sizes[zip_name] > MAX_FIXTURE_BYTES:
                raise RuntimeError(f"{zip_name} is {sizes[zip_name]} bytes")
            if name == "experiment":
                folder = OUT / "experiment_shuffled"
                if folder.exists():
                    shutil.rmtree(folder)
                shutil.copytree(staging, folder, copy_function=shutil.copyfile)
    with open(OUT / "tx2gene_HOMO_SAPIENS.tsv", "w", encoding="utf-8", newline="\n") as f:
        f.write("transcript_id\tgene_id\n")
        for tx, gene in TX2GENE:
            f.write(f"{tx}\t{gene}\n")
    with open(OUT / "README.md", "w", encoding="utf-8", newline="\n") as f:
        f.write(readme_text(facts, members, sizes))
    for zip_name in members:
        print(f"wrote {OUT.relative_to(ROOT) / zip_name} ({sizes[zip_name]} bytes)")
    print(
        f"wrote {OUT.relative_to(ROOT)}/experiment_shuffled/, tx2gene_HOMO_SAPIENS.tsv, README.md"
    )


if __name__ == "__main__":
    main()
