"""Loading the article files and the BM25 passage index behind :class:`KnowledgeBase`."""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import yaml

from pinworks_specialists.kb.text import tokenize
from pinworks_specialists.templating import INTENTS

__all__ = ["Article", "KnowledgeBase", "KnowledgeBaseError", "Passage"]

_FRONT_MATTER_RE = re.compile(r"\A---\s*\n(?P<meta>.*?)\n---\s*\n(?P<body>.*)\Z", re.DOTALL)
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9\-]*$")

K1 = 1.5
"""BM25 term-frequency saturation; the usual 1.2-2.0 range suits short passages."""
B = 0.75
"""BM25 length normalisation; standard value."""
TITLE_WEIGHT = 2
"""Title terms are counted this many times per passage: titles name the topic precisely."""


class KnowledgeBaseError(ValueError):
    """An article file is malformed; the message names the file."""


@dataclass(frozen=True)
class Passage:
    """One retrieved paragraph with its BM25 score for the query (higher is better)."""

    passage_id: str
    article_id: str
    title: str
    text: str
    score: float


@dataclass(frozen=True)
class Article:
    """A parsed help-centre article."""

    article_id: str
    title: str
    intents: tuple[str, ...]
    paragraphs: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)


@dataclass(frozen=True)
class _Indexed:
    passage_id: str
    article_id: str
    title: str
    text: str
    term_freqs: Mapping[str, int]
    length: int


class _Postings(NamedTuple):
    """The passages holding one term, as arrays: their indexes, the term's frequency in each,
    and that frequency plus the passage's length norm (BM25's denominator, summed once here
    instead of at every search)."""

    passages: np.ndarray
    tf: np.ndarray
    saturation: np.ndarray


def _paragraphs(body: str) -> tuple[str, ...]:
    """Split on blank lines; headings are folded into the paragraph that follows them."""
    result: list[str] = []
    heading = ""
    for block in re.split(r"\n\s*\n", body.strip()):
        text = " ".join(block.split())
        if not text:
            continue
        if text.startswith("#"):
            heading = text.lstrip("#").strip()
            continue
        result.append(f"{heading}: {text}" if heading else text)
        heading = ""
    return tuple(result)


def parse_article(name: str, raw: str, known_intents: Iterable[str] = INTENTS) -> Article:
    """Parse one Markdown article; ``name`` is the file name, used in error messages."""
    match = _FRONT_MATTER_RE.match(raw.replace("\r\n", "\n"))
    if match is None:
        raise KnowledgeBaseError(f"{name}: missing '---' YAML front matter")
    try:
        meta: Any = yaml.safe_load(match.group("meta"))
    except yaml.YAMLError as exc:
        raise KnowledgeBaseError(f"{name}: front matter is not valid YAML: {exc}") from exc
    if not isinstance(meta, Mapping):
        raise KnowledgeBaseError(f"{name}: front matter must be a mapping")
    article_id = meta.get("id")
    title = meta.get("title")
    intents = meta.get("intents")
    if not isinstance(article_id, str) or not _ID_RE.match(article_id):
        raise KnowledgeBaseError(f"{name}: 'id' must be a lowercase slug")
    if Path(name).stem != article_id:
        raise KnowledgeBaseError(f"{name}: id {article_id!r} must match the file name")
    if not isinstance(title, str) or not title.strip():
        raise KnowledgeBaseError(f"{name}: 'title' must be a non-empty string")
    if not isinstance(intents, list) or not intents or not all(isinstance(i, str) for i in intents):
        raise KnowledgeBaseError(f"{name}: 'intents' must be a non-empty list of intent names")
    unknown = sorted(set(intents) - set(known_intents))
    if unknown:
        raise KnowledgeBaseError(f"{name}: unknown intent(s) {unknown}")
    paragraphs = _paragraphs(match.group("body"))
    if not paragraphs:
        raise KnowledgeBaseError(f"{name}: article has no text")
    return Article(article_id, title.strip(), tuple(intents), paragraphs)


def _package_files() -> list[tuple[str, str]]:
    folder: Traversable = resources.files("pinworks_specialists.kb").joinpath("articles")
    return sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".md")
    )


def _directory_files(directory: Path) -> list[tuple[str, str]]:
    if not directory.is_dir():
        raise KnowledgeBaseError(f"{directory}: not a directory")
    return sorted((p.name, p.read_text(encoding="utf-8")) for p in directory.glob("*.md"))


class KnowledgeBase:
    """Immutable BM25 index over article paragraphs, plus the intent-to-article map."""

    version: str

    def __init__(self, articles: Iterable[Article], version: str) -> None:
        self.version = version
        self._articles: dict[str, Article] = {}
        for article in articles:
            if article.article_id in self._articles:
                raise KnowledgeBaseError(f"duplicate article id {article.article_id!r}")
            self._articles[article.article_id] = article
        self._by_intent: dict[str, list[str]] = {}
        for article in self._articles.values():
            for intent in article.intents:
                self._by_intent.setdefault(intent, []).append(article.article_id)
        self._passages: list[_Indexed] = []
        doc_freq: Counter[str] = Counter()
        for article in self._articles.values():
            for n, paragraph in enumerate(article.paragraphs, start=1):
                tokens = tokenize(" ".join([article.title] * TITLE_WEIGHT + [paragraph]))
                freqs = Counter(tokens)
                doc_freq.update(freqs.keys())
                self._passages.append(
                    _Indexed(
                        passage_id=f"{article.article_id}#{n}",
                        article_id=article.article_id,
                        title=article.title,
                        text=paragraph,
                        term_freqs=freqs,
                        length=len(tokens),
                    )
                )
        self._article_terms = {
            article_id: frozenset(tokenize(article.title + " " + article.text))
            for article_id, article in self._articles.items()
        }
        count = len(self._passages)
        self._avg_length = sum(p.length for p in self._passages) / count if count else 0.0
        self._idf = {term: math.log(1 + (count - df + 0.5) / (df + 0.5)) for term, df in doc_freq.items()}
        norms = [K1 * (1 - B + B * p.length / self._avg_length) for p in self._passages]
        postings: dict[str, list[tuple[int, int]]] = {}
        for index, passage in enumerate(self._passages):
            for term, tf in passage.term_freqs.items():
                postings.setdefault(term, []).append((index, tf))
        self._postings: dict[str, _Postings] = {
            term: _Postings(np.array([index for index, _ in found], np.int64),
                            np.array([tf for _, tf in found], np.float64),
                            np.array([tf + norms[index] for index, tf in found], np.float64))
            for term, found in postings.items()}
        by_id = sorted(range(count), key=lambda index: self._passages[index].passage_id)
        self._id_rank = np.empty(count, np.int64)
        self._id_rank[by_id] = np.arange(count)
        weights = sorted(self._idf.values())
        self._unknown_weight = weights[len(weights) // 2] if weights else 0.0

    @classmethod
    def load(cls, directory: Path | None = None) -> KnowledgeBase:
        """Parse every ``*.md`` article; ``None`` means the articles packaged with this module."""
        files = _package_files() if directory is None else _directory_files(Path(directory))
        if not files:
            raise KnowledgeBaseError("no articles found")
        digest = hashlib.sha256()
        for name, raw in files:
            digest.update(name.encode("utf-8") + b"\0" + raw.encode("utf-8") + b"\0")
        articles = [parse_article(name, raw) for name, raw in files]
        return cls(articles, version="kb-" + digest.hexdigest()[:8])

    def search(self, query: str, k: int = 5) -> list[Passage]:
        """Top ``k`` passages by BM25; passages sharing no term with the query are never returned.

        Each query term adds its weight to the passages holding it (from the postings, as
        arrays: one numpy operation per term instead of a Python step per passage), in the
        query's order and with the scan's arithmetic, so every score is the one a scan of all
        passages computes, to the bit."""
        terms = Counter(tokenize(query))
        if k <= 0 or not terms or not self._passages:
            return []
        scores = np.zeros(len(self._passages))
        for term, query_count in terms.items():
            postings = self._postings.get(term)
            if postings is not None:
                scores[postings.passages] += (query_count * self._idf[term] * postings.tf
                                              * (K1 + 1) / postings.saturation)
        held = np.flatnonzero(scores > 0)
        best = held[np.lexsort((self._id_rank[held], -scores[held]))[:k]]
        return [
            Passage(p.passage_id, p.article_id, p.title, p.text, round(float(scores[index]), 6))
            for index in best.tolist() for p in (self._passages[index],)
        ]

    def term_weight(self, term: str) -> float:
        """IDF of an index term; a term the corpus never uses (a topic it does not cover, or a
        name or reference number) weighs as much as a typical term: the median IDF."""
        return self._idf.get(term, self._unknown_weight)

    def coverage(self, query: str, article_id: str) -> float:
        """Share of the query's term weight (IDF) that the article's title and text contain.

        A ticket the article really answers shares most of its rare words with it; an off-topic
        ticket that happens to match one word ("set an alarm" -> "set up auto top-up") does not.
        """
        terms = set(tokenize(query))
        article = self._articles.get(article_id)
        if not terms or article is None:
            return 0.0
        vocabulary = self._article_terms[article_id]
        total = sum(self.term_weight(t) for t in terms)
        return sum(self.term_weight(t) for t in terms if t in vocabulary) / total

    def articles_for_intent(self, intent: str) -> list[str]:
        """Ids of the articles that declare ``intent``, in file-name order."""
        return list(self._by_intent.get(intent, []))

    def article(self, article_id: str) -> Article | None:
        """The full article, for handlers that want to cite or show it."""
        return self._articles.get(article_id)

    def article_ids(self) -> list[str]:
        """All article ids, in file-name order."""
        return list(self._articles)
