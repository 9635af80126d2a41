"""Every flag the analysis can raise has words for the page and the summaries, from one table."""

from __future__ import annotations

import importlib
import pkgutil
import re

import sibyls.saxs.analysis as analysis
from sibyls.saxs.analysis.flags import FLAG_WORDS, flag_words, flags_legend
from sibyls.saxs.analysis.summary import summary_html


def _raised_flags() -> dict[str, str]:
    """Every FLAG_* name any analysis module holds, with its value."""
    found = {}
    for module in pkgutil.iter_modules(analysis.__path__):
        loaded = importlib.import_module(f"{analysis.__name__}.{module.name}")
        for name, value in vars(loaded).items():
            if name.startswith("FLAG_") and isinstance(value, str):
                found[f"{module.name}.{name}"] = value
    return found


def test_every_flag_of_the_analysis_has_words():
    raised = _raised_flags()
    assert len(set(raised.values())) >= 15, raised
    missing = {name: value for name, value in raised.items() if value not in FLAG_WORDS}
    assert not missing, f"flags without words in sibyls.saxs.analysis.flags: {missing}"


def test_flag_words_are_sentences_not_keys():
    for flag, words in FLAG_WORDS.items():
        assert re.fullmatch(r"[a-z0-9-]+", flag), flag
        assert flag not in words.split(":")[0] or " " in words, (flag, words)
        assert len(words) > len(flag) and not re.search(r"\b\w+-\w+-\w+\b", words), (flag, words)


def test_a_runs_flags_in_words_and_an_unknown_flag_readable():
    words = flag_words(["damage", "not-one-species", "some-new-flag"])
    assert words["damage"].startswith("radiation damage")
    assert "species" in words["not-one-species"] and words["some-new-flag"] == "some new flag"
    assert flag_words([]) == {}


def test_summary_page_legend_lists_every_flag():
    html = summary_html([], "Plate P1")
    legend = flags_legend()
    for flag in FLAG_WORDS:
        assert f"{flag} (" in legend
    assert "mw-not-expected (MW differs" in html and "not-one-species (" in html
