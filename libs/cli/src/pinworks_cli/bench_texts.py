"""The texts of `pinworks bench`'s tickets: short queries, one- or two-sentence tickets and
multi-sentence ones, in the same mix in every run (the classifier's second stage and the
verifier's checks cost differently on each kind)."""

from __future__ import annotations

SHORT = "short"
SENTENCES = "sentences"
MULTI = "multi-sentence"

SHORT_QUERIES: tuple[tuple[str, str], ...] = (
    ("", "card not arrived yet"),
    ("", "how do I reset my PIN?"),
    ("", "cancel my transfer"),
    ("", "top up failed"),
    ("", "what's the exchange rate today"),
    ("", "fee for cash withdrawal?"),
    ("", "my card got declined"),
    ("", "change my address"),
)

ONE_OR_TWO_SENTENCES: tuple[tuple[str, str], ...] = ((
        "Card declined abroad",
        "My debit card was declined at a shop in Lisbon this morning even "
        "though I have money in my account. Can you check what is going on?",
    ),
    (
        "Charged twice",
        "I was charged twice for the same grocery purchase of 54.20 on Monday. "
        "Please refund the duplicate payment.",
    ),
    (
        "Lost card",
        "I think I lost my credit card on the train yesterday. Please block it and send me a replacement.",
    ),
    (
        "Mortgage question",
        "What documents do I need to apply for a mortgage top-up, and how long "
        "does the approval usually take?",
    ),
    (
        "Transfer not arrived",
        "I sent 1,200 to my landlord three days ago and he says it has not "
        "arrived. The reference was RENT-MAY.",
    ),
    (
        "Overdraft fee",
        "Why was I charged an overdraft fee of 25 when my salary landed the same "
        "day? I'd like this fee reversed.",
    ),
    (
        "Change address",
        "I moved house last week. How do I update my postal address for statements?",
    ),
    (
        "Suspicious login",
        "I got a text about a login from a device I don't recognise. I did not log in. Is my account safe?",
    ),
    (
        "Interest rate",
        "What is the current interest rate on the easy-access savings account, and is it variable?",
    ),
    (
        "Standing order",
        "Please cancel the standing order to Greenfield Gym, I ended that membership.",
    ),
    (
        "Statement request",
        "Could you send me my statements for January to March as PDFs for my tax return?",
    ),
    (
        "Complaint",
        "This is the third time I'm writing about the ATM that kept my card. Nobody has "
        "called me back. I want to speak to a manager.",
    ),
    (
        "Card and top-up",
        "How long does a new card take to arrive? And can I top up my account by bank "
        "transfer while I wait?",
    ),
    (
        "Fees abroad",
        "Do you charge a fee when I pay by card in another currency? Is there also a fee for "
        "taking cash out of an ATM abroad?",
    ),
    (
        "Something missing",
        "the thing I was sent hasn't shown up",
    ),
)

MULTI_SENTENCE: tuple[tuple[str, str], ...] = (
    (
        "Card still missing",
        "I ordered a replacement card two weeks ago after my old one expired. The app says it "
        "was dispatched on the 3rd but nothing has come in the post. I have checked with my "
        "neighbours and the building's mailroom. Could you tell me whether it was sent to the "
        "right address and when I can expect it?",
    ),
    (
        "Refund not showing",
        "Last Tuesday I returned a pair of shoes to an online shop and they confirmed the refund "
        "the same day. It is now eight days later and the money is still not in my account. The "
        "shop says the refund has left their side. How long do refunds usually take to appear, "
        "and is there anything you can see on your end?",
    ),
    (
        "Transfer on hold",
        "I tried to send money to my sister in Spain yesterday evening. The transfer shows as "
        "pending and the amount has already left my balance. I have sent money to her before "
        "without any problem. Why is it taking so long this time, and will it go through today?",
    ),
    (
        "Exchange rate charged",
        "I paid for a hotel in Prague in euros with my card. The amount charged in pounds is a "
        "lot higher than I expected from the rate I saw online that day. I would like to "
        "understand which exchange rate you used. Was there an extra fee added on top?",
    ),
    (
        "Top-up by card",
        "I tried to top up my account with my other bank's debit card three times this morning. "
        "Each attempt said it failed, but I can see two pending payments on the other account. "
        "I am worried I will be charged twice. What happened, and will those pending payments "
        "disappear?",
    ),
    (
        "Cash machine problem",
        "I took 100 out of a cash machine at the station on Saturday. The machine made a noise "
        "and gave me nothing, but my account shows the withdrawal. I still have the receipt it "
        "printed. Please can you look into it and put the money back?",
    ),
)


def kind_of(n: int) -> str:
    """The kind of the `n`-th ticket's text (see `text_of`)."""
    return ((SHORT, SHORT_QUERIES), (SENTENCES, ONE_OR_TWO_SENTENCES), (MULTI, MULTI_SENTENCE)
            )[n % 3][0]


def text_of(n: int) -> tuple[str, str]:
    """(subject, body) of the `n`-th ticket: the three kinds take turns, each cycling through
    its own texts, so every stretch of a run has the same mix."""
    texts = (SHORT_QUERIES, ONE_OR_TWO_SENTENCES, MULTI_SENTENCE)[n % 3]
    return texts[(n // 3) % len(texts)]
