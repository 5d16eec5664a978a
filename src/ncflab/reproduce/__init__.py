"""Reproducing the papers: experiment files (``spec``) → cells run as run folders
(``runner``) → committed summaries (``summary``) → generated reports (``report``)."""
