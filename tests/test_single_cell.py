"""Single-cell sources in the catalog and the build: cells, filters, normalization, pseudobulk."""

from __future__ import annotations

import zipfile

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import refinewidgets as rw
from refinewidgets.core.single_cell import scale_cells
from refinewidgets.core.sources import InMemorySource
from refinewidgets.errors import MemoryBudgetError, NotCountsWarning
from refinewidgets.testing.bgee_files import VARIANTS, write_bgee_h5ad
from refinewidgets.testing.compendium import synthetic_compendium


def _write(folder, variant, experiment, organism="HOMO_SAPIENS", seed=0, **kw):
    name = f"{organism.capitalize()}_{experiment}_droplet_based.h5ad"
    kw.setdefault("n_cells", 300)
    kw.setdefault("n_genes", 200)
    return write_bgee_h5ad(
        folder / name, variant=variant, experiment=experiment, organism=organism, seed=seed, **kw
    )


@pytest.fixture
def sc_folder(tmp_path):
    folder = tmp_path / "bgee"
    folder.mkdir()
    for i, variant in enumerate(VARIANTS):
        _write(folder, variant, f"ERP00000{i}", seed=i)
    return folder


def test_every_variant_is_listed_with_libraries_as_samples(sc_folder):
    cat = rw.open_catalog(sc_folder)
    assert sorted(cat.experiment_ids) == [f"ERP00000{i}" for i in range(len(VARIANTS))]
    exps = cat.experiments
    assert set(exps["technology"]) == {"SINGLE-CELL"}
    assert set(exps["organisms"]) == {"HOMO_SAPIENS"}
    samples = cat.samples
    for exp in cat.experiment_ids:
        libs = samples[samples["experiment_accession"] == exp]
        full = anndata.read_h5ad(next(sc_folder.glob(f"*_{exp}_*")))
        assert libs["n_cells"].sum() == full.n_obs == exps.loc[exp, "num_cells"]
        assert (libs["technology"] == "SINGLE-CELL").all()
        assert libs["cell_types"].str.len().gt(0).all()
        cells = cat.cells(exp)
        assert len(cells) == full.n_obs
        assert {
            "cell_type",
            "cell_type_id",
            "tissue",
            "tissue_id",
            "stage",
            "stage_id",
            "sex",
            "strain",
            "library",
            "barcode",
        } <= set(cells.columns)
        assert set(cells["library"].astype(str)) == set(libs.index)


def test_cells_are_kept_sparse_with_their_metadata_and_exact_counts(sc_folder):
    cat = rw.open_catalog(sc_folder)
    exp = "ERP000003"  # the newest variant has gene symbols
    res = rw.build(rw.Dataset({exp: ["ALL"]}, quantile_normalize=False), cat)
    adata = res[exp]
    assert sp.issparse(adata.X)
    full = anndata.read_h5ad(next(sc_folder.glob(f"*_{exp}_*")))
    np.testing.assert_array_equal(
        adata[:, full.var_names].X.toarray(), full[adata.obs_names].X.toarray()
    )
    assert adata.uns["refinewidgets"]["values"] == "UMI counts"
    assert adata.uns["refinewidgets"]["kind"] == "cells"
    assert {"experiment", "library", "cell_type", "organism"} <= set(adata.obs.columns)
    assert (adata.var["gene_symbol"] != "").all()
    assert res.summary().loc[exp, "kind"] == "cells"


def test_cell_filter_selects_cells_and_unknown_values_are_listed(sc_folder):
    cat = rw.open_catalog(sc_folder)
    exp = "ERP000000"
    res = rw.build(
        rw.Dataset(
            {exp: ["ALL"]},
            quantile_normalize=False,
            cell_filter={"cell_type": ["B cell"], "sex": ["female"]},
        ),
        cat,
    )
    obs = res[exp].obs
    table = cat.cells(exp)
    expected = table[
        (table["cell_type"] == "B cell") & (table["sex"].astype(str).str.lower() == "female")
    ]
    assert sorted(obs.index) == sorted(expected.index)
    assert set(obs["cell_type"]) == {"B cell"}
    with pytest.raises(rw.DatasetSpecError) as info:
        rw.build(
            rw.Dataset(
                {exp: ["ALL"]}, quantile_normalize=False, cell_filter={"cell_type": ["neuron"]}
            ),
            cat,
        )
    msg = str(info.value)
    assert "neuron" in msg and "B cell" in msg and "T cell" in msg


def test_library_without_passing_cells_is_filtered_with_a_reason(tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    path = _write(folder, "bgee15_1", "ERP7", n_libraries=3, n_cells=240)
    cat = rw.open_catalog(path)
    cells = cat.cells("ERP7")
    lib_sex = cells.groupby("library", observed=True)["sex"].first().astype(str)
    female_libs = lib_sex[lib_sex == "female"].index.tolist()
    assert female_libs and len(female_libs) < 3
    res = rw.build(
        rw.Dataset({"ERP7": ["ALL"]}, quantile_normalize=False, cell_filter={"sex": ["female"]}),
        cat,
    )
    assert set(res["ERP7"].obs["library"].astype(str)) == set(female_libs)
    filtered = res.filtered_samples.set_index("accession")
    assert set(filtered.index) == set(lib_sex.index) - set(female_libs)
    assert filtered["reason"].str.contains("passes the cell filter").all()


def test_cpm_and_log1p_cpm_match_scanpy(sc_folder):
    import scanpy as sc

    cat = rw.open_catalog(sc_folder)
    exp = "ERP000001"
    raw = rw.build(rw.Dataset({exp: ["ALL"]}, quantile_normalize=False), cat)[exp]
    cpm = rw.build(
        rw.Dataset({exp: ["ALL"]}, quantile_normalize=False, counts_normalization="CPM"), cat
    )[exp]
    np.testing.assert_allclose(np.asarray(cpm.X.sum(axis=1)).ravel(), 1e6, rtol=1e-4)
    log = rw.build(
        rw.Dataset({exp: ["ALL"]}, quantile_normalize=False, counts_normalization="LOG1P_CPM"), cat
    )[exp]
    ref = raw.copy()
    sc.pp.normalize_total(ref, target_sum=1e6)
    sc.pp.log1p(ref)
    np.testing.assert_allclose(log.X.toarray(), ref.X.toarray(), rtol=1e-5, atol=1e-5)
    assert log.uns["refinewidgets"]["values"] == "log1p CPM"


def test_inner_and_outer_join_of_two_files(tmp_path):
    folder = tmp_path / "two"
    folder.mkdir()
    pool = [f"ENSG{i:011d}" for i in range(1000, 1160)]
    a = _write(folder, "bgee15_0", "ERP1", seed=1, n_genes=120, gene_ids=pool[:120])
    b = _write(folder, "newest", "ERP2", seed=2, n_genes=120, gene_ids=pool[40:])
    ga, gb = set(anndata.read_h5ad(a).var_names), set(anndata.read_h5ad(b).var_names)
    assert 0 < len(ga & gb) < len(ga | gb)
    cat = rw.open_catalog(folder)
    data = {"ERP1": ["ALL"], "ERP2": ["ALL"]}
    inner = rw.build(rw.Dataset(data, aggregate_by="SPECIES", quantile_normalize=False), cat)[
        "HOMO_SAPIENS"
    ]
    assert set(inner.var_names) == ga & gb
    outer = rw.build(
        rw.Dataset(data, aggregate_by="SPECIES", quantile_normalize=False, join="outer"), cat
    )["HOMO_SAPIENS"]
    assert set(outer.var_names) == ga | gb
    only_b = sorted(gb - ga)
    cells_a = outer.obs["experiment"].astype(str) == "ERP1"
    assert outer[cells_a.to_numpy(), only_b].X.nnz == 0
    full_b = anndata.read_h5ad(b)
    cells_b = outer.obs_names[~cells_a.to_numpy()]
    np.testing.assert_array_equal(
        outer[cells_b, only_b].X.toarray(), full_b[cells_b, only_b].X.toarray()
    )


def test_scaling_cells_and_the_memory_budget(sc_folder):
    cat = rw.open_catalog(sc_folder)
    exp = "ERP000002"
    res = rw.build(
        rw.Dataset(
            {exp: ["ALL"]},
            quantile_normalize=False,
            counts_normalization="LOG1P_CPM",
            scale_by="STANDARD",
        ),
        cat,
    )
    X = res[exp].X
    assert isinstance(X, np.ndarray)
    np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-6)
    assert "scaled per gene (STANDARD)" in res[exp].uns["refinewidgets"]["values"]
    big = sp.csr_matrix((200_000, 20_000), dtype=np.float32)
    with pytest.raises(MemoryBudgetError) as info:
        scale_cells(big, "STANDARD", memory_limit=2**30)
    msg = str(info.value)
    assert "200,000 cells x 20,000 genes" in msg and "29.8 GiB" in msg and "pseudobulk" in msg
    assert isinstance(info.value, MemoryError)


def test_qn_of_cells_is_refused_and_mixing_with_bulk_needs_pseudobulk(sc_folder, cat):
    sc_cat = rw.Catalog(list(rw.open_catalog(sc_folder).sources) + list(cat.sources))
    with pytest.raises(
        rw.DatasetSpecError,
        match="Quantile normalization of single cells is refused.*pseudobulk='sample'",
    ):
        rw.build(rw.Dataset({"ERP000000": ["ALL"]}), sc_cat)
    bulk = next(
        e for e in cat.experiment_ids if cat.experiment_record(e)["organisms"] == ["HOMO_SAPIENS"]
    )
    with pytest.raises(rw.DatasetSpecError) as info:
        rw.build(
            rw.Dataset(
                {"ERP000000": ["ALL"], bulk: ["ALL"]},
                aggregate_by="SPECIES",
                quantile_normalize=False,
            ),
            sc_cat,
        )
    msg = str(info.value)
    assert "mixes single-cell libraries" in msg and "pseudobulk='sample'" in msg


@pytest.fixture
def shared_genes_catalog(tmp_path):
    """A bulk compendium and a droplet file of the same species sharing gene ids."""
    comp = synthetic_compendium(
        n_experiments=2,
        samples_per_experiment=5,
        n_genes=300,
        technologies=("RNA-SEQ",),
        seed=11,
        with_qn_targets=True,
    )
    genes = sorted(set().union(*(v.index for v in comp.values.values())))[:150]
    folder = tmp_path / "sc"
    folder.mkdir()
    path = _write(
        folder, "bgee15_2", "ERP55", n_genes=150, gene_ids=genes, n_libraries=3, n_cells=300
    )
    return (
        rw.Catalog([InMemorySource.from_compendium(comp)] + rw.open_catalog(path).sources),
        comp,
        path,
    )


def test_pseudobulk_sums_libraries_and_joins_bulk_samples(shared_genes_catalog):
    cat, comp, path = shared_genes_catalog
    bulk = list(comp.experiments)
    res = rw.build(
        rw.Dataset(
            {"ERP55": ["ALL"], **{e: ["ALL"] for e in bulk}},
            aggregate_by="SPECIES",
            pseudobulk="sample",
        ),
        cat,
    )
    adata = res["HOMO_SAPIENS"]
    libraries = cat.experiment_samples("ERP55")
    assert set(libraries) <= set(adata.obs_names)
    assert adata.n_obs == len(libraries) + sum(len(comp.values[e].columns) for e in bulk)
    meta = res.metadata("HOMO_SAPIENS").set_index("refinebio_accession_code")
    full = anndata.read_h5ad(path)
    n_cells = full.obs.groupby("libID", observed=True).size() if "libID" in full.obs else None
    counts = cat.cells("ERP55").groupby("library", observed=True).size()
    assert (
        meta.loc[libraries, "pseudobulk_n_cells"].astype(int).tolist()
        == counts.loc[libraries].tolist()
    )
    assert n_cells is None or n_cells.sum() == counts.sum()
    qn = adata.uns["refinewidgets"]["quantile_normalization"]
    assert qn["target"] == "source"  # pseudo-samples are HOMO_SAPIENS like the bulk ones


def test_pseudobulk_values_are_the_sums_of_cell_counts(shared_genes_catalog):
    cat, _, path = shared_genes_catalog
    res = rw.build(
        rw.Dataset({"ERP55": ["ALL"]}, pseudobulk="sample_cell_type", quantile_normalize=False), cat
    )
    frame = res.expression("ERP55")
    cells = cat.cells("ERP55")
    full = anndata.read_h5ad(path)
    lib, ct = cells["library"].astype(str).iloc[0], cells["cell_type"].astype(str).iloc[0]
    mask = (
        (cells["library"].astype(str) == lib) & (cells["cell_type"].astype(str) == ct)
    ).to_numpy()
    expected = np.asarray(full[cells.index[mask]].X.sum(axis=0)).ravel()
    got = frame[f"{lib}:{ct}"].reindex(full.var_names).to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    meta = res.metadata("ERP55").set_index("refinebio_accession_code")
    assert int(meta.loc[f"{lib}:{ct}", "pseudobulk_n_cells"]) == int(mask.sum())
    assert meta.loc[f"{lib}:{ct}", "pseudobulk_cell_type"] == ct


def test_cell_group_zip_layout_and_round_trip(sc_folder, tmp_path):
    cat = rw.open_catalog(sc_folder)
    res = rw.build(
        rw.Dataset(
            {"ERP000000": ["ALL"], "ERP000001": ["ALL"]},
            quantile_normalize=False,
            counts_normalization="LOG1P_CPM",
        ),
        cat,
    )
    path = res.write_zip(tmp_path / "cells.zip")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        meta = pd.read_csv(zf.open("ERP000000/metadata_ERP000000.tsv"), sep="\t")
    assert "ERP000000/ERP000000.h5ad" in names and "ERP000000/ERP000000.tsv" not in names
    assert meta["cell_id"].tolist() == list(res["ERP000000"].obs_names)
    back = rw.read_zip(path)
    for key in res:
        assert (back[key].X != res[key].X).nnz == 0
        assert list(back[key].obs_names) == list(res[key].obs_names)
        assert back[key].uns["refinewidgets"]["values"] == "log1p CPM"
    agg = back.aggregated_metadata
    assert agg["num_samples"] == len(cat.experiment_samples("ERP000000")) + len(
        cat.experiment_samples("ERP000001")
    )
    assert set(agg["experiments"]["ERP000000"]["sample_accession_codes"]) == set(
        cat.experiment_samples("ERP000000")
    )


# -- bad input ------------------------------------------------------------------------------
def test_negative_counts_warn_when_opening(tmp_path):
    path = _write(tmp_path, "bgee15_0", "ERP9")
    with h5py.File(path, "r+") as f:
        data = f["X/data"][...]
        data[:10] = -data[:10]
        f["X/data"][...] = data
    with pytest.warns(NotCountsWarning, match="negative"):
        cat = rw.open_catalog(path)
    assert "ERP9" in cat.experiment_ids


def test_missing_library_column_and_truncated_file(tmp_path):
    adata = anndata.AnnData(
        sp.csr_matrix(np.ones((3, 2), dtype=np.float32)),
        obs=pd.DataFrame({"cell_type": ["a", "b", "c"]}, index=["c1", "c2", "c3"]),
    )
    bad = tmp_path / "Homo_sapiens_ERP3_droplet_based.h5ad"
    adata.write_h5ad(bad)
    with pytest.raises(rw.SourceFormatError) as info:
        rw.open_catalog(bad)
    assert "cell_type" in str(info.value) and "libID" in str(info.value)
    good = _write(tmp_path, "newest", "ERP4")
    cut = tmp_path / "Homo_sapiens_ERP5_droplet_based.h5ad"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(rw.SourceFormatError, match="truncated or corrupt"):
        rw.open_catalog(cut)


def test_pseudobulk_pairs_sums_with_libraries_whatever_the_cell_order(tmp_path):
    # cells of the libraries interleaved in a random order: sums must still follow the library
    folder = tmp_path / "sc"
    folder.mkdir()
    path = _write(folder, "bgee15_2", "ERP77", n_libraries=4, n_cells=400, seed=5)
    full = anndata.read_h5ad(path)
    order = np.random.default_rng(1).permutation(full.n_obs)
    full[order].copy().write_h5ad(path)
    cat = rw.open_catalog(path)
    res = rw.build(
        rw.Dataset({"ERP77": ["ALL"]}, pseudobulk="sample", quantile_normalize=False), cat
    )
    frame = res.expression("ERP77")
    shuffled = anndata.read_h5ad(path)
    library = shuffled.obs["rnaSeqLibraryId"].astype(str).to_numpy()
    assert len(set(library[:20])) > 1  # really interleaved
    for lib in np.unique(library):
        expected = np.asarray(shuffled[library == lib].X.sum(axis=0)).ravel()
        np.testing.assert_allclose(frame[lib].reindex(shuffled.var_names), expected, rtol=1e-6)
        n_cells = res.metadata("ERP77").set_index("refinebio_accession_code")
        assert int(n_cells.loc[lib, "pseudobulk_n_cells"]) == int((library == lib).sum())


def test_cell_group_zip_with_shuffled_cell_metadata_reads_back(sc_folder, tmp_path):
    cat = rw.open_catalog(sc_folder)
    res = rw.build(rw.Dataset({"ERP000000": ["ALL"]}, quantile_normalize=False), cat)
    path = res.write_zip(tmp_path / "cells.zip")
    shuffled = tmp_path / "shuffled.zip"
    member = "ERP000000/metadata_ERP000000.tsv"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(shuffled, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == member:
                lines = data.decode().split("\r\n")
                body = [x for x in lines[1:] if x][::-1]
                data = "\r\n".join([lines[0], *body, ""]).encode()
            zout.writestr(info, data)
    back = rw.read_zip(shuffled)
    assert list(back["ERP000000"].obs_names) == list(res["ERP000000"].obs_names)
    assert (back["ERP000000"].X != res["ERP000000"].X).nnz == 0


def test_intergenic_features_count_in_no_total(tmp_path):
    folder = tmp_path / "sc"
    folder.mkdir()
    path = _write(folder, "bgee15_2", "ERP66", n_libraries=2, n_cells=120, intergenic=True)
    full = anndata.read_h5ad(path)
    genic = ~full.var_names.str.startswith(("upstream_", "downstream_"))
    assert not genic.all()  # the file has intergenic features
    cat = rw.open_catalog(path)
    cpm = rw.build(
        rw.Dataset({"ERP66": ["ALL"]}, quantile_normalize=False, counts_normalization="CPM"), cat
    )["ERP66"]
    assert not cpm.var_names.str.startswith(("upstream_", "downstream_")).any()
    totals = np.asarray(cpm.X.sum(axis=1)).ravel()
    np.testing.assert_allclose(totals[totals > 0], 1e6, rtol=1e-4)
    sums = rw.build(
        rw.Dataset({"ERP66": ["ALL"]}, quantile_normalize=False, pseudobulk="sample"), cat
    ).expression("ERP66")
    library = full.obs["rnaSeqLibraryId"].astype(str).to_numpy()
    lib = sums.columns[0]
    expected = np.asarray(full[library == lib][:, genic].X.sum(axis=0)).ravel()
    np.testing.assert_allclose(
        sums[lib].reindex(full.var_names[genic]).to_numpy(), expected, rtol=1e-6
    )


def test_a_cell_filter_matching_one_experiment_only_builds_that_one(tmp_path):
    folder = tmp_path / "sc"
    folder.mkdir()
    _write(folder, "bgee15_2", "ERP1", seed=1, cell_types=("B cell", "T cell"))
    _write(folder, "bgee15_2", "ERP2", seed=2, cell_types=("T cell", "monocyte"))
    cat = rw.open_catalog(folder)
    res = rw.build(
        rw.Dataset(
            {"ERP1": ["ALL"], "ERP2": ["ALL"]},
            quantile_normalize=False,
            cell_filter={"cell_type": ["B cell"]},
        ),
        cat,
    )
    assert list(res) == ["ERP1"]
    assert set(res["ERP1"].obs["cell_type"].astype(str)) == {"B cell"}
    lost = res.filtered_samples.set_index("accession")
    assert set(lost.index) == set(cat.experiment_samples("ERP2"))
    assert lost["reason"].str.startswith("no cell passes the cell filter").all()
    with pytest.raises(rw.DatasetSpecError, match=r"has \['neuron'\]; values present"):
        rw.build(
            rw.Dataset(
                {"ERP1": ["ALL"], "ERP2": ["ALL"]},
                quantile_normalize=False,
                cell_filter={"cell_type": ["neuron"]},
            ),
            cat,
        )


# -- scverse conventions -----------------------------------------------------------------
@pytest.mark.parametrize("norm", ["NONE", "CPM", "LOG1P_CPM"])
def test_results_follow_scverse_conventions(tmp_path, norm):
    """``layers["counts"]`` on every cell result (a copy of X when X is the counts, so scanpy's
    in-place steps leave it alone), ``uns["log1p"]`` exactly as scanpy writes it when X is
    log1p'd (kept through an H5AD round trip), categorical text obs, unique names."""
    folder = tmp_path / "bgee"
    folder.mkdir()
    first = _write(folder, "bgee15_0", "ERP000001", seed=1)
    genes = anndata.read_h5ad(first).var_names.to_numpy()
    _write(folder, "newest", "ERP000002", seed=2, gene_ids=genes)
    cat = rw.open_catalog(folder)
    ds = rw.Dataset(
        {"ERP000001": ["ALL"], "ERP000002": ["ALL"]},
        aggregate_by="ALL",
        quantile_normalize=False,
        counts_normalization=norm,
    )
    (adata,) = rw.build(ds, cat).values()
    files = [anndata.read_h5ad(p) for p in sorted(folder.glob("*.h5ad"))]
    counts = anndata.concat(files)[adata.obs_names, adata.var_names].X  # by name
    np.testing.assert_array_equal(adata.layers["counts"].toarray(), counts.toarray())
    assert adata.layers["counts"] is not adata.X
    if norm == "LOG1P_CPM":
        assert adata.uns["log1p"] == {"base": None}
    else:
        assert "log1p" not in adata.uns
    assert adata.obs_names.is_unique and adata.var_names.is_unique
    for column in adata.obs.columns:
        values = adata.obs[column]
        if not pd.api.types.is_numeric_dtype(values) and column != "barcode":
            assert isinstance(values.dtype, pd.CategoricalDtype), column
    path = tmp_path / "out.h5ad"
    adata.write_h5ad(path)
    back = anndata.read_h5ad(path)
    assert (back.uns.get("log1p") == {"base": None}) == (norm == "LOG1P_CPM")
    X_before = adata.X.copy()
    adata.X.data[:] = 0  # in-place changes of X do not reach the counts
    assert adata.layers["counts"].sum() == counts.sum()
    adata.X = X_before


@pytest.mark.filterwarnings("ignore:.*expects raw count data, but non-integers:UserWarning")
def test_scanpys_standard_pipeline_takes_our_results():
    """scanpy's standard pipeline, step by step, on raw-count and log1p CPM results of the demo:
    no KeyError for layers["counts"], no second log, and no warning of ours (every warning is
    an error under pytest). Bgee counts can be fractional (bustools ``--em`` splits ambiguous
    UMIs), so seurat_v3's note on non-integer counts is about the data, and is let through."""
    import scanpy as sc

    cat = rw.open_catalog()
    for norm in ("NONE", "LOG1P_CPM"):
        ds = rw.Dataset({"ERP900101": ["ALL"]}, quantile_normalize=False, counts_normalization=norm)
        adata = rw.build(ds, cat)["ERP900101"]
        logged = adata.X.copy()
        if norm == "NONE":
            sc.pp.normalize_total(adata, target_sum=1e4)
            sc.pp.log1p(adata)
        else:  # scanpy reads the mark: already logged
            assert "log1p" in adata.uns and adata.uns["log1p"]["base"] is None
            expected = np.log1p(normalize_counts_reference(adata.layers["counts"].toarray()))
            np.testing.assert_allclose(logged.toarray(), expected, rtol=1e-5, atol=1e-6)
        sc.pp.highly_variable_genes(adata, flavor="seurat_v3", layer="counts", n_top_genes=300)
        assert adata.var["highly_variable"].sum() == 300
        sc.pp.pca(adata, n_comps=20, mask_var="highly_variable")
        sc.pp.neighbors(adata, n_neighbors=15)
        sc.tl.umap(adata)
        sc.tl.leiden(adata, flavor="igraph", n_iterations=2, directed=False)
        sc.tl.rank_genes_groups(adata, "cell_type", method="wilcoxon")
        assert adata.obsm["X_umap"].shape == (adata.n_obs, 2)
        assert adata.obs["leiden"].nunique() >= 2
        # the gene ranked first for B cells is among the ten with the largest mean difference
        # (B cells against the rest, on the logged values), computed the plain way
        values = adata.X.toarray()
        b_cell = (adata.obs["cell_type"] == "B cell").to_numpy()
        diff = values[b_cell].mean(axis=0) - values[~b_cell].mean(axis=0)
        plain_top = set(adata.var_names[np.argsort(-diff)[:10]])
        assert adata.uns["rank_genes_groups"]["names"]["B cell"][0] in plain_top


def normalize_counts_reference(counts):
    """CPM computed the plain way (scanpy's normalize_total to 1e6)."""
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts * 1e6, totals, out=np.zeros_like(counts), where=totals > 0)


def test_a_symbol_shared_by_two_ids_warns_and_names_them(tmp_path):
    """Two genes with one symbol (as Ensembl has): both come back, and the warning names the
    symbol and both ids."""
    path = _write(tmp_path, "newest", "ERP000003", seed=3)
    with h5py.File(path, "r+") as f:
        codes = f["var/feature_name/codes"][...]
        categories = f["var/feature_name/categories"].asstr()[...]
        genes = f["var/_index"].asstr()[...]
        codes[1] = codes[0]  # gene 2 takes gene 1's symbol
        f["var/feature_name/codes"][...] = codes
    symbol = categories[codes[0]]
    cat = rw.open_catalog(path)
    ds = rw.Dataset({"ERP000003": ["ALL"]}, quantile_normalize=False, genes=[symbol, genes[5]])
    with pytest.warns(rw.GeneSelectionWarning) as caught:
        adata = rw.build(ds, cat)["ERP000003"]
    message = str(caught[0].message)
    assert f"{symbol} -> {genes[0]}, {genes[1]}" in message and "ask by gene id" in message
    assert set(adata.var_names) == {genes[0], genes[1], genes[5]}
    assert set(adata.var.loc[[genes[0], genes[1]], "gene_symbol"]) == {symbol}


def test_older_writers_get_gene_symbols_from_the_shipped_table(tmp_path):
    """bgee15_0 files store no symbols: the human table the bulk path uses fills them (offline),
    ``genes=`` takes them, and the release is recorded; a newest-writer file keeps its own."""
    ids = [f"ENSG9{i:010d}" for i in range(40)]
    ids[0], ids[1], ids[2] = "ENSG00000141510", "ENSG00000012048", "ENSG00000146648"
    folder = tmp_path / "bgee"
    folder.mkdir()
    _write(folder, "bgee15_0", "ERP000001", n_genes=40, gene_ids=ids)
    cat = rw.open_catalog(folder)
    ds = rw.Dataset({"ERP000001": ["ALL"]}, quantile_normalize=False, genes=["tp53", "EGFR"])
    (adata,) = rw.build(ds, cat).values()
    assert adata.var["gene_symbol"].to_dict() == {
        "ENSG00000141510": "TP53",
        "ENSG00000146648": "EGFR",
    }
    release = adata.uns["refinewidgets"]["gene_symbols"]
    assert release.startswith("org.Hs.eg.db"), release
    # a file with its own symbols keeps them, with no table release recorded
    other = tmp_path / "newest"
    other.mkdir()
    _write(other, "newest", "ERP000002", n_genes=40, gene_ids=ids)
    (own,) = rw.build(
        rw.Dataset({"ERP000002": ["ALL"]}, quantile_normalize=False), rw.open_catalog(other)
    ).values()
    assert "gene_symbols" not in own.uns["refinewidgets"]
    assert own.var.loc["ENSG00000141510", "gene_symbol"] != "TP53"
