"""contactpipe: batch ETL of contact lists between spreadsheets and WhatsApp contact APIs.

Data flows one way: ``extract -> transform -> load -> report``, driven by a thin CLI
(:mod:`pipeline.cli`) and orchestrated by :mod:`pipeline.run`.
"""

__version__ = "0.1.0"
