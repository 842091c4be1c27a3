"""Writes the name gazetteer that pinworks_common.personal_data ships (first names, surnames).

The lists come from Faker's person providers of the locales below, read once here and committed,
so the detector needs neither Faker nor any download at run time. The evaluation set
(tools/personal_data/build_eval_set.py) also draws names from locales that are NOT listed here,
so its report shows how names outside the gazetteer fare.

    .venv/bin/python tools/personal_data/build_gazetteer.py
"""

from __future__ import annotations

import importlib
import unicodedata
from pathlib import Path

GAZETTEER_LOCALES = ("en_GB", "en_US", "en_IE", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_PT",
                     "pl_PL", "tr_TR")
OUT = Path(__file__).resolve().parents[2] / "libs/common/src/pinworks_common/personal_data/data"


def _latin(name: str) -> bool:
    return all(unicodedata.name(c, "").startswith("LATIN") or c in "-'" for c in name)


def collect() -> tuple[set[str], set[str]]:
    first: set[str] = set()
    last: set[str] = set()
    for locale in GAZETTEER_LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        for attr in ("first_names", "first_names_male", "first_names_female"):
            first.update(getattr(provider, attr, ()))
        last.update(getattr(provider, "last_names", ()))
    keep = lambda names: {n for n in names if len(n) > 1 and _latin(n) and " " not in n}  # noqa: E731
    return keep(first), keep(last)


def main() -> None:
    first, last = collect()
    OUT.mkdir(parents=True, exist_ok=True)
    header = f"# from Faker's person providers: {', '.join(GAZETTEER_LOCALES)} (build_gazetteer.py)\n"
    (OUT / "first_names.txt").write_text(header + "\n".join(sorted(first)) + "\n", encoding="utf-8")
    (OUT / "surnames.txt").write_text(header + "\n".join(sorted(last)) + "\n", encoding="utf-8")
    print(f"{len(first)} first names, {len(last)} surnames -> {OUT}")


if __name__ == "__main__":
    main()
