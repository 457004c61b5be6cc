"""A dataset spec as a URL query string, and back: the app's shareable link.

The app writes the selection and its options into the page's URL, so reloading restores them and
a copied link opens the same dataset. The form is readable and short:

- ``exp=GSE71102`` takes every sample of the experiment (refine.bio's ``["ALL"]``);
  ``exp=GSE71102:GSM1,GSM2`` takes those samples; one ``exp`` per experiment, in order;
- ``remote=SERVICE:NAME`` is an experiment still to fetch (see
  :mod:`refinewidgets.core.pending`), one per experiment, in order:
  ``remote=refinebio:GSE37382`` (a refine.bio experiment), ``remote=bgee:Homo_sapiens/ERP132576``
  (a Bgee experiment, in its species folder) and ``remote=bgee:Danio_rerio`` (every experiment
  of a Bgee species: its species tarball). Only the names travel: titles and organisms are
  asked again of the service, the app shows the accession meanwhile;
- each option not at its default, by its :class:`~refinewidgets.core.spec.Dataset` name:
  ``aggregate_by=SPECIES``, ``quantile_normalize=0``, ``pseudobulk=sample``; a dict option
  (``cell_filter``) as ``cell_filter.cell_type=B cell`` (repeated for several values; an
  exclusion as ``cell_filter.sex.not_in=unknown``, a range as
  ``cell_filter.total_counts.min=500.0``; a filter text as ``cell_filter=<text>``), a list
  option as the name repeated.

:class:`Link` is what a link holds (the local experiments, those to fetch, the options);
:func:`link_query` and :func:`link_from_query` turn it into query pairs and back;
:func:`dataset_query` and :func:`dataset_from_query` do the same for a plain Dataset.

Everything read from a URL is checked before use: accessions must match
:data:`~refinewidgets.core.names.ACCESSION_PATTERN`, Bgee species
:data:`~refinewidgets.core.pending.SPECIES_PATTERN`, services be known, option values go through
the Dataset's own checks, and unknown keys are refused. A bad link raises
:class:`~refinewidgets.errors.DatasetSpecError` with a message naming the offending part
(nothing of it is used); other query keys (``token``, ``source``, ``theme``...) are left alone.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ..errors import DatasetSpecError, SourceFormatError
from .names import ACCESSION_PATTERN
from .pending import SERVICES, SPECIES_PATTERN, RemoteExperiment
from .spec import Dataset

__all__ = [
    "EXPERIMENT_KEY",
    "MAX_QUERY_LENGTH",
    "REMOTE_KEY",
    "Link",
    "dataset_from_query",
    "dataset_query",
    "link_from_query",
    "link_query",
    "our_keys",
    "replace_query",
]

#: The query key of one experiment (and its samples).
EXPERIMENT_KEY = "exp"
#: The query key of one experiment still to fetch (``refinebio:GSE1``, ``bgee:Danio_rerio``).
REMOTE_KEY = "remote"
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
    """Whether a query key is part of the dataset (``exp``, ``remote``, an option, ``option.key``).

    Examples
    --------
    >>> our_keys("exp"), our_keys("remote"), our_keys("cell_filter.cell_type"), our_keys("token")
    (True, True, True, False)
    """
    return key in (EXPERIMENT_KEY, REMOTE_KEY) or key.split(".", 1)[0] in Dataset.options()


@dataclass(frozen=True)
class Link:
    """What a link holds: the local experiments, the experiments still to fetch, the options.

    Parameters
    ----------
    data
        ``{experiment: [samples] or ["ALL"]}`` of the experiments at hand, in order.
    pending
        The experiments still to fetch (:class:`~refinewidgets.core.pending.RemoteExperiment`),
        in order.
    options
        :class:`~refinewidgets.core.spec.Dataset` keywords; missing ones are at their default.

    Examples
    --------
    >>> link = Link({"GSE1": ["ALL"]}, (RemoteExperiment("bgee", "", species="Danio_rerio"),))
    >>> urlencode(link_query(link))
    'exp=GSE1&remote=bgee%3ADanio_rerio'
    >>> link_from_query(urlencode(link_query(link))) == link
    True
    """

    data: Mapping[str, list[str]] = field(default_factory=dict)
    pending: tuple[RemoteExperiment, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # one normal form, so that two links holding the same are equal
        object.__setattr__(self, "data", {e: list(s) for e, s in self.data.items()})
        object.__setattr__(self, "pending", tuple(self.pending))
        values = {**Dataset.options(), **self.options}
        object.__setattr__(self, "options", {k: values[k] for k in Dataset.options()})

    @classmethod
    def of(cls, dataset: Dataset | None, pending: Sequence[RemoteExperiment] = ()) -> Link:
        """The link of ``dataset`` (its data and options) and ``pending``."""
        if dataset is None:
            return cls({}, tuple(pending))
        options = {k: getattr(dataset, k) for k in Dataset.options()}
        return cls(dataset.data, tuple(pending), options)

    @property
    def dataset(self) -> Dataset | None:
        """The spec of the local experiments (None when the link names none)."""
        return Dataset(dict(self.data), **self.options) if self.data else None

    def __bool__(self) -> bool:
        return bool(self.data or self.pending)


def _remote_value(exp: RemoteExperiment) -> str:
    """``refinebio:GSE1``, ``bgee:Homo_sapiens/ERP1`` or ``bgee:Danio_rerio`` (whole species)."""
    if exp.service == "bgee":
        return f"bgee:{exp.species}/{exp.accession}" if exp.accession else f"bgee:{exp.species}"
    return f"{exp.service}:{exp.accession}"


def _option_pairs(options: Mapping[str, Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for name, default in Dataset.options().items():
        value = options.get(name, default)
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


def link_query(link: Link | None) -> list[tuple[str, str]]:
    """The ``(key, value)`` pairs encoding ``link`` (none for None or an empty link: the options
    of a dataset without experiments are not worth a link).

    Examples
    --------
    >>> pending = (RemoteExperiment("refinebio", "GSE2"), RemoteExperiment("bgee", "ERP3", "Homo_sapiens"))
    >>> link_query(Link({}, pending, {"scale_by": "STANDARD"}))
    [('remote', 'refinebio:GSE2'), ('remote', 'bgee:Homo_sapiens/ERP3'), ('scale_by', 'STANDARD')]
    """
    if not link:
        return []
    pairs: list[tuple[str, str]] = []
    for experiment, samples in link.data.items():
        pairs.append(
            (
                EXPERIMENT_KEY,
                experiment if samples == ["ALL"] else f"{experiment}:{','.join(samples)}",
            )
        )
    pairs.extend((REMOTE_KEY, _remote_value(p)) for p in link.pending)
    return pairs + _option_pairs(link.options)


def dataset_query(
    dataset: Dataset | None, pending: Sequence[RemoteExperiment] = ()
) -> list[tuple[str, str]]:
    """The ``(key, value)`` pairs encoding ``dataset`` and the experiments still to fetch
    (none for None and nothing pending).

    Examples
    --------
    >>> ds = Dataset({"GSE1": ["GSM1", "GSM2"], "SRP2": ["ALL"]}, aggregate_by="SPECIES")
    >>> urlencode(dataset_query(ds))
    'exp=GSE1%3AGSM1%2CGSM2&exp=SRP2&aggregate_by=SPECIES'
    >>> dataset_from_query(urlencode(dataset_query(ds))) == ds
    True
    """
    return link_query(Link.of(dataset, pending))


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


_REMOTE_FORMS = (
    "remote=refinebio:ACCESSION, remote=bgee:Species_name/ACCESSION or remote=bgee:Species_name"
)


def _remote(value: str) -> RemoteExperiment:
    """One ``remote=`` value, checked as :class:`RemoteExperiment` checks its names."""
    service, sep, name = value.strip().partition(":")
    if not sep or service not in SERVICES:
        raise DatasetSpecError(
            f"The link has remote={value[:60]!r}, which names no service we fetch from "
            f"({', '.join(SERVICES)}): write {_REMOTE_FORMS}."
        )
    species, accession = "", name
    if service == "bgee":
        species, slash, accession = name.partition("/")
        if not SPECIES_PATTERN.fullmatch(species):
            raise DatasetSpecError(
                f"The link names the Bgee species {species[:60]!r}, which is not a species "
                "folder (such as Homo_sapiens): the link is damaged; start again from the app's "
                "page."
            )
        if slash:
            accession = _accession(accession, "Bgee experiment")
    else:
        accession = _accession(accession, f"{SERVICES[service]} experiment")
    try:
        return RemoteExperiment(
            service,
            accession,
            species=species,
            organism=species.upper(),
            title="" if accession else f"{species.replace('_', ' ')}: Bgee's species tarball",
        )
    except (DatasetSpecError, SourceFormatError) as exc:
        raise DatasetSpecError(f"The link has remote={value[:60]!r}: {exc}") from None


def _pending(values: Iterable[str], data: Mapping[str, list[str]]) -> tuple[RemoteExperiment, ...]:
    pending: dict[str, RemoteExperiment] = {}
    for value in values:
        exp = _remote(value)
        if exp.key in pending:
            raise DatasetSpecError(
                f"The link names {exp.key} twice to fetch: keep one remote={_remote_value(exp)}."
            )
        if exp.key in data:
            raise DatasetSpecError(
                f"The link names {exp.key} both as an experiment at hand (exp=) and as one to "
                f"fetch (remote=): keep one."
            )
        pending[exp.key] = exp
    return tuple(pending.values())


#: The keys of a cell filter's conditions (see :mod:`.cell_filter`).
_CONDITION_KEYS = ("in", "not_in", "min", "max")


def _options(pairs: Iterable[tuple[str, str]]) -> dict[str, object]:
    """The Dataset options of a link's ``key=value`` pairs (``exp=`` and ``remote=`` left out),
    each read by its kind: a filter, a list, a flag or one value."""
    kinds = _kinds()
    options: dict[str, object] = {}
    for key, value in pairs:
        if key in (EXPERIMENT_KEY, REMOTE_KEY):
            continue
        name, dot, sub = key.partition(".")
        kind = kinds[name]
        if dot and kind != "dict":
            raise DatasetSpecError(f"The link has {key!r}, but {name} takes no sub-key.")
        if kind == "dict" and not dot and name == "cell_filter":  # a filter text
            if name in options:
                raise DatasetSpecError(f"The link sets {name} twice: keep one {name}=...")
            options[name] = value or None
        elif kind == "dict":
            _filter_pair(options.setdefault(name, {}), key, name, sub, value)  # type: ignore[arg-type]
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
    return options


def _filter_pair(conditions: dict, key: str, name: str, sub: str, value: str) -> None:
    """Add one ``name.COLUMN=VALUE`` (a value of the column) or ``name.COLUMN.in|not_in|min|max
    =VALUE`` (a condition) to the filter's ``conditions``."""
    if not sub:
        raise DatasetSpecError(
            f"The link has {key!r}: write it as {name}.COLUMN=VALUE (such as "
            f"{name}.cell_type=B cell)."
        )
    column, _, which = sub.rpartition(".")
    if column and which in _CONDITION_KEYS:  # an exclusion or a range
        condition = conditions.setdefault(column, {})
        if not isinstance(condition, dict):
            raise DatasetSpecError(
                f"The link gives {name}.{column} both values and {which!r}: keep one."
            )
        if which in ("min", "max"):
            try:
                condition[which] = float(value)
            except ValueError:
                raise DatasetSpecError(
                    f"The link has {which}={value[:40]!r} for {name}.{column}: a number is needed."
                ) from None
        else:
            condition.setdefault(which, []).append(value)
        return
    values = conditions.setdefault(sub, [])
    if not isinstance(values, list):
        raise DatasetSpecError(
            f"The link gives {name}.{sub} both values and a condition: keep one."
        )
    values.append(value)


def link_from_query(query: str | None) -> Link | None:
    """The :class:`Link` a query string encodes (None when it names no experiment at all).

    Raises :class:`DatasetSpecError` for a damaged link: a bad accession or species, an unknown
    service, option or value, options without experiments.

    Examples
    --------
    >>> link = link_from_query("remote=refinebio:GSE1&remote=bgee:Homo_sapiens/ERP2&scale_by=ROBUST")
    >>> [(p.service, p.key) for p in link.pending], link.options["scale_by"], link.dataset
    ([('refinebio', 'GSE1'), ('bgee', 'ERP2')], 'ROBUST', None)
    >>> link_from_query("remote=bgee:../etc")
    Traceback (most recent call last):
    ...
    refinewidgets.errors.DatasetSpecError: The link names the Bgee species '..', which is not a species folder ...
    """
    pairs = [(k, v) for k, v in parse_qsl(query or "", keep_blank_values=True) if our_keys(k)]
    if not pairs:
        return None
    experiments = [v for k, v in pairs if k == EXPERIMENT_KEY]
    remote = [v for k, v in pairs if k == REMOTE_KEY]
    if not experiments and not remote:
        keys = sorted({k for k, _ in pairs})
        raise DatasetSpecError(
            f"The link sets {', '.join(keys)} but names no experiment (exp=... or remote=...): "
            "add samples in the app and copy the link again."
        )
    options = _options(pairs)
    data = _experiments(experiments)
    pending = _pending(remote, data)
    try:  # the Dataset's own checks (over a stand-in when every experiment is to fetch)
        checked = Dataset(data or {"_": ["ALL"]}, **options)  # type: ignore[arg-type]
    except DatasetSpecError as exc:
        raise DatasetSpecError(f"The link holds a dataset that cannot be used: {exc}") from None
    return Link(data, pending, {k: getattr(checked, k) for k in Dataset.options()})


def dataset_from_query(query: str | None) -> Dataset | None:
    """The Dataset of the experiments at hand a query string encodes (None when it names none;
    :func:`link_from_query` gives the experiments to fetch too).

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
    link = link_from_query(query)
    return None if link is None else link.dataset


def replace_query(query: str, state: Dataset | Link | None) -> str:
    """``query`` with its dataset keys replaced by those of ``state`` (other keys kept).

    Examples
    --------
    >>> replace_query("token=t&exp=OLD", Dataset({"NEW": ["ALL"]}))
    'token=t&exp=NEW'
    >>> replace_query("token=t&exp=OLD", Link({}, (RemoteExperiment("refinebio", "GSE9"),)))
    'token=t&remote=refinebio%3AGSE9'
    """
    link = state if isinstance(state, Link) or state is None else Link.of(state)
    kept = [(k, v) for k, v in parse_qsl(query or "", keep_blank_values=True) if not our_keys(k)]
    return urlencode(kept + link_query(link))
