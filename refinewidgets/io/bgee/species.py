"""Every species Bgee has: NCBI taxon id, scientific name, common name.

From the species table of Bgee's pipeline (``bgeeSpecies.tsv``, Bgee 15.2: 52 species). The
refine.bio-style organism name is the scientific name upper-cased with ``_`` for spaces
(``HOMO_SAPIENS``); :func:`organism_of_taxon` gives it, :data:`ORGANISM_BY_TAXON` maps all.

>>> organism_of_taxon(9483), organism_of_taxon(10181)
('CALLITHRIX_JACCHUS', 'HETEROCEPHALUS_GLABER')
>>> SPECIES_BY_ORGANISM["GORILLA_GORILLA"].common_name
'gorilla'
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "BGEE_SPECIES",
    "ORGANISM_BY_TAXON",
    "SPECIES_BY_ORGANISM",
    "Species",
    "organism_of_taxon",
]


class Species(NamedTuple):
    taxon: int
    scientific_name: str
    common_name: str

    @property
    def organism(self) -> str:
        """refine.bio's form: ``HOMO_SAPIENS``."""
        return self.scientific_name.upper().replace(" ", "_")


BGEE_SPECIES = tuple(
    Species(*row)
    for row in (
        (9606, "Homo sapiens", "human"),
        (10090, "Mus musculus", "mouse"),
        (7955, "Danio rerio", "zebrafish"),
        (7227, "Drosophila melanogaster", "fruit fly"),
        (6239, "Caenorhabditis elegans", "nematode"),
        (9598, "Pan troglodytes", "chimpanzee"),
        (9597, "Pan paniscus", "bonobo"),
        (9593, "Gorilla gorilla", "gorilla"),
        (9544, "Macaca mulatta", "macaque"),
        (10116, "Rattus norvegicus", "rat"),
        (9913, "Bos taurus", "cattle"),
        (9823, "Sus scrofa", "pig"),
        (9796, "Equus caballus", "horse"),
        (9986, "Oryctolagus cuniculus", "rabbit"),
        (9615, "Canis lupus familiaris", "dog"),
        (9685, "Felis catus", "cat"),
        (10141, "Cavia porcellus", "guinea pig"),
        (13616, "Monodelphis domestica", "opossum"),
        (9258, "Ornithorhynchus anatinus", "platypus"),
        (9031, "Gallus gallus", "chicken"),
        (28377, "Anolis carolinensis", "green anole"),
        (8364, "Xenopus tropicalis", "western clawed frog"),
        (7237, "Drosophila pseudoobscura", ""),
        (7240, "Drosophila simulans", ""),
        (7740, "Branchiostoma lanceolatum", "common lancelet"),
        (7897, "Latimeria chalumnae", "coelacanth"),
        (7918, "Lepisosteus oculatus", "spotted gar"),
        (7936, "Anguilla anguilla", "European freshwater eel"),
        (7994, "Astyanax mexicanus", "blind cave fish"),
        (8010, "Esox lucius", "northern pike"),
        (8030, "Salmo salar", "Atlantic salmon"),
        (8049, "Gadus morhua", "Atlantic cod"),
        (8081, "Poecilia reticulata", "guppy"),
        (8090, "Oryzias latipes", "Japanese rice fish"),
        (8154, "Astatotilapia calliptera", "eastern happy"),
        (8355, "Xenopus laevis", "African clawed frog"),
        (9103, "Meleagris gallopavo", "wild turkey"),
        (9483, "Callithrix jacchus", "white-tufted-ear marmoset"),
        (9531, "Cercocebus atys", "sooty mangabey"),
        (9541, "Macaca fascicularis", "crab-eating macaque"),
        (9545, "Macaca nemestrina", "pig-tailed macaque"),
        (9555, "Papio anubis", "olive baboon"),
        (9925, "Capra hircus", "goat"),
        (9940, "Ovis aries", "sheep"),
        (9974, "Manis javanica", "Malayan pangolin"),
        (10181, "Heterocephalus glaber", "naked mole rat"),
        (30608, "Microcebus murinus", "gray mouse lemur"),
        (32507, "Neolamprologus brichardi", "fairy cichlid"),
        (52904, "Scophthalmus maximus", "turbot"),
        (60711, "Chlorocebus sabaeus", "green monkey"),
        (69293, "Gasterosteus aculeatus", "three-spined stickleback"),
        (105023, "Nothobranchius furzeri", "turquoise killifish"),
    )
)
#: NCBI taxon id -> refine.bio-style organism name; 9595 (the western lowland gorilla
#: subspecies, used by some submitters) is Bgee's gorilla.
ORGANISM_BY_TAXON = {s.taxon: s.organism for s in BGEE_SPECIES} | {9595: "GORILLA_GORILLA"}
SPECIES_BY_ORGANISM = {s.organism: s for s in BGEE_SPECIES}


def organism_of_taxon(taxon: int) -> str:
    """The organism name of an NCBI taxon id; ``NCBITAXON_<id>`` for one Bgee does not have."""
    return ORGANISM_BY_TAXON.get(int(taxon), f"NCBITAXON_{int(taxon)}")
