"""Seeded generators and test helpers: compendia, the demo's design, Bgee H5AD files, listings.

Used by the tests, the benchmarks and ``scripts/make_demo.py``; no runtime module imports this
package (``tests/test_layering.py`` proves it), the way anndata keeps ``gen_adata`` out of its
data model.
"""

from .bgee_files import VARIANTS, write_bgee_h5ad
from .compendium import Compendium, synthetic_compendium
from .demo_design import demo_compendium
from .listing import single_cell_tables, synthetic_listing

__all__ = [
    "VARIANTS",
    "Compendium",
    "demo_compendium",
    "single_cell_tables",
    "synthetic_compendium",
    "synthetic_listing",
    "write_bgee_h5ad",
]
