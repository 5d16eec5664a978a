"""Serving a fitted model's recommendations outside ncflab: :mod:`ncflab.serving.export`
writes every user's top-K to one Parquet file; :mod:`ncflab.serving.app` answers HTTP
requests (``ncflab serve``) through the framework-free :mod:`ncflab.serving.service`.

It sits above ``models``, ``evaluation``, ``data`` and ``experiments`` (a service loads its run
with ``experiments.run.load_run``, checked as every reader checks it) and below ``cli``.
"""
