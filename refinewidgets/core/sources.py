"""Where a catalog's samples and values come from.

A *source* holds refine.bio-shaped records and can read expression values on demand. The core
defines the interface and an in-memory source; the ``io`` layer implements sources over
refine.bio zips and folders (and Bgee files). A source lists, for each of its *matrices*, the
samples that have values there; the build reads only the matrices and columns it needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

__all__ = ["InMemorySource", "Source"]


@runtime_checkable
class Source(Protocol):
    """What the catalog and the build need from a source.

    Attributes
    ----------
    name
        A short label (a file name) shown to users and recorded in ``cat.samples["source"]``.
    experiments
        ``accession -> experiment record`` (refine.bio's aggregated-metadata shape).
    samples
        ``accession -> sample record`` (``refinebio_*`` fields and ``refinebio_annotations``).
    qn_targets
        ``organism -> sorted 1-D array``: quantile-normalization targets the source ships.
    log_scale
        True when RNA-seq values were already log-transformed by the source (a refine.bio
        download aggregated by SPECIES, or one that was quantile-normalized).

    A source may also have ``missing_values``, ``accession -> reason`` for samples it lists
    without values; a build gives that reason when it filters them.
    """

    name: str
    experiments: Mapping[str, Mapping[str, Any]]
    samples: Mapping[str, Mapping[str, Any]]
    qn_targets: Mapping[str, np.ndarray]
    log_scale: bool

    def matrices(self) -> Mapping[str, Sequence[str]]:
        """``matrix id -> sample accessions`` that have values in that matrix."""

    def read_matrix(self, matrix_id: str, samples: Sequence[str]) -> pd.DataFrame:
        """The raw values (genes x ``samples``), unsanitised gene ids as the index."""


class InMemorySource:
    """A source over records and DataFrames held in memory.

    Parameters
    ----------
    experiments, samples
        Records as in ``aggregated_metadata.json``.
    values
        ``matrix id -> genes x samples DataFrame`` (usually one per experiment).
    qn_targets
        Optional ``organism -> target`` arrays.
    name
        A label for the source.
    log_scale
        Whether RNA-seq values are already log-transformed.

    Examples
    --------
    >>> import pandas as pd
    >>> src = InMemorySource(
    ...     experiments={"E1": {"accession_code": "E1", "sample_accession_codes": ["S1"],
    ...                         "technology": "MICROARRAY", "organisms": ["HOMO_SAPIENS"]}},
    ...     samples={"S1": {"refinebio_accession_code": "S1", "refinebio_organism": "HOMO_SAPIENS"}},
    ...     values={"E1": pd.DataFrame({"S1": [1.0, 2.0]}, index=["G1", "G2"])})
    >>> dict(src.matrices())
    {'E1': ['S1']}
    """

    def __init__(
        self,
        experiments: Mapping[str, Mapping[str, Any]],
        samples: Mapping[str, Mapping[str, Any]],
        values: Mapping[str, pd.DataFrame],
        qn_targets: Mapping[str, Any] | None = None,
        *,
        name: str = "memory",
        log_scale: bool = False,
    ) -> None:
        self.name = name
        self.experiments = dict(experiments)
        self.samples = dict(samples)
        self._values = dict(values)
        self.qn_targets = {
            k: np.sort(np.asarray(v, dtype=float)) for k, v in (qn_targets or {}).items()
        }
        self.log_scale = log_scale

    @classmethod
    def from_compendium(cls, compendium: Any, *, name: str = "memory") -> InMemorySource:
        """A source over a :class:`refinewidgets.testing.compendium.Compendium`."""
        return cls(
            compendium.experiments,
            compendium.samples,
            compendium.values,
            compendium.qn_targets,
            name=name,
        )

    def matrices(self) -> dict[str, list[str]]:
        return {k: [str(c) for c in v.columns] for k, v in self._values.items()}

    def read_matrix(self, matrix_id: str, samples: Sequence[str]) -> pd.DataFrame:
        return self._values[matrix_id].loc[:, list(samples)]

    def __repr__(self) -> str:
        return f"<InMemorySource {self.name!r}: {len(self.experiments)} experiments, {len(self.samples)} samples>"
