"""The flags a first look may raise, each with what it tells a beamline user.

One table: the analysis raises these names, the summary pages list them, the page shows each in words
(the run view reads ``flag_words`` from ``/api/sibyls/runs/{uid}``).
"""

from __future__ import annotations

FLAG_DAMAGE = "damage"
FLAG_AGGREGATION = "aggregation"
FLAG_LOW_SIGNAL = "low-signal"
FLAG_FAILED_FIT = "failed-fit"
FLAG_FLEXIBLE = "flexible"
FLAG_NO_BUFFER = "no-buffer"
FLAG_FALLBACK_FIT = "fallback-fit"
FLAG_DAMAGED_BUFFER = "buffer-frames-differ"
FLAG_RG_NOT_FLAT = "rg-not-flat"
FLAG_RG_GUINIER_PR = "rg-guinier-pr-differ"
FLAG_MW_DISAGREE = "mw-methods-disagree"
FLAG_MW_NOT_EXPECTED = "mw-not-expected"
FLAG_NOT_ONE_SPECIES = "not-one-species"
FLAG_SERIES_REPULSION = "repulsion"
FLAG_SERIES_ATTRACTION = "attraction-or-aggregation"

#: Every flag and what it means, in the words the page and the summaries show.
FLAG_WORDS: dict[str, str] = {
    FLAG_DAMAGE: "radiation damage: later frames differ from the first and were left out",
    FLAG_AGGREGATION: "aggregation: the curve rises at the lowest q",
    FLAG_LOW_SIGNAL: "weak signal: I/σ over the Guinier range is low",
    FLAG_FAILED_FIT: "no Guinier fit could be made",
    FLAG_FLEXIBLE: "flexible or unfolded: the Kratky plot does not come back down",
    FLAG_NO_BUFFER: "no buffer subtracted",
    FLAG_FALLBACK_FIT: "autoRg found no range; the project's own Guinier fit was used",
    FLAG_DAMAGED_BUFFER: "the buffer's frames differ from each other (check the buffer)",
    FLAG_RG_NOT_FLAT: "Rg drifts across the peak or the Guinier range",
    FLAG_RG_GUINIER_PR: "Guinier and P(r) Rg differ beyond their errors (elongated shape, "
    "aggregation, repulsion, or a Guinier range too long for this shape)",
    FLAG_MW_DISAGREE: "the MW methods disagree beyond their stated accuracy",
    FLAG_MW_NOT_EXPECTED: "MW differs from the expected MW given with the sample (oligomer, mixture "
    "or wrong concentration?)",
    FLAG_NOT_ONE_SPECIES: "more than one species under the peak (SVD/EFA)",
    FLAG_SERIES_REPULSION: "concentration series: Rg falls with concentration (repulsion); use the "
    "zero-concentration values",
    FLAG_SERIES_ATTRACTION: "concentration series: Rg or I(0)/c rise with concentration (attraction "
    "or aggregation)",
}


def flag_words(flags: list[str] | tuple[str, ...]) -> dict[str, str]:
    """What each of a run's flags means in words (an unknown flag reads as itself)."""
    return {flag: FLAG_WORDS.get(flag, flag.replace("-", " ")) for flag in flags}


def flags_legend() -> str:
    """All flags as 'name (words)', for a summary page's legend."""
    return "; ".join(f"{flag} ({words})" for flag, words in FLAG_WORDS.items())
