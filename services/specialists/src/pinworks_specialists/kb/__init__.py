"""Larkspur Bank's help-centre articles, indexed with BM25 for passage retrieval.

Articles are Markdown files with YAML front matter (``id``, ``title``, ``intents``). Each
blank-line-separated paragraph is one passage, so a search returns the few sentences that
answer a question rather than a whole page. The index is rebuilt in memory at load time; the
corpus is small enough that this takes milliseconds and needs no stored artefacts.
"""

from __future__ import annotations

from pinworks_specialists.kb.index import (
    Article,
    KnowledgeBase,
    KnowledgeBaseError,
    Passage,
)

__all__ = ["Article", "KnowledgeBase", "KnowledgeBaseError", "Passage"]
