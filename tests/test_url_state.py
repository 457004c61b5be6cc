"""The dataset in the page's address: the query codec (core) and the app's use of it (widgets)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest

import refinewidgets as rw
from refinewidgets.core.url_state import (
    MAX_QUERY_LENGTH,
    dataset_from_query,
    dataset_query,
    replace_query,
)
from refinewidgets.errors import DatasetSpecError


def _round_trip(ds):
    return dataset_from_query(urlencode(dataset_query(ds)))


def test_every_option_survives_the_link():
    ds = rw.Dataset(
        {"GSE1": ["GSM1", "GSM2"], "SRP2": ["ALL"], "E-MTAB-3": ["ERR3.1"]},
        aggregate_by="ALL",
        scale_by="ROBUST",
        quantile_normalize=False,
        join="outer",
        cell_filter={"cell_type": ["B cell", "T cell"], "sex": ["female"]},
        counts_normalization="LOG1P_CPM",
        pseudobulk="sample_cell_type",
    )
    back = _round_trip(ds)
    assert back == ds
    assert list(back.data) == ["GSE1", "SRP2", "E-MTAB-3"]  # the order added
    assert back.cell_filter == {"cell_type": ["B cell", "T cell"], "sex": ["female"]}


def test_the_link_is_short_and_readable():
    ds = rw.Dataset({"GSE1": ["GSM1", "GSM2"], "SRP2": ["ALL"]}, scale_by="STANDARD")
    assert dataset_query(ds) == [
        ("exp", "GSE1:GSM1,GSM2"),
        ("exp", "SRP2"),
        ("scale_by", "STANDARD"),
    ]  # options at their default are left out
    assert dataset_query(None) == []


def test_other_keys_are_kept_and_ours_replaced():
    query = "token=abc&exp=OLD&scale_by=MINMAX&theme=dark&source=a.zip"
    new = replace_query(query, rw.Dataset({"NEW": ["ALL"]}))
    assert parse_qsl(new) == [
        ("token", "abc"),
        ("theme", "dark"),
        ("source", "a.zip"),
        ("exp", "NEW"),
    ]
    assert replace_query(query, None) == "token=abc&theme=dark&source=a.zip"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("exp=../etc/passwd", "'../etc/passwd', which is not an accession"),
        ("exp=GSE1:GSM1,<b>x</b>", "the sample '<b>x</b>', which is not an accession"),
        ("exp=GSE1&exp=GSE1", "names the experiment GSE1 twice"),
        ("scale_by=STANDARD", "sets scale_by but names no experiment"),
        ("exp=GSE1&scale_by=LOUD", "`scale_by` must be one of"),
        ("exp=GSE1&quantile_normalize=maybe", "use quantile_normalize=1 or quantile_normalize=0"),
        ("exp=GSE1&aggregate_by=ALL&aggregate_by=SPECIES", "sets aggregate_by twice"),
        ("exp=GSE1&cell_filter.=B", "write it as cell_filter.COLUMN=VALUE"),
        (  # cell_filter=TEXT is a filter text (Census' syntax), read as such
            "exp=GSE1&cell_filter=B",
            "The cell filter 'B' cannot be read: a condition is expected here",
        ),
        ("exp=GSE1&scale_by.x=1", "scale_by takes no sub-key"),
        # experiments still to fetch: names checked as RemoteExperiment checks them
        ("remote=geo:GSE1", "remote='geo:GSE1', which names no service we fetch from"),
        ("remote=GSE1", "write remote=refinebio:ACCESSION, remote=bgee:Species_name/ACCESSION"),
        (
            "remote=refinebio:../etc",
            "the refine.bio experiment '../etc', which is not an accession",
        ),
        ("remote=refinebio:Homo_sapiens/ERP1", "'Homo_sapiens/ERP1', which is not an accession"),
        (
            "remote=bgee:homo sapiens/ERP1",
            "the Bgee species 'homo sapiens', which is not a species",
        ),
        ("remote=bgee:../../etc", "the Bgee species '..', which is not a species folder"),
        ("remote=bgee:Homo_sapiens/", "the Bgee experiment '', which is not an accession"),
        ("remote=bgee:Homo_sapiens/<b>x</b>", "the Bgee experiment '<b>x</b>', which is not"),
        ("remote=refinebio:GSE1&remote=refinebio:GSE1", "names GSE1 twice to fetch"),
        ("exp=GSE1&remote=refinebio:GSE1", "names GSE1 both as an experiment at hand (exp=)"),
        ("remote=refinebio:GSE1&scale_by=LOUD", "`scale_by` must be one of"),
    ],
)
def test_a_damaged_link_says_what_is_wrong(query, message):
    with pytest.raises(DatasetSpecError) as info:
        dataset_from_query(query)
    assert message in str(info.value)


def test_a_query_without_dataset_keys_is_no_dataset():
    assert dataset_from_query("") is None
    assert dataset_from_query(None) is None
    assert dataset_from_query("token=abc&theme=dark") is None


# -- experiments still to fetch (refine.bio, Bgee) -------------------------------------------


def _pending():
    from refinewidgets.core.pending import RemoteExperiment

    return (
        RemoteExperiment("refinebio", "GSE37382", title="Medulloblastoma", samples=285),
        RemoteExperiment("bgee", "ERP132576", species="Homo_sapiens"),
        RemoteExperiment("bgee", "", species="Danio_rerio"),
    )


def test_experiments_to_fetch_survive_the_link_in_order():
    from refinewidgets.core.url_state import Link, link_from_query, link_query

    ds = rw.Dataset({"GSE1": ["GSM1"]}, scale_by="ROBUST")
    link = Link.of(ds, _pending())
    pairs = link_query(link)
    assert pairs == [
        ("exp", "GSE1:GSM1"),
        ("remote", "refinebio:GSE37382"),
        ("remote", "bgee:Homo_sapiens/ERP132576"),
        ("remote", "bgee:Danio_rerio"),
        ("scale_by", "ROBUST"),
    ]
    assert dataset_query(ds, _pending()) == pairs
    back = link_from_query(urlencode(pairs))
    assert back == link and back.dataset == ds
    assert [(p.service, p.accession, p.species) for p in back.pending] == [
        ("refinebio", "GSE37382", ""),
        ("bgee", "ERP132576", "Homo_sapiens"),
        ("bgee", "", "Danio_rerio"),
    ]
    # only names travel: the title is not in the link, the species is known from its folder
    assert back.pending[0].title == "" and back.pending[0].samples is None
    assert back.pending[1].organism == "HOMO_SAPIENS"
    assert back.pending[2].label == "every experiment of Danio rerio"


def test_a_link_of_experiments_to_fetch_only_keeps_its_options():
    from refinewidgets.core.url_state import Link, link_from_query, link_query

    link = link_from_query("remote=refinebio:GSE37382&aggregate_by=SPECIES&quantile_normalize=1")
    assert link.dataset is None and [p.key for p in link.pending] == ["GSE37382"]
    assert link.options["aggregate_by"] == "SPECIES"
    assert dataset_from_query("remote=refinebio:GSE37382") is None  # nothing at hand
    assert link_query(Link({}, (), {"scale_by": "ROBUST"})) == []  # options alone: no link
    assert replace_query("token=t&remote=refinebio:OLD", None) == "token=t"


# -- the builder: restore from the page's query, keep the address up to date -------------------
pytest.importorskip("ipywidgets")


def test_the_builder_restores_the_link_and_follows_every_change(demo_cat):
    from refinewidgets.widgets import DatasetBuilder

    two = demo_cat.experiment_samples("GSE71102")[:2]
    query = f"token=t&exp=SRP091833&exp=GSE71102:{','.join(two)}&aggregate_by=SPECIES"
    builder = DatasetBuilder(demo_cat, page_query=query)
    assert builder.dataset == rw.Dataset(
        {"SRP091833": ["ALL"], "GSE71102": two}, aggregate_by="SPECIES"
    )
    assert builder.status.text == (
        "Dataset restored from the link: 2 experiment(s), 22 samples. "
        "Build it on the My dataset tab."
    )
    assert builder.options.aggregate.value == "SPECIES"
    assert builder.url_writer in builder.children
    assert parse_qsl(builder.url_writer.query)[0] == ("token", "t")  # the token stays

    builder.options.transformation.value = "STANDARD"
    assert ("scale_by", "STANDARD") in parse_qsl(builder.link_query)
    assert builder.url_writer.query == builder.link_query
    builder.cart_view.clear_button.click()
    assert builder.link_query == "token=t"  # no dataset, no link (the options stay in the app)
    builder.cart_view.undo_button.click()
    assert dataset_from_query(builder.link_query) == builder.dataset


def test_a_bad_link_is_a_message_and_leaves_an_empty_dataset(demo_cat):
    from refinewidgets.widgets import DatasetBuilder

    builder = DatasetBuilder(demo_cat, page_query="token=t&exp=GSE0000&scale_by=ROBUST")
    assert builder.dataset is None and builder.status.kind == "error"
    assert builder.status.text.startswith("The link's dataset was not restored: ")
    assert "GSE0000" in builder.status.text
    assert "rw.open_catalog" not in builder.status.text  # the app's words, not the API's
    assert builder.url_writer.query == "token=t"  # the damaged part leaves the address
    assert builder.restore_query("exp=GSE0000") is False and builder.dataset is None
    assert builder.restore_query("exp=SRP091833") is True
    assert builder.dataset == rw.Dataset({"SRP091833": ["ALL"]})


def test_the_writer_sends_the_query_as_data_never_as_code(demo_cat):
    from refinewidgets.widgets._url import UrlWriter

    writer = UrlWriter()
    script = writer._esm
    writer.query = 'x="><script>alert(1)</script>'
    # the front-end code is one constant; the query travels as a string of the model's state
    assert writer._esm == script and "alert" not in script
    assert writer.get_state()["query"] == 'x="><script>alert(1)</script>'
    assert "query" in writer.keys  # synced to the page


def test_a_notebook_builder_leaves_the_address_alone(demo_cat):
    from refinewidgets.widgets import DatasetBuilder

    builder = DatasetBuilder(demo_cat)
    builder.restore(rw.Dataset({"SRP091833": ["ALL"]}))
    assert builder.url_writer is None
    assert builder.link_query == "exp=SRP091833"  # still there, for whoever wants a link


def test_a_dataset_too_large_for_a_link_is_left_out(demo_cat):
    from refinewidgets.widgets import DatasetBuilder

    builder = DatasetBuilder(demo_cat, page_query="token=t")
    samples = demo_cat.samples.index[demo_cat.samples["experiment_accession"] == "GSE71102"]
    builder._page_query = "token=t&pad=" + "x" * MAX_QUERY_LENGTH
    builder.cart_view.add({"GSE71102": list(samples)[:3]})
    assert builder.link_query == "" and "exp=" not in builder.url_writer.query
    assert "too large to keep in the page's address" in builder.status.text


def test_show_app_in_voila_reads_the_page_query(demo_cat, monkeypatch, tmp_path):
    from refinewidgets.app import OUTPUT_ENV, show_app
    from refinewidgets.widgets import DatasetBuilder

    monkeypatch.setenv("QUERY_STRING", "token=t&exp=SRP091833&scale_by=MINMAX")
    monkeypatch.setenv(OUTPUT_ENV, str(tmp_path))
    monkeypatch.delenv("VOILA_PREHEAT", raising=False)
    app = show_app()
    assert isinstance(app, DatasetBuilder)
    assert app.dataset == rw.Dataset({"SRP091833": ["ALL"]}, scale_by="MINMAX")
    assert app.url_writer is not None

    monkeypatch.delenv("QUERY_STRING")
    monkeypatch.delenv("VOILA_KERNEL_ID", raising=False)
    notebook = show_app()  # a notebook, not Voila: the address is the notebook's
    assert notebook.url_writer is None and notebook.dataset is None


def test_cell_filter_exclusions_and_ranges_round_trip():
    from urllib.parse import urlencode

    from refinewidgets.core.url_state import dataset_from_query, dataset_query

    ds = rw.Dataset(
        {"ERP1": ["ALL"]},
        quantile_normalize=False,
        cell_filter={
            "cell_type": ["B cell", "T cell"],
            "sex": {"not_in": ["unknown"]},
            "total_counts": {"min": 500, "max": 2.5e4},
        },
        genes=["CD19"],
        keep_intergenic=True,
    )
    pairs = dataset_query(ds)
    assert ("cell_filter.sex.not_in", "unknown") in pairs
    assert ("cell_filter.total_counts.min", "500.0") in pairs
    assert dataset_from_query(urlencode(pairs)) == ds
    with pytest.raises(rw.DatasetSpecError, match="a number is needed"):
        dataset_from_query("exp=ERP1&quantile_normalize=0&cell_filter.total_counts.min=lots")
    with pytest.raises(rw.DatasetSpecError, match="both values and"):
        dataset_from_query(
            "exp=ERP1&quantile_normalize=0&cell_filter.sex=male&cell_filter.sex.not_in=x"
        )


def test_the_builder_keeps_experiments_to_fetch_in_the_link(demo_cat):
    from refinewidgets.core.url_state import link_from_query
    from refinewidgets.widgets import DatasetBuilder

    query = (
        "token=t&exp=SRP091833&remote=refinebio:GSE37382&remote=bgee:Homo_sapiens/ERP132576"
        "&remote=bgee:Danio_rerio&scale_by=STANDARD"
    )
    builder = DatasetBuilder(demo_cat, page_query=query)
    selection = builder.state.selection
    # Bgee's single cells are never quantile-normalized: the option adapts, as a build would
    assert builder.dataset == rw.Dataset(
        {"SRP091833": ["ALL"]}, scale_by="STANDARD", quantile_normalize=False
    )
    assert [p.key for p in selection.pending] == ["GSE37382", "ERP132576", "Danio_rerio"]
    assert builder.status.text == (
        "Dataset restored from the link: 1 experiment(s), 20 samples, and 3 experiment(s) to "
        "fetch from refine.bio and Bgee (GSE37382, ERP132576, every experiment of Danio rerio). "
        '"Quantile normalize" is off: the dataset has single cells, which are never '
        "quantile-normalized. Build it on the My dataset tab."
    )
    assert builder.options.transformation.value == "STANDARD"  # the link's options, kept
    assert builder.tabs.get_title(1) == "My dataset (20, +3 to fetch)"
    # the title is unknown until the service is asked again: the cart shows the accession
    pending_rows = [
        r for r in builder.cart_view.rows.children if "rw-cart-pending" in r._dom_classes
    ]
    texts = [r.children[0].value for r in pending_rows]
    assert "GSE37382" in texts[0] and "to fetch from refine.bio" in texts[0]
    assert "ERP132576" in texts[1] and "to fetch from Bgee" in texts[1]
    assert "every experiment of Danio rerio" in texts[2]
    # the address holds exactly what was restored, the page's other keys kept
    assert builder.url_writer.query == builder.link_query
    assert parse_qsl(builder.link_query)[0] == ("token", "t")
    assert link_from_query(builder.link_query).pending == selection.pending
    # removing one to fetch takes it out of the address; undo puts it back
    builder.cart_view.remove_buttons["ERP132576"].click()
    assert ("remote", "bgee:Homo_sapiens/ERP132576") not in parse_qsl(builder.link_query)
    builder.cart_view.undo_button.click()
    assert ("remote", "bgee:Homo_sapiens/ERP132576") in parse_qsl(builder.link_query)
    # a reload of that address restores the same selection
    again = DatasetBuilder(demo_cat, page_query=builder.link_query)
    assert again.state.selection == builder.state.selection


def test_experiments_to_fetch_alone_are_a_link_with_their_options(demo_cat):
    from refinewidgets.core.pending import RemoteExperiment
    from refinewidgets.widgets import DatasetBuilder

    builder = DatasetBuilder(demo_cat, page_query="theme=dark")
    assert builder.link_query == "theme=dark"
    builder.cart_view.add_remote([RemoteExperiment("refinebio", "GSE37382", title="x")])
    builder.options.aggregate.value = "SPECIES"
    assert parse_qsl(builder.link_query) == [
        ("theme", "dark"),
        ("remote", "refinebio:GSE37382"),
        ("aggregate_by", "SPECIES"),
    ]
    assert builder.dataset is None  # nothing at hand yet
    again = DatasetBuilder(demo_cat, page_query=builder.link_query)
    assert again.state.selection == builder.state.selection
    assert again.options.aggregate.value == "SPECIES"


def test_a_bad_remote_part_is_a_message_and_nothing_of_the_link_is_restored(demo_cat):
    from refinewidgets.widgets import DatasetBuilder

    builder = DatasetBuilder(
        demo_cat, page_query="token=t&exp=SRP091833&remote=bgee:Homo_sapiens/%3Cimg%3E"
    )
    selection = builder.state.selection
    assert builder.dataset is None and selection.pending == ()
    assert builder.status.kind == "error"
    assert builder.status.text.startswith(
        "The link's dataset was not restored: The link names the Bgee experiment '<img>', which "
        "is not an accession"
    )
    assert builder.url_writer.query == "token=t"
