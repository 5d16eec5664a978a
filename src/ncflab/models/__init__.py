"""The model registry: a plain dict from short lower-case name to Recommender class."""

from ncflab.models.base import FitOptions, Recommender
from ncflab.models.bpr import BPR
from ncflab.models.popularity import ItemPop, RandomRecommender

MODELS: dict[str, type[Recommender]] = {
    "itempop": ItemPop,
    "random": RandomRecommender,
    "bpr": BPR,
}

__all__ = ["MODELS", "FitOptions", "Recommender"]
