"""Bgee as a source of the "Choose samples" tab: its species, then a species' droplet
single-cell experiments, listed from Bgee's FTP site (see
:mod:`~refinewidgets.widgets.remote_browser` for what the remote panels share: background
calls, messages, the download cache).
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w
import pandas as pd
from traitlets import List

from ..core.browse import Page
from ..core.pending import RemoteExperiment
from ._status import guarded
from .remote_browser import IN_CACHE, RemotePanel, cached_names

__all__ = ["BgeeBrowser"]

BGEE_COLUMNS = [
    ("experiment", "Experiment", 130),
    ("file", "File", 360),
    ("size", "Size", 80),
    ("source", "Published as", 110),
    ("downloaded", "In the cache", 110),
]


class BgeeBrowser(RemotePanel):
    """Choose a Bgee species, then its droplet single-cell experiments; add them (to fetch).

    Examples
    --------
    Needs Bgee (or the test server of :mod:`refinewidgets.testing.fake_services`)::

        panel = BgeeBrowser(); panel.activate(); panel.wait()
        panel.species.value = "Homo_sapiens"; panel.wait()
        panel.table.tick("ERP132576"); panel.add_button.click()
    """

    listing = List(help="The experiments of the chosen species, as records.")

    service_name = "Bgee"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("bgee", "rw-bgee", **kwargs)
        from ..io.remote.bgee import DEFAULT_FTP, FTP_ENV

        self._make_title(
            "droplet single-cell experiments from Bgee's FTP site", FTP_ENV, DEFAULT_FTP
        )
        self._frame = pd.DataFrame(columns=[c for c, _, _ in BGEE_COLUMNS])
        self._tarball = False
        self.species = w.Dropdown(
            options=[], value=None, description="Species", layout=w.Layout(width="330px")
        )
        self.species.add_class("rw-bgee-species")
        self.species.observe(self._on_species, names="value")
        self._make_table(BGEE_COLUMNS, "Bgee experiments", "library")
        self.table.observe(self._render, names=["page", "page_size", "sort_by", "ascending"])
        self.add_species_button = self._button(
            "Add the whole species",
            "plus-square",
            220,
            "Every experiment of the species: Build downloads Bgee's species tarball",
            "add-species",
            self.add_species,
        )
        self.children = [
            self.title,
            self.species,
            self.table,
            w.HBox(
                [self.add_button, self.add_species_button, self.open_cache_button],
                layout=w.Layout(flex_flow="row wrap"),
            ),
            self.busy_box,
            self.status,
            self.details,
        ]

    def _load(self) -> None:
        self.load_species()

    def load_species(self) -> None:
        """Ask Bgee for its species with droplet single-cell files."""
        from ..io.remote.bgee import Bgee

        def done(species: list[str]) -> None:
            self.species.options = [(s.replace("_", " "), s) for s in species]
            self.species.value = None
            self.status.show(
                f"Bgee has droplet single-cell data for {len(species)} species: choose one.",
                "info",
            )

        self._run("Listing Bgee's species", lambda: Bgee().list_species(), done)

    def _on_species(self, change) -> None:
        if change["new"]:
            self.list_experiments(change["new"])

    def list_experiments(self, species: str) -> None:
        """Ask Bgee for the droplet experiments of ``species``."""
        from ..io.remote.bgee import Bgee

        def done(frame: pd.DataFrame) -> None:
            self._show(species, frame)

        name = species.replace("_", " ")
        self._run(
            f"Listing Bgee's experiments of {name}", lambda: Bgee().list_experiments(species), done
        )

    def _show(self, species: str, frame: pd.DataFrame) -> None:
        self._last = (species, frame)
        cached = cached_names("bgee")
        table = frame.copy()
        table["downloaded"] = [
            IN_CACHE if source == "tarball" or name in cached else ""
            for name, source in zip(table["file"], table["source"])
        ]
        table["source"] = table["source"].map({"file": "its own file", "tarball": "the tarball"})
        table = table.drop_duplicates("experiment").set_index("experiment", drop=False)
        table.index.name = "experiment"
        self._frame = table
        self._tarball = bool(frame.attrs.get("tarball"))
        self.listing = table[["experiment", "species", "file", "size"]].to_dict("records")
        self.add_species_button.disabled = not self._tarball
        self.table.selected = []
        self.table.page = 0
        self._render()
        name = species.replace("_", " ")
        if len(table):
            self.status.show(
                f"Bgee lists {len(table)} droplet experiment(s) of {name}. Tick some and press "
                '"Add to dataset": Build fetches them.',
                "info",
            )
        elif self._tarball:
            self.status.show(
                f"Bgee publishes {name} as one species tarball: its experiments are listed once "
                'it is downloaded. "Add the whole species" adds every experiment (Build '
                "downloads the tarball).",
                "info",
            )
        else:
            self.status.show(f"Bgee lists no droplet experiment of {name}.", "info")

    def _render(self, change=None) -> None:
        frame = self._frame
        if self.table.sort_by in frame.columns:
            frame = frame.sort_values(self.table.sort_by, ascending=self.table.ascending)
        size = self.table.page_size
        pages = max(1, -(-len(frame) // size))
        page = min(self.table.page, pages - 1)
        rows = frame.iloc[page * size : (page + 1) * size]
        self.table.show(Page(rows[[c for c, _, _ in BGEE_COLUMNS]], len(frame), page, size))

    @guarded
    def add_chosen(self) -> None:
        """Hand the ticked experiments to the listeners, to be fetched by the next build."""
        species = self.species.value
        if not self.chosen or not species:
            self.status.show("Choose a species and tick one or more experiments first.", "warning")
            return
        experiments = [
            RemoteExperiment(
                "bgee",
                acc,
                species=species,
                title=str(self._frame.loc[acc, "file"]) if acc in self._frame.index else "",
                organism=species.upper(),
            )
            for acc in self.chosen
        ]
        self._hand_over(
            experiments,
            f"Added {len(experiments)} experiment(s) of {species.replace('_', ' ')} from Bgee "
            "to the dataset. Build fetches them.",
        )

    @guarded
    def add_species(self) -> None:
        """Add every experiment of the chosen species (Bgee's species tarball)."""
        species = self.species.value
        if not species:
            self.status.show("Choose a species first.", "warning")
            return
        name = species.replace("_", " ")
        self._hand_over(
            [
                RemoteExperiment(
                    "bgee",
                    "",
                    species=species,
                    title=f"{name}: Bgee's species tarball",
                    organism=species.upper(),
                )
            ],
            f"Added every experiment of {name} from Bgee to the dataset. Build downloads the "
            "species tarball.",
        )
