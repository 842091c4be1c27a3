"""Tests for the help-centre articles and the BM25 index over them."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from pinworks_specialists.kb import KnowledgeBase, KnowledgeBaseError, Passage
from pinworks_specialists.kb.index import K1, B
from pinworks_specialists.kb.text import stem, tokenize
from pinworks_specialists.templating import INTENTS

ARTICLES = Path(__file__).parents[1] / "src/pinworks_specialists/kb/articles"


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.load()


def _write(directory: Path, name: str, front: str, body: str) -> None:
    (directory / name).write_text(f"---\n{front}\n---\n{body}\n", encoding="utf-8")


def test_packaged_articles_load(kb: KnowledgeBase) -> None:
    assert len(kb.article_ids()) >= 40
    assert re.fullmatch(r"kb-[0-9a-f]{8}", kb.version)
    assert KnowledgeBase.load(ARTICLES).version == kb.version


@pytest.mark.parametrize("intent", INTENTS)
def test_every_intent_has_an_article(kb: KnowledgeBase, intent: str) -> None:
    article_ids = kb.articles_for_intent(intent)
    assert article_ids, f"no article covers {intent}"
    assert all(kb.article(a) is not None for a in article_ids)


def test_unknown_intent_has_no_articles(kb: KnowledgeBase) -> None:
    assert kb.articles_for_intent("order_pizza") == []


@pytest.mark.parametrize("article_id", sorted(p.stem for p in ARTICLES.glob("*.md")))
def test_article_shape(kb: KnowledgeBase, article_id: str) -> None:
    article = kb.article(article_id)
    assert article is not None
    words = len(article.text.split())
    assert 150 <= words <= 400, f"{article_id}: {words} words"
    assert len(article.paragraphs) >= 3
    assert "{" not in article.text and "TODO" not in article.text


@pytest.mark.parametrize(
    ("query", "article_id"),
    [
        ("The cash machine swallowed my card and never gave it back", "card-retained-by-atm"),
        ("where can I see the PIN for my new card", "find-your-pin"),
        ("I sent money to the wrong person, can I undo it?", "cancel-a-transfer"),
        ("my phone was nicked on the bus, what do I do about the app", "lost-or-stolen-phone"),
        ("can my 12 year old kid get a card", "larkspur-junior"),
        ("I got married and need to change my surname", "update-personal-details"),
        ("the ATM only gave me half the cash I asked for", "wrong-amount-of-cash"),
        ("a direct debit I never set up took money from me", "direct-debits"),
        ("how do I make a one time card for shopping online", "disposable-cards"),
        ("I want to shut my account down for good", "close-your-account"),
        ("do you open accounts for people living in the United States", "who-can-open-an-account"),
        ("where is the verification code for adding my debit card", "verify-top-up-card"),
        ("my contactless stopped working at the supermarket", "contactless-payments"),
        ("is the exchange rate worse if I swap currency on a Saturday", "exchange-rates"),
    ],
)
def test_search_finds_the_right_article(kb: KnowledgeBase, query: str, article_id: str) -> None:
    top = [p.article_id for p in kb.search(query, k=2)]
    assert article_id in top, f"{query!r} -> {top}"


def test_search_results_are_ranked_passages(kb: KnowledgeBase) -> None:
    results = kb.search("why was my card payment declined", k=5)
    assert 0 < len(results) <= 5
    assert all(isinstance(p, Passage) for p in results)
    scores = [p.score for p in results]
    assert scores == sorted(scores, reverse=True)
    for passage in results:
        article_id, n = passage.passage_id.split("#")
        assert article_id == passage.article_id
        article = kb.article(article_id)
        assert article is not None
        assert article.paragraphs[int(n) - 1] == passage.text
        assert passage.title == article.title


def _scanned(kb: KnowledgeBase, query: str, k: int) -> list[tuple[str, float]]:
    """BM25 computed over every passage, the way the index scored before it had postings."""
    terms = Counter(tokenize(query))
    scored = []
    for passage in kb._passages:
        score, norm = 0.0, K1 * (1 - B + B * passage.length / kb._avg_length)
        for term, query_count in terms.items():
            tf = passage.term_freqs.get(term)
            if tf:
                score += query_count * kb._idf[term] * tf * (K1 + 1) / (tf + norm)
        if score > 0:
            scored.append((score, passage.passage_id))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [(passage_id, round(score, 6)) for score, passage_id in scored[:k]]


def test_search_scores_as_a_scan_of_every_passage(kb: KnowledgeBase) -> None:
    calibration = yaml.safe_load((Path(__file__).parent / "data/kb_calibration.yaml").read_text())
    queries = [text for text in _strings(calibration) if len(text) > 8]
    assert len(queries) > 50
    repeated = [f"{query} {query}" for query in queries[:20]]  # query counts of 2
    for query in queries + repeated:
        for k in (5, 10, 1000):
            assert [(p.passage_id, p.score) for p in kb.search(query, k)] == _scanned(kb, query, k)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [text for item in value for text in _strings(item)] if isinstance(value, list) else []


def test_gibberish_scores_low(kb: KnowledgeBase) -> None:
    real = kb.search("my card was declined at a shop", k=1)
    assert real and real[0].score > 3.0
    for query in ("xqzv blorf wuggle", "the and of to", "", "!!! ???"):
        results = kb.search(query, k=5)
        assert all(p.score < 1.0 for p in results), query


def test_search_k_bounds(kb: KnowledgeBase) -> None:
    assert kb.search("card", k=0) == []
    assert len(kb.search("card", k=3)) == 3


def test_tokenizer_folds_inflections_and_synonyms() -> None:
    assert stem("declined") == stem("declines") == stem("decline")
    assert stem("verification") == stem("verify") == stem("verified")
    assert tokenize("Top-ups") == tokenize("top up")
    assert tokenize("cash machine") == tokenize("ATMs") == ["atm"]
    assert tokenize("I withdrew cash") == tokenize("cash withdrawal")[::-1]
    assert tokenize("please help me with the") == []


def test_version_tracks_content(tmp_path: Path) -> None:
    body = "First paragraph about cards.\n\nSecond paragraph about PINs."
    _write(tmp_path, "a.md", "id: a\ntitle: A\nintents: [change_pin]", body)
    first = KnowledgeBase.load(tmp_path).version
    _write(tmp_path, "a.md", "id: a\ntitle: A\nintents: [change_pin]", body + " More.")
    assert KnowledgeBase.load(tmp_path).version != first


def test_paragraphs_become_passages(tmp_path: Path) -> None:
    body = "## Fees\n\nWithdrawals cost two percent.\n\nDeposits are free."
    _write(tmp_path, "fees.md", "id: fees\ntitle: Fees\nintents: [cash_withdrawal_charge]", body)
    kb = KnowledgeBase.load(tmp_path)
    article = kb.article("fees")
    assert article is not None
    assert article.paragraphs == ("Fees: Withdrawals cost two percent.", "Deposits are free.")
    assert kb.search("deposits", k=1)[0].passage_id == "fees#2"


@pytest.mark.parametrize(
    ("name", "front", "message"),
    [
        ("x.md", "id: x\ntitle: X\nintents: [not_an_intent]", r"x\.md: unknown intent"),
        ("x.md", "id: y\ntitle: X\nintents: [change_pin]", r"x\.md: id 'y' must match"),
        ("x.md", "id: x\nintents: [change_pin]", r"x\.md: 'title'"),
        ("x.md", "id: x\ntitle: X\nintents: []", r"x\.md: 'intents'"),
        ("x.md", "id: x\ntitle: X\nintents: [change_pin", r"x\.md: front matter is not valid"),
    ],
)
def test_bad_articles_are_named(tmp_path: Path, name: str, front: str, message: str) -> None:
    _write(tmp_path, name, front, "Some text.")
    with pytest.raises(KnowledgeBaseError, match=message):
        KnowledgeBase.load(tmp_path)


def test_missing_front_matter_is_named(tmp_path: Path) -> None:
    (tmp_path / "plain.md").write_text("Just text.\n", encoding="utf-8")
    with pytest.raises(KnowledgeBaseError, match=r"plain\.md: missing"):
        KnowledgeBase.load(tmp_path)


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeBaseError, match="no articles"):
        KnowledgeBase.load(tmp_path)
