"""The pure-Python core: dataset spec, catalog, merge, normalize, scale, result.

Imports numpy, pandas, scipy, scikit-learn and anndata only; never ipywidgets or IPython.
"""
