"""Seeded generators of synthetic refine.bio-shaped compendia.

A :class:`Compendium` holds what refine.bio knows about a set of experiments: experiment and
sample records shaped like the entries of ``aggregated_metadata.json``, one genes x samples
expression matrix per experiment and, optionally, a quantile-normalization target per organism.

:func:`synthetic_compendium` makes compendia of any size for tests and benchmarks;
:func:`~refinewidgets.testing.demo_design.demo_compendium` makes the bundled demo.

How values are made: every species has a latent log2 expression per gene (a baseline plus
tissue, disease and sex effects on gene subsets plus per-sample noise). A platform sees a subset
of the species' genes with its own per-gene offsets. A microarray experiment turns the latent
values into log2 intensities with an experiment-wide additive shift and multiplicative scale
(Illumina arrays add a background that compresses the low end); an RNA-seq experiment turns
them into expected counts, draws gamma-Poisson counts and multiplies them by a per-gene
length factor, giving unlogged lengthScaledTPM-like values with exact zeros and a heavy tail.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.metadata import ACCESSION, EXPERIMENT_FIELDS, HARMONIZED_FIELDS

__all__ = ["Compendium", "synthetic_compendium"]

#: Keys of a sample record besides ``refinebio_annotations`` (refine.bio's harmonized fields).
SAMPLE_FIELDS = (ACCESSION, *HARMONIZED_FIELDS)


@dataclass
class Compendium:
    """Experiments, samples and expression values, as refine.bio holds them.

    Attributes
    ----------
    experiments
        Experiment accession -> experiment record (an ``aggregated_metadata.json`` entry).
    samples
        Sample accession -> sample record (``refinebio_*`` fields and ``refinebio_annotations``).
    values
        Experiment accession -> genes x samples float64 DataFrame; the columns are the
        experiment's ``sample_accession_codes`` in that order.
    qn_targets
        Organism (e.g. ``"HOMO_SAPIENS"``) -> sorted 1-D quantile-normalization target; may be
        empty.
    """

    experiments: dict[str, dict]
    samples: dict[str, dict]
    values: dict[str, pd.DataFrame]
    qn_targets: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class _Platform:
    name: str
    geo_id: str  # GPL accession shown in GEO-style annotations
    technology: str  # MICROARRAY | RNA-SEQ
    vendor: str  # affymetrix | illumina | sequencer


@dataclass(frozen=True)
class _Species:
    prefix: str
    latin: str
    platforms: tuple[_Platform, ...]
    tissues: tuple[str, ...]
    diseases: tuple[str, ...]  # one disease per tissue, same order


_MA, _SEQ = "MICROARRAY", "RNA-SEQ"
_P, _S = _Platform, _Species
# fmt: off
_SPECIES = {
    "HOMO_SAPIENS": _S("ENSG", "Homo sapiens", (
        _P("Affymetrix Human Genome U133 Plus 2.0 Array (hgu133plus2)", "GPL570", _MA,
           "affymetrix"),
        _P("Illumina HumanHT-12 V4.0 expression beadchip", "GPL10558", _MA, "illumina"),
        _P("Illumina HiSeq 2500", "GPL16791", _SEQ, "sequencer")),
        ("lung", "liver", "brain", "breast"),
        ("lung adenocarcinoma", "hepatocellular carcinoma", "glioblastoma", "breast cancer")),
    "MUS_MUSCULUS": _S("ENSMUSG", "Mus musculus", (
        _P("Affymetrix Mouse Genome 430 2.0 Array (mouse4302)", "GPL1261", _MA, "affymetrix"),
        _P("Illumina MouseWG-6 v2.0 expression beadchip", "GPL6887", _MA, "illumina"),
        _P("Illumina HiSeq 2500", "GPL17021", _SEQ, "sequencer")),
        ("lung", "liver", "brain", "mammary gland"),
        ("lung adenocarcinoma", "hepatocellular carcinoma", "glioblastoma", "mammary tumor")),
    "RATTUS_NORVEGICUS": _S("ENSRNOG", "Rattus norvegicus", (
        _P("Affymetrix Rat Genome 230 2.0 Array (rat2302)", "GPL1355", _MA, "affymetrix"),
        _P("Illumina HiSeq 2000", "GPL14844", _SEQ, "sequencer")),
        ("liver", "kidney", "heart"),
        ("liver fibrosis", "chronic kidney disease", "cardiac hypertrophy")),
    "DANIO_RERIO": _S("ENSDARG", "Danio rerio", (
        _P("Affymetrix Zebrafish Genome Array (zebrafish)", "GPL1319", _MA, "affymetrix"),
        _P("Illumina HiSeq 2500", "GPL18413", _SEQ, "sequencer")),
        ("whole organism", "heart", "fin"),
        ("", "cardiac injury", "fin regeneration")),
}
_PROCESSORS = {  # vendor -> (refinebio_processor_id, name, version)
    "affymetrix": (1, "Affymetrix SCAN", "v1.45.5"),
    "illumina": (2, "Illumina SCAN", "v1.45.5"),
    "sequencer": (3, "Tximport", "v1.45.5"),
}
_AFFX_IDS = ("AFFX-BioB-5_at", "AFFX-BioC-3_at", "AFFX-CreX-5_at", "AFFX-HUMGAPDH/M33197_3_at",
             "AFFX-r2-Bs-dap-3_at", "AFFX-TrpnX-M_at")
# fmt: on
_GEO_KEYS = ("tissue", "disease state", "Sex")  # submitter words for tissue, disease, sex
_CENTER = 7.0  # centre of the latent log2 scale; experiment scales stretch around it


def _rng(seed: int, *keys: object) -> np.random.Generator:
    """A generator depending only on the seed and the keys (strings are hashed stably)."""
    ints = [k if isinstance(k, int) else zlib.crc32(str(k).encode()) for k in keys]
    return np.random.default_rng([seed, *ints])


def _species(organism: str) -> _Species:
    try:
        return _SPECIES[organism]
    except KeyError:
        raise ValueError(
            f"Unknown organism {organism!r}; synthetic compendia know {sorted(_SPECIES)}."
        ) from None


class _GeneModel:
    """Latent log2 expression of one species: baseline plus tissue/disease/sex effects."""

    def __init__(self, organism, n_genes, seed, effects=None):
        self.organism, self.seed = organism, seed
        self.n = n_genes
        self.effect_sizes = {"tissue": (0.12, 1.5), "disease": (0.06, 1.2)} | (effects or {})
        rng = _rng(seed, "genes", organism)
        numbers = np.sort(rng.choice(300_000, size=n_genes, replace=False))
        self.ids = np.char.add(_species(organism).prefix, np.char.zfill(numbers.astype(str), 11))
        self.base = np.clip(rng.normal(_CENTER, 2.2, n_genes), 1.5, 13.0)
        self._effects: dict[tuple[str, str], np.ndarray] = {}

    def effect(self, kind: str, label: str) -> np.ndarray:
        key = (kind, label)
        if key not in self._effects:
            effect = np.zeros(self.n)
            if label not in ("", "normal"):
                rng = _rng(self.seed, "effect", self.organism, kind, label)
                if kind == "sex":  # a few strongly sex-specific genes (XIST-like, chrY-like)
                    hit = rng.choice(self.n, size=min(self.n, 4), replace=False)
                    effect[hit] = 4.0
                else:  # (fraction of genes affected, sd of the effect)
                    fraction, sd = self.effect_sizes.get(kind, (0.05, 1.0))
                    hit = rng.random(self.n) < fraction
                    effect[hit] = rng.normal(0.0, sd, hit.sum())
            self._effects[key] = effect
        return self._effects[key]

    def latent(self, kinds: dict[str, list[str]], rng, noise_sd=0.3, weights=None) -> np.ndarray:
        """Genes x samples latent log2 values.

        ``kinds`` maps an effect kind to one label per sample; ``weights`` optionally maps a
        kind to one multiplier per sample (e.g. tumour purity for ``disease``).
        """
        n_samples = len(next(iter(kinds.values())))
        out = np.repeat(self.base[:, None], n_samples, axis=1)
        for kind, labels in kinds.items():
            uniq, inverse = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
            effect = np.stack([self.effect(kind, u) for u in uniq], axis=1)[:, inverse]
            if weights and kind in weights:
                effect = effect * np.asarray(weights[kind])[None, :]
            out += effect
        out += rng.normal(0.0, noise_sd, out.shape)
        return out


class _Layout:
    """Which genes a platform measures, its per-gene offsets and its (dirty) row ids."""

    def __init__(self, model: _GeneModel, platform: _Platform, coverage: float, dirty: bool, seed):
        rng = _rng(seed, "platform", model.organism, platform.name)
        n_rows = max(1, int(round(coverage * model.n)))
        self.platform = platform
        self.rows = np.sort(rng.choice(model.n, size=n_rows, replace=False))
        sd = 0.3 if platform.technology == _MA else 0.4
        self.offset = rng.normal(0.0, sd, n_rows)
        self.length_factor = np.exp(rng.normal(0.0, 0.3, n_rows))  # RNA-seq only
        ids = model.ids[self.rows].astype(object)
        self.n_affx, self.dup = 0, np.array([], dtype=int)
        if dirty:
            versioned = rng.random(n_rows) < 0.03
            suffix = rng.integers(1, 20, versioned.sum()).astype(str)
            ids[versioned] = np.char.add(np.char.add(ids[versioned].astype(str), "."), suffix)
            self.dup = rng.choice(n_rows, size=1, replace=False)
            extra = list(ids[self.dup])
            if platform.vendor == "affymetrix":
                self.n_affx = len(_AFFX_IDS)
                extra = list(_AFFX_IDS) + extra
            ids = np.concatenate([ids, np.array(extra, dtype=object)])
        self.order = np.argsort(ids.astype(str), kind="stable")
        self.index = pd.Index(ids[self.order], name="Gene", dtype=object)

    def assemble(self, clean: np.ndarray, rng) -> np.ndarray:
        """Rows of the final matrix: clean rows plus control and duplicate rows, sorted by id."""
        if self.n_affx == 0 and self.dup.size == 0:
            return clean
        parts = [clean]
        if self.n_affx:
            level = rng.uniform(4.0, 13.0, (self.n_affx, 1))
            parts.append(level + rng.normal(0.0, 0.2, (self.n_affx, clean.shape[1])))
        if self.platform.technology == _MA:
            parts.append(clean[self.dup] + rng.normal(0.0, 0.3, (self.dup.size, clean.shape[1])))
        else:
            parts.append(np.round(clean[self.dup] * rng.uniform(0.6, 1.0, (self.dup.size, 1)), 3))
        return np.concatenate(parts)[self.order]


def _measure(layout: _Layout, latent: np.ndarray, rng, *, shift=0.0, scale=1.0, jitter=0.1):
    """Platform values (genes of the layout x samples) from latent log2 values."""
    x = latent[layout.rows] + layout.offset[:, None]
    x = _CENTER + scale * (x - _CENTER) + shift + rng.normal(0.0, jitter, (1, x.shape[1]))
    if layout.platform.technology == _MA:
        x = x + rng.normal(0.0, 0.15, x.shape)
        if layout.platform.vendor == "illumina":  # bead-array background compresses the low end
            x = np.log2(np.exp2(x) + 2.0**6.5)
        else:  # a smooth floor near 2
            x = 2.0 + np.logaddexp(0.0, x - 2.0)
        return 15.5 - np.logaddexp(0.0, 15.5 - x)  # and a smooth saturation below 15.5
    mean = np.exp2(np.minimum(x - 1.0, 20.0))
    phi = 0.05
    counts = rng.poisson(rng.gamma(1.0 / phi, mean * phi))
    return counts * layout.length_factor[:, None]


def _source_url(database: str, experiment: str, sample: str, vendor: str) -> str:
    if database == "SRA":
        return f"ftp://ftp.sra.ebi.ac.uk/vol1/fastq/{sample[:6]}/{sample}/{sample}_1.fastq.gz"
    if database == "ARRAY_EXPRESS":
        return f"https://www.ebi.ac.uk/arrayexpress/files/{experiment}/{experiment}.raw.1.zip"
    if vendor == "illumina":
        stem = experiment[:-3] + "nnn"
        suppl = f"{experiment}/suppl/{experiment}_non-normalized.txt.gz"
        return f"ftp://ftp.ncbi.nlm.nih.gov/geo/series/{stem}/{suppl}"
    stem = sample[:-3] + "nnn"
    return f"ftp://ftp.ncbi.nlm.nih.gov/geo/samples/{stem}/{sample}/suppl/{sample}.CEL.gz"


def _sample_record(accession, *, experiment, database, platform, organism, **fields) -> dict:
    """A complete sample record; ``fields`` are ``refinebio_*`` names without the prefix."""
    record = dict.fromkeys(SAMPLE_FIELDS, "")  # unknown = "" (age: None)
    record.update(refinebio_accession_code=accession, refinebio_age=None, refinebio_processed=True)
    processor_id, processor, version = _PROCESSORS[platform.vendor]
    record.update(
        refinebio_organism=organism,
        refinebio_platform=platform.name,
        refinebio_processor_id=processor_id,
        refinebio_processor_name=processor,
        refinebio_processor_version=version,
        refinebio_source_database=database,
        refinebio_source_archive_url=_source_url(database, experiment, accession, platform.vendor),
    )
    for name, value in fields.items():
        key = f"refinebio_{name}"
        if key not in record:
            raise ValueError(f"{key!r} is not a refine.bio sample field")
        record[key] = value
    return record


def _geo_annotation(record, platform, species, characteristics, source_name) -> dict:
    """A GEO-style submitter annotation (``characteristics_ch1`` as ``key: value`` strings)."""
    note = {
        "characteristics_ch1": [f"{key}: {value}" for key, value in characteristics if value != ""],
        "source_name_ch1": [source_name],
        "title": [record["refinebio_title"]],
        "geo_accession": [record["refinebio_accession_code"]],
        "platform_id": [platform.geo_id],
        "organism_ch1": [species.latin],
        "molecule_ch1": ["total RNA"],
    }
    if platform.technology == _SEQ:
        note.update(library_strategy=["RNA-Seq"], instrument_model=[platform.name])
    else:
        note["label_ch1"] = ["biotin"] if platform.vendor == "affymetrix" else ["Cy3"]
    return note


def _ae_annotation(record, species, characteristics, variables, source_name) -> dict:
    """An ArrayExpress-style annotation (``characteristic`` / ``variable`` / ``source``)."""
    chars = [{"category": "organism", "value": species.latin}]
    chars += [{"category": k, "value": v} for k, v in characteristics if v != ""]
    return {
        "characteristic": chars,
        "variable": [{"name": k, "value": v} for k, v in variables if v != ""],
        "source": {
            "name": source_name,
            "comment": [{"name": "ENA_SAMPLE", "value": record["refinebio_accession_code"]}],
        },
        "assay": {"name": record["refinebio_title"]},
    }


def _annotated_sample(code, label, *, experiment, database, platform, organism, keys, short_sex):
    """A sample record with its submitter annotation, from one sample's ``label`` dict.

    ``label`` holds tissue, disease, submitted (the disease as the submitter wrote it), sex,
    age, title and optionally subject, treatment, genetic_information. ``keys`` are the
    submitter's words for tissue, disease and sex; ``short_sex`` writes F/M.
    """
    species = _species(organism)
    extra = {k: label.get(k, "") for k in ("subject", "treatment", "genetic_information")}
    record = _sample_record(
        code, experiment=experiment, database=database, platform=platform, organism=organism,
        age=label["age"], disease=label["disease"], sex=label["sex"],
        specimen_part=label["tissue"], title=label["title"], developmental_stage="adult", **extra,
    )  # fmt: skip
    tissue_key, disease_key, sex_key = keys
    age = "" if label["age"] is None else f"{label['age']:g}"
    if age and organism != "HOMO_SAPIENS":
        age += " weeks"
    chars = [
        (tissue_key, label["tissue"]),
        (disease_key, label["submitted"]),
        (sex_key, label["sex"][:1].upper() if short_sex else label["sex"]),
        ("age", age),
        ("genotype", extra["genetic_information"]),
        ("diet", extra["treatment"]),
    ]
    source = f"{label['tissue']}, {label['submitted'] or 'donor'}"
    if database == "ARRAY_EXPRESS":  # the experimental factor is a variable, not a characteristic
        factor = chars[1] if label["submitted"] else chars[0]
        rest = [c for c in chars if c[0] != factor[0]]
        note = _ae_annotation(record, species, rest, [factor], source)
    else:
        note = _geo_annotation(record, platform, species, chars, source)
    record["refinebio_annotations"] = [note]
    return record


def _values_frame(model, layout, labels, codes, rng, *, shift, scale, jitter=0.1, noise_sd=0.3,
                  purity=None, nan_fraction=0.0, nan_values=0, decimals=None):  # fmt: skip
    """One experiment's genes x samples frame from the samples' labels.

    ``purity`` (a (low, high) range) scales each sample's disease effect by a random factor;
    ``nan_fraction`` blanks that fraction of the values, ``nan_values`` that many values;
    ``decimals`` rounds the values (to keep the shipped demo small).
    """
    kinds = ("tissue", "disease", "sex", "treatment", "genetic_information")
    weights = None
    if purity is not None:
        weights = {"disease": rng.uniform(purity[0], purity[1], len(labels))}
    latent = model.latent(
        {k: [lab.get(k, "") for lab in labels] for k in kinds}, rng, noise_sd, weights
    )
    clean = _measure(layout, latent, rng, shift=shift, scale=scale, jitter=jitter)
    if decimals is not None:
        clean = np.round(clean, decimals)
    if nan_fraction > 0:
        clean[rng.random(clean.shape) < nan_fraction] = np.nan
    if nan_values:
        rows = rng.choice(clean.shape[0], nan_values, replace=False)
        clean[rows, rng.integers(0, clean.shape[1], nan_values)] = np.nan
    values = layout.assemble(clean, rng)
    if decimals is not None:
        values = np.round(values, decimals)
    return pd.DataFrame(values, index=layout.index.copy(), columns=list(codes), dtype="float64")


_PREFIXES = {  # database -> ((experiment prefix, digits), (sample prefix, digits))
    "GEO": (("GSE", 0), ("GSM", 0)),
    "ARRAY_EXPRESS": (("E-MTAB-", 0), ("ERS", 0)),
    "SRA": (("SRP", 6), ("SRR", 7)),
}


class _Accessions:
    """Unique, deterministic accession numbers per database."""

    def __init__(self, seed: int):
        rng = _rng(seed, "accessions")
        self._next = {
            "GSE": int(rng.integers(20_000, 150_000)),
            "GSM": int(rng.integers(500_000, 4_000_000)),
            "E-MTAB-": int(rng.integers(1_000, 9_000)),
            "ERS": int(rng.integers(100_000, 3_000_000)),
            "SRP": int(rng.integers(10_000, 200_000)),
            "SRR": int(rng.integers(1_000_000, 9_000_000)),
        }

    def take(self, prefix: str, width: int = 0) -> str:
        number = self._next[prefix]
        self._next[prefix] += 1
        return f"{prefix}{number:0{width}d}"

    def experiment(self, database: str) -> str:
        return self.take(*_PREFIXES[database][0])

    def sample(self, database: str) -> str:
        return self.take(*_PREFIXES[database][1])


def _qn_target(model: _GeneModel, layout: _Layout, seed: int, n_reference: int = 40) -> np.ndarray:
    """Mean of the sorted columns of reference microarray samples (refine.bio's recipe)."""
    rng = _rng(seed, "qn-target", model.organism)
    species = _species(model.organism)
    tissues = list(rng.choice(species.tissues, n_reference))
    latent = model.latent({"tissue": tissues}, rng)
    reference = _measure(layout, latent, rng)
    return np.sort(reference, axis=0).mean(axis=1)


def synthetic_compendium(
    *,
    n_experiments: int = 4,
    samples_per_experiment: int = 10,
    n_genes: int = 500,
    organisms: tuple[str, ...] = ("HOMO_SAPIENS",),
    technologies: tuple[str, ...] = ("MICROARRAY", "RNA-SEQ"),
    gene_coverage: float = 0.9,
    nan_fraction: float = 0.0,
    dirty_ids: bool = False,
    shared_samples: int = 0,
    with_qn_targets: bool = False,
    seed: int = 0,
) -> Compendium:
    """Make a seeded synthetic compendium of any size.

    Experiment ``i`` takes the ``i``-th (organism, technology) pair of the cycle over
    ``organisms`` x ``technologies``. Within one pair, experiments 0 and 1 use the first
    platform, 2 and 3 the next one, and so on (cycling). Microarray experiments alternate between
    GEO and ArrayExpress, RNA-seq experiments come from SRA. Each sample has a tissue, a disease
    (``"normal"`` or the tissue's disease), a sex and an age, all with expression effects.

    Parameters
    ----------
    n_experiments
        Number of experiments.
    samples_per_experiment
        Number of samples (columns) of each experiment.
    n_genes
        Number of genes of each organism; a platform measures a subset of them.
    organisms
        Organisms to cycle over: ``HOMO_SAPIENS``, ``MUS_MUSCULUS``, ``RATTUS_NORVEGICUS``,
        ``DANIO_RERIO``.
    technologies
        Technologies to cycle over: ``MICROARRAY`` (log2 intensities, about 2 to 14) and/or
        ``RNA-SEQ`` (unlogged lengthScaledTPM, >= 0).
    gene_coverage
        Fraction of the organism's genes that each platform measures (a different random subset
        per platform), in (0, 1].
    nan_fraction
        Fraction of the values set to NaN, at random positions.
    dirty_ids
        Add what refine.bio's sanitising removes: Affymetrix ``AFFX-`` control rows (Affymetrix
        platforms), a version suffix on about 3% of the ids (``ENSG00000123456.7``) and one
        duplicated gene id row per platform.
    shared_samples
        Number of samples listed in two experiments of the same organism and platform (they
        replace the last samples of the second experiment, with identical values).
    with_qn_targets
        Add a quantile-normalization target per organism: the mean of the sorted columns of 40
        reference samples of the organism's Affymetrix platform.
    seed
        Seed; the same arguments give an identical compendium.

    Returns
    -------
    Compendium
        Records, values and targets; value frames are indexed by gene id (index name ``Gene``).

    Examples
    --------
    >>> comp = synthetic_compendium(n_experiments=2, samples_per_experiment=3, n_genes=50)
    >>> [e["technology"] for e in comp.experiments.values()]
    ['MICROARRAY', 'RNA-SEQ']
    >>> [frame.shape for frame in comp.values.values()]
    [(45, 3), (45, 3)]
    """
    _check_arguments(n_experiments, samples_per_experiment, n_genes, organisms, technologies,
                     gene_coverage, nan_fraction, shared_samples)  # fmt: skip
    models = {org: _GeneModel(org, n_genes, seed) for org in organisms}
    layouts: dict[tuple[str, str], _Layout] = {}
    combos = [(org, tech) for org in organisms for tech in technologies]
    counts = dict.fromkeys(combos, 0)
    ids = _Accessions(seed)
    comp = Compendium({}, {}, {}, {})
    pairs: list[tuple[str, str]] = []
    for i in range(n_experiments):
        org, tech = combos[i % len(combos)]
        k = counts[org, tech]
        counts[org, tech] += 1
        platforms = [p for p in _species(org).platforms if p.technology == tech]
        platform = platforms[(k // 2) % len(platforms)]
        database = "SRA" if tech == _SEQ else ("GEO", "ARRAY_EXPRESS")[k % 2]
        key = (org, platform.name)
        if key not in layouts:
            layouts[key] = _Layout(models[org], platform, gene_coverage, dirty_ids, seed)
        accession = ids.experiment(database)
        _add_experiment(comp, accession, i, database, platform, models[org], layouts[key],
                        samples_per_experiment, ids, nan_fraction, seed)  # fmt: skip
        if k % 2 == 1:  # experiments 2m and 2m+1 of a pair share a platform
            same = [a for a, e in comp.experiments.items() if e["organisms"] == [org]
                    and e["technology"] == tech]  # fmt: skip
            previous = same[-2]
            pairs.append((previous, accession))
    _share_samples(comp, pairs, shared_samples)
    if with_qn_targets:
        for org, model in models.items():
            affy = next(p for p in _species(org).platforms if p.vendor == "affymetrix")
            layout = _Layout(model, affy, gene_coverage, False, seed)
            comp.qn_targets[org] = _qn_target(model, layout, seed)
    return comp


def _check_arguments(n_experiments, samples, n_genes, organisms, technologies, coverage,
                     nan_fraction, shared):  # fmt: skip
    counts = {"n_experiments": n_experiments, "samples_per_experiment": samples, "n_genes": n_genes}
    for name, value in counts.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if isinstance(organisms, str) or not organisms:
        raise ValueError(f"organisms must be a non-empty tuple of names, got {organisms!r}.")
    for org in organisms:
        _species(org)
    if isinstance(technologies, str) or not technologies or set(technologies) - {_MA, _SEQ}:
        raise ValueError(
            "technologies must be a non-empty tuple of 'MICROARRAY'/'RNA-SEQ', "
            f"got {technologies!r}."
        )
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"gene_coverage must be in (0, 1], got {coverage!r}.")
    if not 0.0 <= nan_fraction < 1.0:
        raise ValueError(f"nan_fraction must be in [0, 1), got {nan_fraction!r}.")
    if shared < 0:
        raise ValueError(f"shared_samples must be >= 0, got {shared!r}.")


def _add_experiment(comp, accession, i, database, platform, model, layout, n_samples, ids,
                    nan_fraction, seed):  # fmt: skip
    rng = _rng(seed, "experiment", i)
    species = _species(model.organism)
    t = rng.integers(0, len(species.tissues), n_samples)
    sick = rng.random(n_samples) < 0.5
    sexes = rng.integers(0, 2, n_samples)
    ages = rng.integers(20, 80, n_samples)
    labels = []
    for j in range(n_samples):
        tissue = species.tissues[t[j]]
        disease = species.diseases[t[j]] if sick[j] else "normal"
        female = sexes[j] == 0 or tissue in ("breast", "mammary gland")
        labels.append({
            "tissue": tissue, "disease": disease, "submitted": disease,
            "sex": "female" if female else "male", "age": float(ages[j]),
            "title": f"{tissue} {disease} {j + 1}",
        })  # fmt: skip
    codes = [ids.sample(database) for _ in range(n_samples)]
    keys = ("organism part", "disease", "sex") if database == "ARRAY_EXPRESS" else _GEO_KEYS
    for code, label in zip(codes, labels):
        comp.samples[code] = _annotated_sample(
            code, label, experiment=accession, database=database, platform=platform,
            organism=model.organism, keys=keys, short_sex=False,
        )  # fmt: skip
    comp.values[accession] = _values_frame(
        model, layout, labels, codes, rng, shift=rng.uniform(-1.0, 1.0),
        scale=rng.uniform(0.85, 1.15), nan_fraction=nan_fraction,
    )  # fmt: skip
    tech_text = "RNA-seq" if platform.technology == _SEQ else "Microarray"
    tissues = ", ".join(sorted({label["tissue"] for label in labels}))
    comp.experiments[accession] = _experiment_record(
        accession, model.organism, codes, platform.technology,
        title=f"Synthetic experiment {i + 1}: {tech_text} profiling of {tissues} in "
        f"{species.latin}",
        description=f"Seeded synthetic data (seed {seed}) generated by refinewidgets.",
        submitter_institution="refinewidgets synthetic data",
        protocol_description=f"{tech_text} on {platform.name}.",
        source_first_published=f"{2008 + i % 12:04d}-{1 + i % 12:02d}-15",
        source_last_modified=f"{2009 + i % 12:04d}-{1 + i % 12:02d}-20",
    )  # fmt: skip


def _experiment_record(accession, organism, samples, technology, **fields) -> dict:
    record = {name: "" for name in EXPERIMENT_FIELDS}
    record.update(
        accession_code=accession,
        organisms=[organism],
        sample_accession_codes=list(samples),
        technology=technology,
        has_publication=False,
    )
    unknown = set(fields) - set(EXPERIMENT_FIELDS)
    if unknown:
        raise ValueError(f"not refine.bio experiment fields: {sorted(unknown)}")
    record.update(fields)
    return record


def _share_samples(comp: Compendium, pairs: list[tuple[str, str]], n_shared: int) -> None:
    """List ``n_shared`` samples of the first experiment of a pair in the second one too."""
    if n_shared == 0:
        return
    if not pairs:
        raise ValueError(
            "shared_samples needs two experiments of the same organism and platform; "
            "raise n_experiments (experiments 0/1, 2/3... of one organism and technology pair up)."
        )
    capacity = len(pairs) * (len(comp.experiments[pairs[0][0]]["sample_accession_codes"]) // 2)
    if n_shared > capacity:
        raise ValueError(f"shared_samples={n_shared} is more than the {capacity} possible here.")
    for j in range(n_shared):
        source, target = pairs[j % len(pairs)]
        r = j // len(pairs)
        shared = comp.experiments[source]["sample_accession_codes"][r]
        codes = comp.experiments[target]["sample_accession_codes"]
        dropped = codes[-1 - r]
        codes[-1 - r] = shared
        del comp.samples[dropped]
        frame = comp.values[target]
        frame[dropped] = comp.values[source][shared].to_numpy()
        comp.values[target] = frame.rename(columns={dropped: shared})
