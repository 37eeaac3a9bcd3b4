"""A DVC pipeline for party-building (党建) texts: ingest → segment → themes → trends."""

__version__ = "0.1.0"
