"""A dataset spec as a URL query string, and back: the app's shareable link.

The app writes the selection and its options into the page's URL, so reloading restores them and
a copied link opens the same dataset. The form is readable and short:

- ``exp=GSE71102`` takes every sample of the experiment (refine.bio's ``["ALL"]``);
  ``exp=GSE71102:GSM1,GSM2`` takes those samples; one ``exp`` per experiment, in order;
- each option not at its default, by its :class:`~refinewidgets.core.spec.Dataset` name:
  ``aggregate_by=SPECIES``, ``quantile_normalize=0``, ``pseudobulk=sample``; a dict option
  (``cell_filter``) as ``cell_filter.cell_type=B cell`` (repeated for several values; an
  exclusion as ``cell_filter.sex.not_in=unknown``, a range as
  ``cell_filter.total_counts.min=500.0``), a list option as the name repeated.

Everything read from a URL is checked before use: accessions must match
:data:`~refinewidgets.core.names.ACCESSION_PATTERN`, option values go through the Dataset's own
checks, and unknown keys are refused. A bad link raises :class:`~refinewidgets.errors.
DatasetSpecError` with a message naming the offending part; other query keys (``token``,
``source``, ``theme``...) are left alone.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode

from ..errors import DatasetSpecError
from .names import ACCESSION_PATTERN
from .spec import Dataset

__all__ = [
    "EXPERIMENT_KEY",
    "MAX_QUERY_LENGTH",
    "dataset_from_query",
    "dataset_query",
    "our_keys",
    "replace_query",
]

#: The query key of one experiment (and its samples).
EXPERIMENT_KEY = "exp"
#: Longer queries are not written into the URL (servers refuse very long request lines).
MAX_QUERY_LENGTH = 16_000
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _kinds() -> dict[str, str]:
    """Each option's kind from its annotation: 'bool', 'dict', 'list' or 'str'."""
    hints = typing.get_type_hints(Dataset)
    kinds = {}
    for name in Dataset.options():
        hint = hints.get(name)
        args = [hint, *typing.get_args(hint)]
        origins = {typing.get_origin(a) or a for a in args}
        kinds[name] = (
            "bool"
            if bool in origins
            else "dict"
            if dict in origins
            else "list"
            if list in origins or tuple in origins
            else "str"
        )
    return kinds


def our_keys(key: str) -> bool:
    """Whether a query key is part of the dataset (``exp``, an option, ``option.key``).

    Examples
    --------
    >>> our_keys("exp"), our_keys("cell_filter.cell_type"), our_keys("token")
    (True, True, False)
    """
    return key == EXPERIMENT_KEY or key.split(".", 1)[0] in Dataset.options()


def dataset_query(dataset: Dataset | None) -> list[tuple[str, str]]:
    """The ``(key, value)`` pairs encoding ``dataset`` (none for None).

    Examples
    --------
    >>> ds = Dataset({"GSE1": ["GSM1", "GSM2"], "SRP2": ["ALL"]}, aggregate_by="SPECIES")
    >>> urlencode(dataset_query(ds))
    'exp=GSE1%3AGSM1%2CGSM2&exp=SRP2&aggregate_by=SPECIES'
    >>> dataset_from_query(urlencode(dataset_query(ds))) == ds
    True
    """
    if dataset is None:
        return []
    pairs: list[tuple[str, str]] = []
    for experiment, samples in dataset.data.items():
        pairs.append(
            (
                EXPERIMENT_KEY,
                experiment if samples == ["ALL"] else f"{experiment}:{','.join(samples)}",
            )
        )
    for name, default in Dataset.options().items():
        value = getattr(dataset, name)
        if value == default:
            continue
        if isinstance(value, bool):
            pairs.append((name, "1" if value else "0"))
        elif isinstance(value, Mapping):
            for column, condition in value.items():
                if isinstance(condition, Mapping):  # cell_filter.sex.not_in=..., .min=500.0
                    for key, v in condition.items():
                        values = v if isinstance(v, (list, tuple)) else [repr(float(v))]
                        pairs.extend((f"{name}.{column}.{key}", str(x)) for x in values)
                else:
                    pairs.extend((f"{name}.{column}", str(v)) for v in condition)
        elif isinstance(value, (list, tuple)):
            pairs.extend((name, str(v)) for v in value)
        elif value is None:
            pairs.append((name, ""))
        else:
            pairs.append((name, str(value)))
    return pairs


def _accession(value: str, what: str) -> str:
    value = value.strip()
    if not ACCESSION_PATTERN.fullmatch(value):
        raise DatasetSpecError(
            f"The link names the {what} {value[:60]!r}, which is not an accession (letters, "
            "digits, '.', '_' and '-'): the link is damaged; start again from the app's page."
        )
    return value


def _experiments(values: Iterable[str]) -> dict[str, list[str]]:
    data: dict[str, list[str]] = {}
    for value in values:
        experiment, _, samples = value.partition(":")
        experiment = _accession(experiment, "experiment")
        if experiment in data:
            raise DatasetSpecError(
                f"The link names the experiment {experiment} twice: keep one exp={experiment}."
            )
        chosen = [_accession(s, "sample") for s in samples.split(",")] if samples else ["ALL"]
        data[experiment] = chosen
    return data


#: The keys of a cell filter's conditions (see :mod:`.cell_filter`).
_CONDITION_KEYS = ("in", "not_in", "min", "max")


def dataset_from_query(query: str | None) -> Dataset | None:
    """The Dataset a query string encodes (None when it names no experiment).

    Raises :class:`DatasetSpecError` for a damaged link: a bad accession, an unknown option or
    value, options without experiments.

    Examples
    --------
    >>> dataset_from_query("token=abc") is None
    True
    >>> dataset_from_query("exp=SRP2&scale_by=ROBUST&quantile_normalize=0").to_dict()["scale_by"]
    'ROBUST'
    >>> dataset_from_query("exp=../etc")
    Traceback (most recent call last):
    ...
    refinewidgets.errors.DatasetSpecError: The link names the experiment '../etc', which is not an accession ...
    """
    pairs = [(k, v) for k, v in parse_qsl(query or "", keep_blank_values=True) if our_keys(k)]
    if not pairs:
        return None
    experiments = [v for k, v in pairs if k == EXPERIMENT_KEY]
    if not experiments:
        keys = sorted({k for k, _ in pairs})
        raise DatasetSpecError(
            f"The link sets {', '.join(keys)} but names no experiment (exp=...): add samples in "
            "the app and copy the link again."
        )
    kinds = _kinds()
    options: dict[str, object] = {}
    for key, value in pairs:
        if key == EXPERIMENT_KEY:
            continue
        name, dot, sub = key.partition(".")
        kind = kinds[name]
        if dot and kind != "dict":
            raise DatasetSpecError(f"The link has {key!r}, but {name} takes no sub-key.")
        if kind == "dict":
            if not dot or not sub:
                raise DatasetSpecError(
                    f"The link has {key!r}: write it as {name}.COLUMN=VALUE (such as "
                    f"{name}.cell_type=B cell)."
                )
            column, _, key = sub.rpartition(".")
            if column and key in _CONDITION_KEYS:  # an exclusion or a range
                condition = options.setdefault(name, {}).setdefault(column, {})  # type: ignore[union-attr]
                if not isinstance(condition, dict):
                    raise DatasetSpecError(
                        f"The link gives {name}.{column} both values and {key!r}: keep one."
                    )
                if key in ("min", "max"):
                    try:
                        condition[key] = float(value)
                    except ValueError:
                        raise DatasetSpecError(
                            f"The link has {key}={value[:40]!r} for {name}.{column}: a number "
                            "is needed."
                        ) from None
                else:
                    condition.setdefault(key, []).append(value)
                continue
            values = options.setdefault(name, {}).setdefault(sub, [])  # type: ignore[union-attr]
            if not isinstance(values, list):
                raise DatasetSpecError(
                    f"The link gives {name}.{sub} both values and a condition: keep one."
                )
            values.append(value)
        elif kind == "list":
            options.setdefault(name, []).append(value)  # type: ignore[union-attr]
        elif name in options:
            raise DatasetSpecError(f"The link sets {name} twice: keep one {name}=...")
        elif kind == "bool":
            word = value.strip().lower()
            if word not in _TRUE | _FALSE:
                raise DatasetSpecError(
                    f"The link has {name}={value[:40]!r}: use {name}=1 or {name}=0."
                )
            options[name] = word in _TRUE
        else:
            options[name] = value or None
    data = _experiments(experiments)
    try:
        return Dataset(data, **options)  # type: ignore[arg-type]
    except DatasetSpecError as exc:
        raise DatasetSpecError(f"The link holds a dataset that cannot be used: {exc}") from None


def replace_query(query: str, dataset: Dataset | None) -> str:
    """``query`` with its dataset keys replaced by those of ``dataset`` (other keys kept).

    Examples
    --------
    >>> replace_query("token=t&exp=OLD", Dataset({"NEW": ["ALL"]}))
    'token=t&exp=NEW'
    """
    kept = [(k, v) for k, v in parse_qsl(query or "", keep_blank_values=True) if not our_keys(k)]
    return urlencode(kept + dataset_query(dataset))
