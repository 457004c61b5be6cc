"""Tests of the seeded synthetic compendia and of the bundled demo's design."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score

from refinewidgets.testing import Compendium, demo_compendium, synthetic_compendium

SAMPLE_KEYS = {
    "refinebio_accession_code",
    "refinebio_age",
    "refinebio_cell_line",
    "refinebio_compound",
    "refinebio_developmental_stage",
    "refinebio_disease",
    "refinebio_disease_stage",
    "refinebio_genetic_information",
    "refinebio_organism",
    "refinebio_platform",
    "refinebio_processed",
    "refinebio_processor_id",
    "refinebio_processor_name",
    "refinebio_processor_version",
    "refinebio_race",
    "refinebio_sex",
    "refinebio_source_archive_url",
    "refinebio_source_database",
    "refinebio_specimen_part",
    "refinebio_subject",
    "refinebio_time",
    "refinebio_title",
    "refinebio_treatment",
    "refinebio_annotations",
}
EXPERIMENT_KEYS = {
    "accession_code",
    "title",
    "description",
    "organisms",
    "sample_accession_codes",
    "technology",
    "submitter_institution",
    "has_publication",
    "publication_title",
    "publication_doi",
    "pubmed_id",
    "protocol_description",
    "source_first_published",
    "source_last_modified",
}
ID_PATTERN = {"HOMO_SAPIENS": r"ENSG\d{11}", "MUS_MUSCULUS": r"ENSMUSG\d{11}"}


def assert_same(a: Compendium, b: Compendium) -> None:
    assert a.experiments == b.experiments
    assert a.samples == b.samples
    assert list(a.values) == list(b.values)
    for key in a.values:
        pd.testing.assert_frame_equal(a.values[key], b.values[key])
    assert list(a.qn_targets) == list(b.qn_targets)
    for key in a.qn_targets:
        np.testing.assert_array_equal(a.qn_targets[key], b.qn_targets[key])


def clean_ids(index: pd.Index) -> pd.Index:
    """refine.bio's id sanitising: drop AFFX- controls, strip version suffixes."""
    index = index[~index.str.contains("AFFX-")]
    return index.str.replace(r"\.\d+$", "", regex=True)


def sanitized(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[~frame.index.str.contains("AFFX-")]
    frame.index = frame.index.str.replace(r"\.\d+$", "", regex=True)
    return frame.groupby(level=0).mean()


# ---------------------------------------------------------------- synthetic_compendium


def test_same_seed_gives_identical_output_and_other_seed_differs():
    kwargs = dict(
        n_experiments=3,
        samples_per_experiment=4,
        n_genes=60,
        dirty_ids=True,
        shared_samples=1,
        nan_fraction=0.05,
        with_qn_targets=True,
    )
    a = synthetic_compendium(seed=3, **kwargs)
    assert_same(a, synthetic_compendium(seed=3, **kwargs))
    b = synthetic_compendium(seed=4, **kwargs)
    assert list(a.experiments) != list(b.experiments)
    first_a, first_b = next(iter(a.values.values())), next(iter(b.values.values()))
    assert not np.allclose(np.nan_to_num(first_a.to_numpy()), np.nan_to_num(first_b.to_numpy()))


def test_shapes_and_cycle_over_organisms_and_technologies():
    comp = synthetic_compendium(
        n_experiments=5,
        samples_per_experiment=7,
        n_genes=200,
        organisms=("HOMO_SAPIENS", "MUS_MUSCULUS"),
    )
    records = list(comp.experiments.values())
    assert [(r["organisms"], r["technology"]) for r in records] == [
        (["HOMO_SAPIENS"], "MICROARRAY"),
        (["HOMO_SAPIENS"], "RNA-SEQ"),
        (["MUS_MUSCULUS"], "MICROARRAY"),
        (["MUS_MUSCULUS"], "RNA-SEQ"),
        (["HOMO_SAPIENS"], "MICROARRAY"),
    ]
    assert len(set(comp.experiments)) == 5 and len(comp.samples) == 35
    for acc, record in comp.experiments.items():
        frame = comp.values[acc]
        assert frame.shape == (180, 7)
        assert list(frame.columns) == record["sample_accession_codes"]
        assert (frame.dtypes == np.float64).all()
    assert comp.qn_targets == {}


def test_records_have_exactly_the_refinebio_fields():
    comp = synthetic_compendium(organisms=("HOMO_SAPIENS", "MUS_MUSCULUS"))
    for acc, record in comp.experiments.items():
        assert set(record) == EXPERIMENT_KEYS
        assert record["accession_code"] == acc
        assert record["technology"] in ("MICROARRAY", "RNA-SEQ")
        assert isinstance(record["has_publication"], bool)
        for key in ("source_first_published", "source_last_modified"):
            pd.Timestamp(record[key])  # an ISO date
    for acc, record in comp.samples.items():
        assert set(record) == SAMPLE_KEYS
        assert record["refinebio_accession_code"] == acc
        assert record["refinebio_processed"] is True
        assert isinstance(record["refinebio_age"], float)
        assert record["refinebio_sex"] in ("female", "male")
        assert record["refinebio_specimen_part"] != ""
        assert record["refinebio_source_database"] in ("GEO", "ARRAY_EXPRESS", "SRA")
        for key, value in record.items():
            if key not in (
                "refinebio_age",
                "refinebio_processed",
                "refinebio_processor_id",
                "refinebio_annotations",
            ):
                assert isinstance(value, str), key  # unknown = "" (never None)


def test_accession_styles_and_annotations():
    comp = synthetic_compendium(n_experiments=4)
    styles = {}
    for acc, exp in comp.experiments.items():
        for code in exp["sample_accession_codes"]:
            sample = comp.samples[code]
            (note,) = sample["refinebio_annotations"]
            database = sample["refinebio_source_database"]
            styles[database] = (acc, code)
            if database == "ARRAY_EXPRESS":
                assert re.fullmatch(r"E-MTAB-\d+", acc) and re.fullmatch(r"ERS\d+", code)
                chars = {c["category"]: c["value"] for c in note["characteristic"]}
                assert chars["organism part"] == sample["refinebio_specimen_part"]
                assert {v["name"]: v["value"] for v in note["variable"]} == {
                    "disease": sample["refinebio_disease"]
                }
                assert "source" in note
            else:
                pattern = (
                    (r"GSE\d+", r"GSM\d+") if database == "GEO" else (r"SRP\d{6}", r"SRR\d{7}")
                )
                assert re.fullmatch(pattern[0], acc) and re.fullmatch(pattern[1], code)
                chars = dict(c.split(": ", 1) for c in note["characteristics_ch1"])
                assert chars["tissue"] == sample["refinebio_specimen_part"]
                assert chars["disease state"] == sample["refinebio_disease"]
    assert set(styles) == {"GEO", "ARRAY_EXPRESS", "SRA"}


@pytest.mark.parametrize("shared", [0, 3])
def test_every_sample_is_in_exactly_the_experiments_that_list_it(shared):
    comp = synthetic_compendium(
        n_experiments=6, samples_per_experiment=5, n_genes=80, shared_samples=shared, dirty_ids=True
    )
    listed: dict[str, list[str]] = {}
    for acc, exp in comp.experiments.items():
        assert len(set(exp["sample_accession_codes"])) == 5
        for code in exp["sample_accession_codes"]:
            listed.setdefault(code, []).append(acc)
    assert set(listed) == set(comp.samples)
    in_values = {
        code: [acc for acc, f in comp.values.items() if code in f.columns] for code in comp.samples
    }
    assert in_values == listed
    multi = {code: accs for code, accs in listed.items() if len(accs) > 1}
    assert len(multi) == shared
    for code, (first, second) in multi.items():
        a, b = comp.experiments[first], comp.experiments[second]
        assert a["organisms"] == b["organisms"] and a["technology"] == b["technology"]
        platforms = {
            comp.samples[c]["refinebio_platform"]
            for c in a["sample_accession_codes"] + b["sample_accession_codes"]
        }
        assert len(platforms) == 1
        pd.testing.assert_series_equal(comp.values[first][code], comp.values[second][code])


def test_shared_samples_impossible_or_bad_arguments_raise():
    with pytest.raises(ValueError, match="same organism and platform"):
        synthetic_compendium(n_experiments=2, shared_samples=1)
    with pytest.raises(ValueError, match="Unknown organism 'HOMO_SAPIEN'"):
        synthetic_compendium(organisms=("HOMO_SAPIEN",))
    with pytest.raises(ValueError, match="gene_coverage"):
        synthetic_compendium(gene_coverage=0.0)
    with pytest.raises(ValueError, match="technologies"):
        synthetic_compendium(technologies=("SCRNA",))


def test_gene_ids_are_ensembl_like_and_unique():
    comp = synthetic_compendium(
        n_experiments=4, n_genes=300, organisms=("HOMO_SAPIENS", "MUS_MUSCULUS")
    )
    for acc, frame in comp.values.items():
        organism = comp.experiments[acc]["organisms"][0]
        assert frame.index.is_unique
        assert frame.index.str.fullmatch(ID_PATTERN[organism]).all()


def test_microarray_is_log2_and_rnaseq_is_unlogged_nonnegative():
    comp = synthetic_compendium(n_experiments=4, samples_per_experiment=20, n_genes=2000)
    for acc, frame in comp.values.items():
        x = frame.to_numpy()
        assert np.isfinite(x).all()
        if comp.experiments[acc]["technology"] == "MICROARRAY":
            assert x.min() > 1.9 and x.max() < 15.5
            assert 5.0 < np.median(x) < 9.0
        else:
            assert x.min() >= 0.0 and (x == 0).any()
            median = np.median(x)
            assert x.mean() > 2 * median and x.max() > 100 * median  # heavy right tail
            assert x.max() > 5000  # unlogged


@pytest.mark.parametrize("coverage", [0.6, 0.9, 1.0])
def test_gene_coverage_is_respected_and_platforms_differ(coverage):
    comp = synthetic_compendium(
        n_experiments=6, samples_per_experiment=3, n_genes=400, gene_coverage=coverage
    )
    sets = {}
    for frame in comp.values.values():
        assert len(frame) == round(coverage * 400)
        platform = comp.samples[frame.columns[0]]["refinebio_platform"]
        sets.setdefault(platform, set(frame.index))
        assert set(frame.index) == sets[platform]  # one gene set per platform
    assert len(sets) == 3  # U133 Plus 2.0 (exps 1, 2), HT-12 (exp 3), HiSeq (exps 1-3)
    universe = set.union(*sets.values())
    assert len(universe) <= 400
    if coverage < 1:
        assert len(set.intersection(*sets.values())) < round(coverage * 400)
    else:
        assert len(universe) == 400 and len(set.intersection(*sets.values())) == 400


def test_dirty_ids_only_when_asked():
    kwargs = dict(n_experiments=4, samples_per_experiment=4, n_genes=500)
    for frame in synthetic_compendium(**kwargs).values.values():
        assert not frame.index.str.contains("AFFX-").any()
        assert not frame.index.str.contains(r"\.").any()
        assert frame.index.is_unique
    comp = synthetic_compendium(dirty_ids=True, **kwargs)
    for frame in comp.values.values():
        affy = comp.samples[frame.columns[0]]["refinebio_platform"].startswith("Affymetrix")
        assert frame.index.str.contains("AFFX-").sum() == (6 if affy else 0)
        assert frame.index.str.fullmatch(r"ENSG\d{11}\.\d+").sum() >= 3
        assert frame.index.duplicated().sum() == 1
        assert clean_ids(frame.index).str.fullmatch(r"ENSG\d{11}").all()
        # after refine.bio's sanitising, the same genes as the clean compendium
        assert len(sanitized(frame)) == 450


def test_nan_fraction_and_qn_targets():
    comp = synthetic_compendium(
        n_experiments=2,
        samples_per_experiment=50,
        n_genes=1000,
        nan_fraction=0.1,
        with_qn_targets=True,
        organisms=("HOMO_SAPIENS", "MUS_MUSCULUS"),
    )
    fractions = [frame.isna().to_numpy().mean() for frame in comp.values.values()]
    assert all(0.08 < f < 0.12 for f in fractions)
    assert set(comp.qn_targets) == {"HOMO_SAPIENS", "MUS_MUSCULUS"}
    for target in comp.qn_targets.values():
        assert target.ndim == 1 and len(target) == 900
        assert np.all(np.diff(target) >= 0) and np.isfinite(target).all()
        assert 2.0 < target[0] and target[-1] < 15.5


# ---------------------------------------------------------------- demo_compendium


@pytest.fixture(scope="module")
def demo() -> Compendium:
    return demo_compendium()


def test_demo_is_deterministic(demo):
    assert_same(demo, demo_compendium())


def test_demo_composition(demo):
    assert 8 <= len(demo.experiments) <= 12
    assert 150 <= len(demo.samples) <= 250
    assert sum(len(e["sample_accession_codes"]) for e in demo.experiments.values()) == len(
        demo.samples
    )
    by_species: dict[str, dict[str, set]] = {}
    for acc, exp in demo.experiments.items():
        (organism,) = exp["organisms"]
        platforms = {demo.samples[c]["refinebio_platform"] for c in exp["sample_accession_codes"]}
        assert len(platforms) == 1
        by_species.setdefault(organism, {}).setdefault(exp["technology"], set()).update(platforms)
        frame = demo.values[acc]
        assert list(frame.columns) == exp["sample_accession_codes"]
        assert clean_ids(frame.index).str.fullmatch(ID_PATTERN[organism]).all()
    assert set(by_species) == {"HOMO_SAPIENS", "MUS_MUSCULUS"}
    for organism, techs in by_species.items():
        assert 2 <= len(techs["MICROARRAY"]) <= 3
        assert techs["RNA-SEQ"] == {"Illumina HiSeq 2500"}
        genes = set().union(
            *(
                set(clean_ids(demo.values[a].index))
                for a, e in demo.experiments.items()
                if e["organisms"] == [organism]
            )
        )
        assert 2000 <= len(genes) <= 4000
    assert (
        "Affymetrix Human Genome U133 Plus 2.0 Array (hgu133plus2)"
        in by_species["HOMO_SAPIENS"]["MICROARRAY"]
    )
    assert (
        "Illumina HumanHT-12 V4.0 expression beadchip" in by_species["HOMO_SAPIENS"]["MICROARRAY"]
    )


def test_demo_metadata_is_harmonized_with_some_gaps(demo):
    samples = pd.DataFrame.from_dict(demo.samples, orient="index")
    assert set(samples.columns) == SAMPLE_KEYS
    assert {"breast", "lung", "liver", "brain"} <= set(samples["refinebio_specimen_part"])
    assert {"breast cancer", "lung adenocarcinoma", "normal"} <= set(samples["refinebio_disease"])
    assert set(samples["refinebio_sex"]) == {"female", "male", ""}
    assert 0 < (samples["refinebio_sex"] == "").sum() < 10
    assert 0 < samples["refinebio_age"].isna().sum() < len(samples) / 4
    assert (
        samples.loc[samples["refinebio_specimen_part"] == "breast", "refinebio_sex"]
        .eq("female")
        .all()
    )
    assert set(samples["refinebio_source_database"]) == {"GEO", "ARRAY_EXPRESS", "SRA"}
    notes = [s["refinebio_annotations"][0] for s in demo.samples.values()]
    assert any("characteristics_ch1" in n for n in notes) and any(
        "characteristic" in n for n in notes
    )
    assert all(e["description"].endswith("not a real study.") for e in demo.experiments.values())
    assert {e["has_publication"] for e in demo.experiments.values()} == {True, False}


def test_demo_values_dirt_and_nans(demo):
    with_nan = []
    for acc, frame in demo.values.items():
        technology = demo.experiments[acc]["technology"]
        n_nan = int(frame.isna().to_numpy().sum())
        if n_nan:
            with_nan.append((acc, technology, n_nan))
        x = frame.to_numpy()
        if technology == "MICROARRAY":
            assert np.nanmin(x) >= 1.9 and np.nanmax(x) <= 15.5
        else:
            assert np.nanmin(x) >= 0
        assert frame.index.duplicated().any()
        assert frame.index.str.contains(r"\.\d+$").any()
    assert len(with_nan) == 1 and with_nan[0][1] == "RNA-SEQ" and with_nan[0][2] <= 10
    assert any(f.index.str.contains("AFFX-").any() for f in demo.values.values())
    assert list(demo.qn_targets) == ["HOMO_SAPIENS"]
    target = demo.qn_targets["HOMO_SAPIENS"]
    assert np.all(np.diff(target) >= 0) and 2000 < len(target) < 4000


def quantile_normalize(matrix: np.ndarray) -> np.ndarray:
    """Plain QN: each column takes the mean of the sorted columns, by rank."""
    target = np.sort(matrix, axis=0).mean(axis=1)
    ranks = np.argsort(np.argsort(matrix, axis=0, kind="stable"), axis=0)
    return target[ranks]


def pc_silhouettes(matrix: np.ndarray, **labels) -> dict[str, float]:
    pcs = PCA(n_components=2).fit_transform((matrix - matrix.mean(axis=1, keepdims=True)).T)
    return {name: silhouette_score(pcs, lab) for name, lab in labels.items()}


def test_demo_pca_separates_batches_before_and_tissues_after_quantile_normalization(demo):
    frames, experiment, tissue = [], [], []
    for acc, exp in demo.experiments.items():
        if exp["organisms"] != ["HOMO_SAPIENS"]:
            continue
        frame = sanitized(demo.values[acc])
        if exp["technology"] == "RNA-SEQ":
            frame = np.log2(frame + 1)
        frames.append(frame)
        experiment += [acc] * frame.shape[1]
        tissue += [demo.samples[c]["refinebio_specimen_part"] for c in frame.columns]
    matrix = pd.concat(frames, axis=1, join="inner").dropna().to_numpy()
    assert matrix.shape[1] == 146 and matrix.shape[0] > 1500
    assert len(set(tissue)) == 4  # every tissue is in >= 2 experiments on different platforms
    raw = pc_silhouettes(matrix, experiment=experiment, tissue=tissue)
    qn = pc_silhouettes(quantile_normalize(matrix), experiment=experiment, tissue=tissue)
    # (a) before QN, PC1/PC2 group the samples by experiment, not by tissue
    assert raw["experiment"] > 0.6
    assert raw["tissue"] < 0.35
    # (b) after QN, tissues form clear groups and the batch is reduced
    assert qn["tissue"] > 0.6
    assert qn["tissue"] > qn["experiment"] + 0.2
    assert qn["experiment"] < raw["experiment"] - 0.15
