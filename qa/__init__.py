"""Retrieval-augmented extractive question answering with verified citations.

Importing this package loads no model and touches no disk.
"""

from .answers import Answer, Candidate, Citation, Passage
from .documents import Document
from .errors import QAError
from .pipeline import Pipeline
from .retrieval import Filters
from .settings import Settings

__all__ = ["Answer", "Candidate", "Citation", "Document", "Filters", "Passage", "Pipeline", "QAError",
           "Settings"]
