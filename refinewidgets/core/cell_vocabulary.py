"""One word for "not known" in the unified cell columns, whichever writer made the file.

Bgee's writers say "not known" differently: the older ones give cell type
``cellular_component`` (``GO:0005575``, the root term of the Gene Ontology's cellular component
branch, used as a placeholder) and sex ``NA`` or ``not annotated``; the newest writes
``unknown``, as CELLxGENE's schema does. Every such value becomes :data:`UNKNOWN` in the unified
columns (``cell_type``, ``cell_type_id``, ``tissue``, ``tissue_id``, ``stage``, ``stage_id``,
``sex``, ``strain``), so ``{"sex": {"not_in": ["unknown"]}}`` means the same on every file; the
file's own value stays in the file's own column (see
:class:`~refinewidgets.io.bgee.h5ad.BgeeH5ad`). A unified column the file lacks altogether is
``unknown`` too.

=================================  ==========================================================
file's value (any case)            unified value
=================================  ==========================================================
``NA``, ``N/A``, ``nan``, ``""``   ``unknown``
``not annotated``                  ``unknown``
``cellular_component``             ``unknown`` (cell type)
``GO:0005575``                     ``unknown`` (cell type id)
``unknown``                        ``unknown``
=================================  ==========================================================

``mixed`` (a pool of both sexes) and ``hermaphrodite`` are values, not placeholders: they stay.

Examples
--------
>>> import pandas as pd
>>> unify_not_known(pd.Categorical(["B cell", "cellular_component", "NA"]))[0].tolist()
['B cell', 'unknown', 'unknown']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["NOT_KNOWN", "UNIFIED_TERM_COLUMNS", "UNKNOWN", "is_not_known", "unify_not_known"]

#: The one word for "not known" in the unified columns (CELLxGENE's word).
UNKNOWN = "unknown"
#: The values (compared lower-cased, stripped) any writer uses for "not known".
NOT_KNOWN = frozenset(
    {"", "na", "n/a", "nan", "none", "not annotated", "unknown", "cellular_component", "go:0005575"}
)
#: The unified columns whose placeholders become :data:`UNKNOWN`.
UNIFIED_TERM_COLUMNS = (
    "cell_type",
    "cell_type_id",
    "tissue",
    "tissue_id",
    "stage",
    "stage_id",
    "sex",
    "strain",
)


def is_not_known(value) -> bool:
    """Whether a value is one of the placeholders of :data:`NOT_KNOWN`.

    >>> is_not_known(" Not Annotated"), is_not_known("mixed")
    (True, False)
    """
    return str(value).strip().lower() in NOT_KNOWN


def unify_not_known(values: pd.Categorical) -> tuple[pd.Categorical, bool]:
    """``(values with every placeholder as "unknown", whether any value changed)``.

    Works on the categories only (no per-cell work); the categories stay sorted.
    """
    categories = np.asarray(values.categories.astype(str), dtype=object)
    placeholder = np.array([is_not_known(c) for c in categories], dtype=bool)
    used = np.zeros(len(categories), dtype=bool)
    used[values.codes[values.codes >= 0]] = True
    changed = bool((used & placeholder & (categories != UNKNOWN)).any())
    if not placeholder.any():
        return values, False
    labels = np.where(placeholder, UNKNOWN, categories)
    new_categories, inverse = np.unique(labels.astype(str), return_inverse=True)
    codes = np.where(values.codes >= 0, inverse[np.maximum(values.codes, 0)], -1)
    unified = pd.Categorical.from_codes(codes, categories=new_categories)
    return unified.remove_unused_categories(), changed
