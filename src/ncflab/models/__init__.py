"""The model registry: a plain dict from short lower-case name to Recommender class."""

from ncflab.models.autorec import IAutoRec, UAutoRec, UIAutoRec
from ncflab.models.base import FitOptions, Recommender
from ncflab.models.bpr import BPR
from ncflab.models.ease import EASE
from ncflab.models.jca import JCA
from ncflab.models.jncf import JNCF
from ncflab.models.ncr import DNCR, NBPR, NeuPR
from ncflab.models.popularity import ItemPop, RandomRecommender

MODELS: dict[str, type[Recommender]] = {
    "itempop": ItemPop,
    "random": RandomRecommender,
    "bpr": BPR,
    "jncf": JNCF,
    "ease": EASE,
    "nbpr": NBPR,
    "dncr": DNCR,
    "neupr": NeuPR,
    "jca": JCA,
    "uautorec": UAutoRec,
    "iautorec": IAutoRec,
    "uiautorec": UIAutoRec,
}

__all__ = ["MODELS", "FitOptions", "Recommender"]
