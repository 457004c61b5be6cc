"""Sample metadata in refine.bio's shapes: flattened submitter annotations, column order, JSON.

refine.bio's ``metadata_<KEY>.tsv`` has one row per sample: ``refinebio_accession_code``,
``experiment_accession``, the other ``refinebio_*`` fields sorted, then the flattened
submitter annotations sorted. This module turns sample records (the dicts of
``aggregated_metadata.json``'s ``samples``) into those rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "EXPERIMENT_FIELDS",
    "HARMONIZED_FIELDS",
    "SAMPLE_ATTRIBUTES",
    "flatten_annotations",
    "metadata_columns",
    "metadata_frame",
    "organism_label",
    "sample_fields",
    "typed_metadata",
]

#: The harmonized ``refinebio_*`` fields of a sample (besides its accession and annotations).
HARMONIZED_FIELDS = (
    "refinebio_age",
    "refinebio_cell_line",
    "refinebio_compound",
    "refinebio_developmental_stage",
    "refinebio_disease",
    "refinebio_disease_stage",
    "refinebio_genetic_information",
    "refinebio_organism",
    "refinebio_platform",
    "refinebio_processed",
    "refinebio_processor_id",
    "refinebio_processor_name",
    "refinebio_processor_version",
    "refinebio_race",
    "refinebio_sex",
    "refinebio_source_archive_url",
    "refinebio_source_database",
    "refinebio_specimen_part",
    "refinebio_subject",
    "refinebio_time",
    "refinebio_title",
    "refinebio_treatment",
)
ACCESSION = "refinebio_accession_code"
#: The keys of an experiment entry of ``aggregated_metadata.json``.
EXPERIMENT_FIELDS = (
    "accession_code",
    "title",
    "description",
    "organisms",
    "sample_accession_codes",
    "technology",
    "submitter_institution",
    "has_publication",
    "publication_title",
    "publication_doi",
    "pubmed_id",
    "protocol_description",
    "source_first_published",
    "source_last_modified",
)
ANNOTATIONS = "refinebio_annotations"
#: A record's columns that are neither harmonized nor annotations: refine.bio's SampleAttribute
#: columns (``MetaSRA_age``, ``MetaSRA_age.unit``), kept from a download's metadata files.
SAMPLE_ATTRIBUTES = "sample_attributes"


#: Columns holding refine.bio organism codes (``HOMO_SAPIENS``), shown as species names.
ORGANISM_COLUMNS = ("organisms", "refinebio_organism", "organism")


def organism_label(code: Any) -> str:
    """A refine.bio organism code as a species name; ``"; "``-joined codes one by one.

    Examples
    --------
    >>> organism_label("HOMO_SAPIENS"), organism_label("MUS_MUSCULUS; DANIO_RERIO")
    ('Homo sapiens', 'Mus musculus; Danio rerio')
    """
    parts = [p.strip() for p in _text(code).split(";")]
    return "; ".join(p.replace("_", " ").capitalize() if p.isupper() else p for p in parts if p)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and np.isnan(value):
        return ""
    return str(value)


def _flatten_one(annotation: Mapping[str, Any], out: dict[str, Any]) -> None:
    """Add one annotation's columns to ``out``: never a ``refinebio_`` column, and the first
    value of a column wins."""
    for key, value in annotation.items():
        for column, item in _annotation_columns(key, value):
            if not column.startswith("refinebio_") and column not in out:
                out[column] = item


def _annotation_columns(key: str, value: Any) -> Iterator[tuple[str, Any]]:
    """The ``(column, value)`` pairs of one annotation field: GEO's ``characteristics_ch1``
    (``"name: value"`` texts), ArrayExpress's ``characteristic`` and ``variable`` lists, a
    ``{"name": ...}`` or one-item list as its value; ``source`` gives none."""
    if key == "characteristics_ch1" and isinstance(value, list):
        for item in value:
            text = _text(item)
            if ":" in text:
                name, val = text.split(":", 1)
                yield f"characteristics_ch1_{name.strip()}", val.strip()
            else:
                yield "characteristics_ch1", text.strip()
    elif key == "characteristic" and isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping) and "category" in item:
                yield f"characteristic_{item['category']}", item.get("value", "")
    elif key == "variable" and isinstance(value, list):
        # refine.bio drops ArrayExpress variables by mistake; we keep them.
        for item in value:
            if isinstance(item, Mapping) and "name" in item:
                yield f"variable_{item['name']}", item.get("value", "")
    elif key == "source":
        return
    elif isinstance(value, Mapping) and set(value) == {"name"}:
        yield key, value["name"]
    elif isinstance(value, list) and len(value) == 1:
        yield key, value[0]
    else:
        yield key, value


def flatten_annotations(annotations: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    """Flatten a sample's submitter annotations into ``column -> value`` (format spec §3).

    Examples
    --------
    >>> flatten_annotations([{"characteristics_ch1": ["tissue: lung", "age: 54"]},
    ...                      {"characteristic": [{"category": "sex", "value": "male"}],
    ...                       "variable": [{"name": "dose", "value": "5 mg"}],
    ...                       "source": {"name": "x"}, "label": {"name": "Cy3"}}])
    {'characteristics_ch1_tissue': 'lung', 'characteristics_ch1_age': '54', 'characteristic_sex': 'male', 'variable_dose': '5 mg', 'label': 'Cy3'}
    """
    out: dict[str, Any] = {}
    for annotation in annotations or ():
        if isinstance(annotation, Mapping):
            _flatten_one(annotation, out)
    return out


def sample_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """The ``refinebio_*`` fields of a record (no annotations), its flattened annotations, then
    its sample attributes (an annotation wins over an attribute of the same name)."""
    row = {k: v for k, v in record.items() if k.startswith("refinebio_") and k != ANNOTATIONS}
    row.update(flatten_annotations(record.get(ANNOTATIONS)))
    for key, value in _attributes(record).items():
        row.setdefault(key, value)
    return row


def _attributes(record: Mapping[str, Any]) -> Mapping[str, Any]:
    attributes = record.get(SAMPLE_ATTRIBUTES)
    return attributes if isinstance(attributes, Mapping) else {}


def metadata_columns(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """The refine.bio column order over all ``records`` of a download.

    Examples
    --------
    >>> metadata_columns([{"refinebio_accession_code": "S1", "refinebio_sex": "male",
    ...                    "refinebio_annotations": [{"b": 1, "a": 2}]}])
    ['refinebio_accession_code', 'experiment_accession', 'refinebio_sex', 'a', 'b']
    """
    harmonized: set[str] = set()
    submitter: set[str] = set()
    for record in records:
        for key in record:
            if key.startswith("refinebio_") and key not in (ACCESSION, ANNOTATIONS):
                harmonized.add(key)
        submitter.update(flatten_annotations(record.get(ANNOTATIONS)))
        submitter.update(k for k in _attributes(record) if not k.startswith("refinebio_"))
    submitter -= {ACCESSION, "experiment_accession"}
    return [ACCESSION, "experiment_accession", *sorted(harmonized), *sorted(submitter)]


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return str(value)  # refine.bio writes a multi-valued cell as Python's text: ['a', 'b']
    return "" if value is None else value


def metadata_frame(
    accessions: list[str],
    experiment_of: Mapping[str, str],
    records: Mapping[str, Mapping[str, Any]],
    columns: list[str],
) -> pd.DataFrame:
    """One row per sample in ``columns`` order; empty strings where a field is unknown.

    ``refinebio_age`` stays numeric (NaN when unknown) and ``refinebio_processed`` boolean.
    """
    rows = []
    for acc in accessions:
        row = sample_fields(records.get(acc, {ACCESSION: acc}))
        row[ACCESSION] = acc
        row["experiment_accession"] = experiment_of.get(acc, "")
        rows.append([_cell(row.get(c)) for c in columns])
    frame = pd.DataFrame(rows, columns=columns, dtype=object)
    return typed_metadata(frame)


#: The metadata columns that are not text: ``refinebio_age`` (a number) and
#: ``refinebio_processed`` (a nullable boolean, H5AD-safe).
TYPED_FIELDS = ("refinebio_age", "refinebio_processed")


def typed_metadata(frame: pd.DataFrame) -> pd.DataFrame:
    """Metadata columns with their types, the one place they are set: ``refinebio_age`` numeric
    (NaN when unknown), ``refinebio_processed`` a nullable boolean, every other column text
    (empty when unknown). Used for built groups, read downloads and the catalog's samples.

    Examples
    --------
    >>> typed_metadata(pd.DataFrame({"refinebio_age": ["54", ""], "refinebio_processed": ["True", ""],
    ...                              "refinebio_sex": ["male", None]})).dtypes.astype(str).tolist()
    ['float64', 'boolean', 'object']
    """
    if not frame.columns.is_unique:  # column by column, in place of a copy
        frame = frame.copy()
        for i, col in enumerate(frame.columns):
            frame.isetitem(i, _typed_column(col, frame.iloc[:, i]))
        return frame
    # built in one go: setting 40 columns one by one took most of the time of reading a group
    columns = {col: _typed_column(col, frame[col]) for col in frame.columns}
    return pd.DataFrame(columns, index=frame.index, columns=frame.columns)


def _typed_column(name: Any, values: pd.Series) -> Any:
    if name == "refinebio_age":
        return pd.to_numeric(values.where(values != ""), errors="coerce")
    if name == "refinebio_processed":
        return pd.array(
            [None if v == "" else v for v in map(_as_bool, values.tolist())], dtype="boolean"
        )
    out = np.empty(len(values), dtype=object)
    out[:] = [_text(v) for v in values.tolist()]
    return out


def _as_bool(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = _text(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    return ""
