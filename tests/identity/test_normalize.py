"""Identifier normalisation: canonical values, blocked placeholders and precise refusals."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from app.identity.normalize import (
    Identifier,
    IdentitySettings,
    InvalidIdentifier,
    normalize_address,
    normalize_identifier,
    normalize_name,
    normalize_postcode,
)

US = IdentitySettings()
GB = IdentitySettings(default_region="GB")


def value(type: str, raw: object, settings: IdentitySettings = US) -> str | None:
    identifier = normalize_identifier(type, raw, settings)
    return None if identifier is None else identifier.value


# --- settings ------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    s = IdentitySettings()
    assert s.default_region == "US"
    assert s.priority == ("user_id", "email", "phone", "anonymous_id")
    assert (s.limit_for("user_id"), s.limit_for("email"), s.limit_for("phone")) == (1, 5, 5)
    assert s.limit_for("anonymous_id") == 100
    assert s.limit_for("crm_id") == 10
    assert s.rank("user_id") < s.rank("email") < s.rank("phone") < s.rank("anonymous_id") < s.rank("crm_id")
    for placeholder in ("", "null", "undefined", "nan", "0", "-1", "test@test.com", "n/a", "na"):
        assert placeholder in s.blocked_values


def test_settings_are_immutable_and_normalise_their_inputs() -> None:
    s = IdentitySettings(default_region="gb", blocked_values=frozenset({" ACME "}), limits={"email": 2})
    assert s.default_region == "GB"
    assert s.is_blocked("acme") and s.is_blocked(" Acme")
    assert s.limit_for("email") == 2 and s.limit_for("user_id") == 10
    with pytest.raises(TypeError):
        s.limits["email"] = 3  # type: ignore[index]
    with pytest.raises(ValueError):
        IdentitySettings(limits={"email": 0})


# --- e-mail --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("john.smith@example.com", "john.smith@example.com"),
        ("  John.Smith@Example.COM \t", "john.smith@example.com"),  # trimmed, local part lower-cased too
        ("JOHN+NEWS@EXAMPLE.CO.UK", "john+news@example.co.uk"),  # plus-tags are kept: a different box
        ("josé@exämple.com", "josé@exämple.com"),
    ],
)
def test_email_is_trimmed_and_lower_cased(raw: str, expected: str) -> None:
    identifier = normalize_identifier("email", raw, US)
    assert identifier == Identifier(type="email", value=expected, raw=raw)  # raw kept as sent


@pytest.mark.parametrize(
    "raw",
    [
        "john",
        "john@",
        "@example.com",
        "john@example",
        "john smith@example.com",
        "john@@example.com",
        ".john@example.com",
        "John <john@example.com>",
    ],
)
def test_invalid_email_is_rejected_with_a_reason(raw: str) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        normalize_identifier("email", raw, US)
    err = info.value
    assert (err.type, err.raw) == ("email", raw)
    assert err.reason
    assert str(err).startswith(f"invalid email identifier {raw!r}: ")
    assert isinstance(err, ValueError)


# --- phone ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["020 7946 0018", "(020) 7946-0018", "+44 20 7946 0018", "+44 (0)20 7946 0018", "0044 20 7946 0018", "+442079460018"],
)
def test_gb_phone_formats_give_one_e164(raw: str) -> None:
    assert value("phone", raw, GB) == "+442079460018"


@pytest.mark.parametrize(
    "raw",
    ["(415) 555-2671", "415.555.2671", "415-555-2671", "1-415-555-2671", "+1 415 555 2671", 4155552671],
)
def test_us_phone_formats_give_one_e164(raw: object) -> None:
    assert value("phone", raw, US) == "+14155552671"


def test_default_region_only_applies_to_national_numbers() -> None:
    assert value("phone", "+1 (415) 555-2671", GB) == "+14155552671"
    assert value("phone", "+44 7911 123456", US) == "+447911123456"
    with pytest.raises(InvalidIdentifier, match="default region US"):
        normalize_identifier("phone", "020 7946 0018", US)  # a GB national number read as US


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("12345", "impossible"),
        ("555-0100", "local number without area code"),
        ("+1 555 555 5555", "no such phone number range"),
        ("+44 20 7946 001", "no such phone number range"),
        ("+1 415 555 2671 999 999", "impossible"),
        ("hello", "not a phone number"),
    ],
)
def test_invalid_phone_is_rejected(raw: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier, match=reason) as info:
        normalize_identifier("phone", raw, US)
    assert info.value.type == "phone"


# --- blocked values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type", "raw"),
    [
        ("email", "test@test.com"),
        ("email", " TEST@Test.com "),  # blocked after normalisation
        ("email", "test@example.com"),
        ("email", " NULL "),
        ("email", "undefined"),
        ("email", "n/a"),
        ("phone", "N/A"),
        ("phone", "0"),
        ("user_id", " NULL "),
        ("user_id", "None"),
        ("user_id", ""),
        ("user_id", "   "),
        ("user_id", "-1"),
        ("user_id", 0),
        ("user_id", -1),
        ("user_id", math.nan),
        ("user_id", None),
        ("anonymous_id", "anonymous"),
        ("crm_id", "Unknown"),
    ],
)
def test_placeholders_are_absent_not_errors(type: str, raw: object) -> None:
    assert normalize_identifier(type, raw, US) is None


def test_blocked_values_are_configurable() -> None:
    settings = IdentitySettings(blocked_values=frozenset({"guest"}))
    assert normalize_identifier("user_id", "GUEST", settings) is None
    assert value("user_id", "null", settings) == "null"  # replaced, not merged with the defaults


# --- opaque ids (user_id, anonymous_id, custom) -----------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (12, "12"),
        (12.0, "12"),  # ids that went through a JS/pandas float
        (Decimal("12.00"), "12"),
        (12.5, "12.5"),
        (10**20, "100000000000000000000"),
        ("  42 ", "42"),
        ("AbC-123", "AbC-123"),  # case preserved: opaque ids may be case-sensitive
        ("ünïcode id", "ünïcode id"),
    ],
)
def test_user_ids_are_stringified_and_trimmed(raw: object, expected: str) -> None:
    assert value("user_id", raw) == expected


def test_raw_keeps_what_was_sent() -> None:
    identifier = normalize_identifier("user_id", 12.0, US)
    assert identifier == Identifier("user_id", "12", "12.0")


@pytest.mark.parametrize("type", ["anonymous_id", "external_id", "crm_id", "shopify_id", "x", "a" * 64])
def test_custom_types_are_accepted(type: str) -> None:
    assert value(type, " abc ") == "abc"


@pytest.mark.parametrize("type", ["Email", "user-id", "1st_id", "_id", "", "a" * 65, "crm id", "ümlaut", None, 3])
def test_bad_type_names_are_rejected(type: object) -> None:
    with pytest.raises(InvalidIdentifier, match=r"type must match"):
        normalize_identifier(type, "abc", US)  # type: ignore[arg-type]


def test_length_limit() -> None:
    assert value("user_id", "a" * 255) == "a" * 255
    assert value("user_id", " " + "a" * 255 + " ") == "a" * 255  # measured after trimming
    with pytest.raises(InvalidIdentifier, match="longer than 255 characters") as info:
        normalize_identifier("user_id", "a" * 10_000, US)
    assert len(str(info.value)) < 200  # the message stays readable


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("abc\x00def", "control character U\\+0000"),
        ("abc\ndef", "control character U\\+000A"),
        (True, "booleans"),
        (math.inf, "not finite"),
        ({"id": 1}, "expected a string or a number, got dict"),
    ],
)
def test_unusable_opaque_ids(raw: object, reason: str) -> None:
    with pytest.raises(InvalidIdentifier, match=reason):
        normalize_identifier("user_id", raw, US)


# --- comparison keys for de-duplication ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  José  GARCÍA ", "jose garcia"),
        ("O'Brien", "obrien"),
        ("Mary-Jane", "mary jane"),
        ("Søren Ørsted", "soren orsted"),
        ("Łukasz", "lukasz"),
        ("STRAßE", "strasse"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize_name(raw: str | None, expected: str) -> None:
    assert normalize_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("sw1a 1aa", "SW1A1AA"), (" SW1A-1AA ", "SW1A1AA"), ("94105-1234", "94105"), ("94105", "94105"), (None, "")],
)
def test_normalize_postcode(raw: str | None, expected: str) -> None:
    assert normalize_postcode(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12, High Street.", "12 high st"),
        ("12 HIGH ST", "12 high st"),
        ("Flat 3, 5 Park Avenue", "apt 3 5 park ave"),
        ("1600 Pennsylvania Avenue North-West", "1600 pennsylvania ave n w"),
        ("7 Chemin de la Forêt", "7 chemin de la foret"),
        ("22 Acacia Road", "22 acacia rd"),
        (None, ""),
    ],
)
def test_normalize_address(raw: str | None, expected: str) -> None:
    assert normalize_address(raw) == expected
