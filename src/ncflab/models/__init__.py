"""The model registry: a plain dict from short lower-case name to Recommender class."""

from ncflab.models.autorec import IAutoRec, UAutoRec, UIAutoRec
from ncflab.models.base import Recommender
from ncflab.models.bpr import BPR
from ncflab.models.cdae import CDAE
from ncflab.models.dmf import DMF
from ncflab.models.eals import EALS
from ncflab.models.ease import EASE
from ncflab.models.graph import P3alpha, RP3beta
from ncflab.models.ials import IALS
from ncflab.models.jca import JCA
from ncflab.models.jncf import JNCF
from ncflab.models.knn import ItemKNN, UserKNN
from ncflab.models.multvae import MultDAE, MultVAE
from ncflab.models.ncf import GMF, MLP, NeuMF
from ncflab.models.ncr import DNCR, NBPR, NeuPR
from ncflab.models.npr import NPR
from ncflab.models.popularity import ItemPop, RandomRecommender
from ncflab.models.puresvd import PureSVD
from ncflab.models.slim import SLIM
from ncflab.training.options import FitOptions

MODELS: dict[str, type[Recommender]] = {
    "itempop": ItemPop,
    "random": RandomRecommender,
    "bpr": BPR,
    "jncf": JNCF,
    "dmf": DMF,
    "ease": EASE,
    "nbpr": NBPR,
    "dncr": DNCR,
    "neupr": NeuPR,
    "jca": JCA,
    "uautorec": UAutoRec,
    "iautorec": IAutoRec,
    "uiautorec": UIAutoRec,
    "itemknn": ItemKNN,
    "userknn": UserKNN,
    "p3alpha": P3alpha,
    "rp3beta": RP3beta,
    "slim": SLIM,
    "ials": IALS,
    "eals": EALS,
    "puresvd": PureSVD,
    "cdae": CDAE,
    "multvae": MultVAE,
    "multdae": MultDAE,
    "gmf": GMF,
    "mlp": MLP,
    "neumf": NeuMF,
    "npr": NPR,
}

__all__ = ["MODELS", "FitOptions", "Recommender"]
