"""textclf: news-headline topic classification, from the UCI corpus to a served endpoint."""

__version__ = "0.1.0"
