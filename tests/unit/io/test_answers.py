"""Reading the conclusion out of a reasoning tier's text (`answer: {format: final}`)."""

from __future__ import annotations

import pytest

from cascade.config.schema import AnswerConfig
from cascade.io.answers import extractor, final


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("21 - 3 = 18.\n\nThe answer is \\(\\boxed{18}\\).", "18"),
        ("Step 1: 9.8 - 5.2 = 4.6\nThe answer is 4.6. Pamela spilled 5.2 ounces.", "4.6"),
        ("It praises the film.\n**Answer:** positive", "positive"),
        ("The answer is \\boxed{\\text{negative}}.", "negative"),
        ("Maybe the answer is 3? No.\nThe answer is 5.", "5"),  # the last marker wins
        ("So, Carla started with \\(\\boxed{2189}\\) marbles.", "2189"),  # no marker: the last box
        ("Rome is in Italy.\nParis\n", "Paris"),  # neither: the last line
        ("The answer is: December 1972.", "December 1972"),
        ("", None),
        ("The answer is **.", None),
        # no marker, no box: what a closing sentence about the question states
        ("The review praises the cast.\nThe sentiment of this review is negative.", "negative"),
        ("Therefore, the overall sentiment of the review is **positive**, as it praises the cast.", "positive"),
        ("So the total cost is $1,250.50.", "1,250.50"),
        ("Thus, it is 3.12 pounds heavier.", "3.12 pounds heavier"),
        ("Paris is the capital of France.", "Paris is the capital of France"),  # a claim, not a closing
        ("The capital is Lima; Peru borders Chile.", "Lima"),
    ],
)
def test_final_reads_the_conclusion(text: str, expected: str | None) -> None:
    assert final(text) == expected


def test_final_is_a_tier_answer_format() -> None:
    read = extractor(AnswerConfig(format="final"))
    assert read("17 * 3 = 51, 17 + 51 = 68.\nThe answer is 68.") == "68"
