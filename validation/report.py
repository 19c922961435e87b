"""Records of the validation report: one `Check` per measured paper statement."""

from __future__ import annotations

from dataclasses import dataclass, field

VERDICTS = ("pass", "fail", "n/a")


@dataclass(frozen=True)
class Check:
    """One measured statement of the paper.

    statement   the paper's statement, e.g. "Thm 2.13 (iii.a)"
    setting     the case it was measured on, e.g. "Gaussian flow, d = 2"
    measured    the measured quantity, formatted for a table
    theoretical the value or bound the paper predicts, formatted for a table
    verdict     "pass", "fail", or "n/a" (the statement does not apply)
    details     raw numbers for the JSON report
    """

    statement: str
    setting: str
    measured: str
    theoretical: str
    verdict: str
    details: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
