"""Input rules shared by every entry point: ids, quantities and free text."""

from __future__ import annotations

import pytest

from stockguard import InvalidInput, StockguardError
from stockguard.domain.validation import MAX_ID_LENGTH, MAX_QUANTITY, check_id, check_quantity, check_text


@pytest.mark.parametrize(
    "value",
    ["a", "maotai-500ml", "order_1.2:3", "A-Z.a-z_0-9:x", "x" * MAX_ID_LENGTH, "0", "-", "..."],
)
def test_ids_of_1_to_64_allowed_characters_are_accepted(value: str) -> None:
    assert check_id(value, "sku") == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "x" * (MAX_ID_LENGTH + 1),
        "has space",
        " leading",
        "trailing\n",
        "slash/ed",
        "back\\slash",
        "semi;colon",
        "quote'd",
        "per%cent",
        "caf\u00e9",  # a letter, but not ASCII
        "\u0661\u0662",  # Arabic-Indic digits
        "tab\t",
        "nul\x00",
    ],
)
def test_ids_with_bad_characters_or_length_are_refused(value: str) -> None:
    with pytest.raises(InvalidInput, match="order_id"):
        check_id(value, "order_id")


@pytest.mark.parametrize("value", [None, 1, 1.0, True, b"bytes", ["a"]])
def test_ids_that_are_not_strings_are_refused(value: object) -> None:
    with pytest.raises(InvalidInput):
        check_id(value, "sku")


@pytest.mark.parametrize("value", [1, 2, 999, MAX_QUANTITY])
def test_quantities_from_1_to_a_billion_are_accepted(value: int) -> None:
    assert check_quantity(value, "quantity") == value


@pytest.mark.parametrize(
    "value",
    [0, -1, -MAX_QUANTITY, MAX_QUANTITY + 1, 10**30],
)
def test_quantities_out_of_range_are_refused(value: int) -> None:
    with pytest.raises(InvalidInput, match="quantity must be between 1 and 1,000,000,000"):
        check_quantity(value, "quantity")


@pytest.mark.parametrize("value", [True, False, 1.0, 1.5, float("nan"), "1", None, [1]])
def test_quantities_that_are_not_plain_integers_are_refused(value: object) -> None:
    with pytest.raises(InvalidInput, match="quantity must be an integer"):
        check_quantity(value, "quantity")


def test_a_minimum_of_zero_accepts_zero_but_not_less() -> None:
    assert check_quantity(0, "safety", minimum=0) == 0
    with pytest.raises(InvalidInput):
        check_quantity(-1, "safety", minimum=0)
    with pytest.raises(InvalidInput):
        check_quantity(MAX_QUANTITY + 1, "safety", minimum=0)


@pytest.mark.parametrize("value", ["Maotai 500 ml", "x", "y" * 200, "  padded  "])
def test_non_blank_text_up_to_200_characters_is_accepted(value: str) -> None:
    assert check_text(value, "title") == value


@pytest.mark.parametrize("value", ["", "   ", "\n\t", "y" * 201, None, 3])
def test_blank_long_or_non_string_text_is_refused(value: object) -> None:
    with pytest.raises(InvalidInput, match="title"):
        check_text(value, "title")


def test_invalid_input_is_a_stockguard_error_with_its_code_and_errors() -> None:
    with pytest.raises(StockguardError) as caught:
        check_quantity(0, "quantity")
    error = caught.value
    assert isinstance(error, InvalidInput)
    assert error.code == "invalid"
    assert error.errors == [error.detail]
