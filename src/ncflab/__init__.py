"""ncflab: neural collaborative filtering — J-NCF, JCA, NCR, their baselines and protocols."""

__version__ = "0.1.0"
