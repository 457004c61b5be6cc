"""The widgets: thin ipywidgets views over the core (needs the ``widgets`` extra).

Each part of the app is a widget of its own; :class:`DatasetBuilder` puts them together.
Nothing here computes a dataset: every action is a call into :mod:`refinewidgets.core`.
"""

from .builder import DatasetBuilder
from .cart import DatasetCartView
from .experiment_browser import ExperimentBrowser
from .options import OptionsPanel
from .results import ResultsView
from .sample_picker import SamplePicker
from .save import SavePanel

__all__ = [
    "DatasetBuilder",
    "DatasetCartView",
    "ExperimentBrowser",
    "OptionsPanel",
    "ResultsView",
    "SamplePicker",
    "SavePanel",
]
