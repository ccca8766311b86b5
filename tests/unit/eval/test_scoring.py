"""EM: SQuAD normalisation, task extractors shared with the cascade, aliases."""

from __future__ import annotations

import pytest

from cascade.io.exact_match import exact_match, extract, normalize_answer


def test_squad_normalisation() -> None:
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("an Apple, a day") == "apple day"
    assert normalize_answer("  Dec. 1972 ") == "dec 1972"


@pytest.mark.parametrize(
    ("prediction", "answers", "task", "expected"),
    [
        ("So the total is 1,000 dollars. #### 1000", ["1000"], "number", True),
        ("She pays $18.00 in total.", "18", "number", True),
        ("The answer is 17", ["18"], "number", False),
        # a marked answer wins over numbers restated after it
        ("The answer is \\(\\boxed{6}\\). Joan has 6 kittens left after giving 2 away.", "6", "number", True),
        ("So, Carla started with \\(\\boxed{2189}\\) marbles, 11 fewer.", "2189", "number", True),
        ("Answer: 12.5, and the tip was 2", "12.5", "number", True),
        ("The answer is 9. Check: 9 - 5 = 4", "4", "number", False),
        ("Yes, it does.", ["yes"], "yesno", True),
        ("False", ["no"], "yesno", True),
        ("(B) because ...", ["B"], "choice", True),
        ("Answer: C", ["B"], "choice", False),
        ("The answer is: December 1972.", ["14 December 1972 UTC", "December 1972"], "first_line", True),
        ("the Beatles", ["Beatles"], "first_line", True),
        ("Paris\nBecause it is the capital.", ["paris"], "first_line", True),
        ("", ["paris"], "first_line", False),
        (None, ["paris"], "first_line", False),
        ("The Beatles!", ["beatles"], "text", True),
    ],
)
def test_exact_match(prediction: str | None, answers: list[str] | str, task: str, expected: bool) -> None:
    assert exact_match(prediction, answers, task) is expected


def test_choice_limited_to_the_offered_letters() -> None:
    assert extract("I do", "choice") == "I"
    assert extract("I do", "choice", letters=["A", "B"]) is None
    assert extract("B\n", "choice", letters=["A", "B"]) == "B"
