"""TF-IDF featurizer (word + char n-grams) implemented with numpy only.

Written by hand rather than using scikit-learn's vectorizers so that the exact same code
runs at training and at inference, and the shipped artifact needs no scikit-learn to load.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

# Currency and percent signs are informative; "?" and "!" are not used: nearly every BANKING77
# query ends with "?" while CLINC150 has no punctuation, so they would only learn the dataset.
_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[£$€%]")
_SPACE_RE = re.compile(r"\s+")
_CHAR_CACHE_MAX = 200_000


def normalize(text: str) -> str:
    """Lower-case, strip accents and unify quotes so that trivial spelling variants match."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    return _SPACE_RE.sub(" ", text.lower()).strip()


def word_tokens(norm: str) -> list[str]:
    """Word tokens of a normalized text (keeps single letters, digits and a few symbols)."""
    return _WORD_RE.findall(norm)


def word_ngrams(tokens: Sequence[str], n_max: int) -> list[str]:
    """Word n-grams 1..n_max, joined by a space."""
    grams = list(tokens)
    for n in range(2, n_max + 1):
        grams.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return grams


def char_wb_ngrams(tokens: Sequence[str], n_min: int, n_max: int) -> list[str]:
    """Character n-grams inside word boundaries (each word padded with spaces)."""
    grams: list[str] = []
    for tok in tokens:
        w = f" {tok} "
        length = len(w)
        for n in range(n_min, n_max + 1):
            if n > length:
                break
            grams.extend(w[i : i + n] for i in range(length - n + 1))
    return grams


@dataclass
class FeatureConfig:
    """Hyper-parameters of the featurizer; stored in the artifact manifest."""

    word_max_n: int = 2
    char_min_n: int = 2
    char_max_n: int = 5
    min_df_word: int = 1
    min_df_char: int = 2
    word_weight: float = 1.0
    char_weight: float = 1.0


@dataclass
class Featurizer:
    """Two TF-IDF blocks (words, char_wb) each L2-normalized, then weighted and concatenated."""

    config: FeatureConfig
    word_vocab: dict[str, int] = field(default_factory=dict)
    char_vocab: dict[str, int] = field(default_factory=dict)
    word_idf: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    char_idf: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    # token -> its char n-gram column ids; tickets reuse a small vocabulary, so this
    # removes most of the per-text n-gram work at inference.
    _char_cache: dict[str, list[int]] = field(default_factory=dict, init=False, repr=False)

    @property
    def n_features(self) -> int:
        return len(self.word_vocab) + len(self.char_vocab)

    def _grams(self, text: str) -> tuple[list[str], list[str]]:
        tokens = word_tokens(normalize(text))
        c = self.config
        return word_ngrams(tokens, c.word_max_n), char_wb_ngrams(tokens, c.char_min_n, c.char_max_n)

    def fit(self, texts: Iterable[str]) -> Featurizer:
        """Learn vocabularies and smoothed IDF (as scikit-learn's smooth_idf) from texts."""
        wdf: Counter[str] = Counter()
        cdf: Counter[str] = Counter()
        n_docs = 0
        for t in texts:
            w, ch = self._grams(t)
            wdf.update(set(w))
            cdf.update(set(ch))
            n_docs += 1
        self.word_vocab, self.word_idf = _vocab_idf(wdf, self.config.min_df_word, n_docs)
        self.char_vocab, self.char_idf = _vocab_idf(cdf, self.config.min_df_char, n_docs)
        self._char_cache = {}
        return self

    def _idf_of(self, col: np.ndarray, offset: int) -> np.ndarray:
        """IDF of the given columns without concatenating the two full IDF vectors."""
        is_char = col >= offset
        return np.where(
            is_char,
            self.char_idf[np.where(is_char, col - offset, 0)],
            self.word_idf[np.where(is_char, 0, col)],
        )

    def _char_ids(self, token: str, offset: int) -> list[int]:
        ids = self._char_cache.get(token)
        if ids is None:
            c = self.config
            grams = char_wb_ngrams([token], c.char_min_n, c.char_max_n)
            ids = [i + offset for i in map(self.char_vocab.get, grams) if i is not None]
            if len(self._char_cache) >= _CHAR_CACHE_MAX:
                self._char_cache.clear()
            self._char_cache[token] = ids
        return ids

    def transform(self, texts: Sequence[str]) -> SparseRows:
        """Sparse rows (CSR) of the TF-IDF features; counting and weighting are vectorized
        over the whole batch because per-text numpy calls dominate latency otherwise."""
        offset = len(self.word_vocab)
        wv = self.word_vocab
        n_max = self.config.word_max_n
        counts: list[int] = []
        ids: list[int] = []
        tfs: list[int] = []
        for t in texts:
            tokens = word_tokens(normalize(t))
            found = Counter(i for i in map(wv.get, word_ngrams(tokens, n_max)) if i is not None)
            for tok in tokens:
                found.update(self._char_ids(tok, offset))
            ids.extend(found.keys())
            tfs.extend(found.values())
            counts.append(len(found))
        n_rows = len(texts)
        indptr = np.zeros(n_rows + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        if not ids:
            return SparseRows(indptr, np.zeros(0, np.int64), np.zeros(0, np.float32), self.n_features)
        col = np.asarray(ids, dtype=np.int64)
        row = np.repeat(np.arange(n_rows), counts)
        tf = np.asarray(tfs, dtype=np.float32)
        idf = np.concatenate([self.word_idf, self.char_idf]) if n_rows > 64 else None
        val = (1.0 + np.log(tf)) * (idf[col] if idf is not None else self._idf_of(col, offset))
        is_char = col >= offset
        block = row * 2 + is_char
        norms = np.sqrt(np.bincount(block, weights=val * val, minlength=2 * n_rows))
        weight = np.where(is_char, self.config.char_weight, self.config.word_weight)
        val = val * weight / norms[block]
        return SparseRows(indptr, col, val.astype(np.float32), self.n_features)


@dataclass
class SparseRows:
    """Minimal CSR container so inference needs neither scipy nor scikit-learn."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    n_cols: int

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    def dot(self, weights: np.ndarray) -> np.ndarray:
        """Rows times a dense (n_cols, k) matrix, via gather + segment sums (weights should
        be C-contiguous: each gathered row is then one cache-friendly read)."""
        k = weights.shape[1]
        out = np.zeros((self.n_rows, k), dtype=np.float32)
        if len(self.indices) == 0:
            return out
        contrib = weights[self.indices] * self.values[:, None]
        nonempty = self.indptr[1:] > self.indptr[:-1]
        out[nonempty] = np.add.reduceat(contrib, self.indptr[:-1][nonempty], axis=0)
        return out


def _vocab_idf(df: Counter[str], min_df: int, n_docs: int) -> tuple[dict[str, int], np.ndarray]:
    terms = sorted(t for t, c in df.items() if c >= min_df)
    vocab = {t: i for i, t in enumerate(terms)}
    counts = np.array([df[t] for t in terms], dtype=np.float64)
    idf = np.log((1.0 + n_docs) / (1.0 + counts)) + 1.0
    return vocab, idf.astype(np.float32)
