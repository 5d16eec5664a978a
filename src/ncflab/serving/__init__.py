"""Serving a fitted model's recommendations outside ncflab: :mod:`ncflab.serving.export`
writes every user's top-K to one Parquet file.

It sits above ``models``, ``evaluation`` and ``data`` (it uses them) and below
``experiments`` and ``cli`` (they use it); it imports nothing from those two.
"""
