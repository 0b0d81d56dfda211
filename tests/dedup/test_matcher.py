"""Fuzzy duplicate detection: scoring on hand-made people, blocking, and a synthetic quality gate."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date

import pytest

from app.dedup.matcher import (
    DEFAULT_THRESHOLD,
    CandidatePair,
    Decision,
    DedupResult,
    PersonRecord,
    evaluate,
    find_candidates,
    soundex,
)
from bench.dedup_synthetic import generate_synthetic_people
from app.identity.normalize import IdentitySettings, InvalidIdentifier, normalize_identifier

SYNTHETIC_N = 5_000
SYNTHETIC_SEED = 20_240_611

JON = PersonRecord(
    "a-jon", "Jonathan", "Smith", "jon.smith@gmail.com", "07911 123456", "SW1A 1AA", "12 High Street", date(1980, 4, 12)
)
# The same man from another source: typo, case, other e-mail, no phone, address written differently.
JON_AGAIN = PersonRecord(
    "b-jon", "JONATHON", "smith", "JonSmith@yahoo.co.uk", None, "sw1a1aa", "12, High St.", date(1980, 4, 12)
)
# His wife: same surname and address, different first name and birthdate.
SARAH = PersonRecord(
    "c-sarah", "Sarah", "Smith", "sarah.smith@gmail.com", "07700 900456", "SW1A 1AA", "12 High Street", date(1982, 7, 3)
)
# A namesake elsewhere.
OTHER_JOHN = PersonRecord("d-john", "John", "Smith", "jsmith77@hotmail.com", None, "M1 1AE", "3 Mill Lane", None)
MARIA = PersonRecord(
    "e-maria", "María", "García", "maria.garcia@outlook.com", "+44 7700 900123", "EH1 1YZ", "5 Park Avenue", date(1975, 1, 30)
)
# Maria again: first and last name swapped, accents lost, a typo in the street, no e-mail or phone.
MARIA_SWAPPED = PersonRecord("f-maria", "Garcia", "Maria", None, None, "EH1 1YZ", "5 Prak Ave", date(1975, 1, 30))
NEIGHBOUR = PersonRecord("g-neil", "Neil", "Stone", None, None, "SW1A 1AA", "14 High Street", date(1980, 4, 12))

HAND_MADE = [JON, JON_AGAIN, SARAH, OTHER_JOHN, MARIA, MARIA_SWAPPED, NEIGHBOUR]


def scores(records: list[PersonRecord]) -> dict[frozenset[str], CandidatePair]:
    result = find_candidates(records, min_score=0.0)
    return {frozenset((p.left_id, p.right_id)): p for p in result.pairs}


def score_of(found: dict[frozenset[str], CandidatePair], a: PersonRecord, b: PersonRecord) -> float:
    pair = found.get(frozenset((a.id, b.id)))
    return 0.0 if pair is None else pair.score  # never compared: blocking says "not similar"


# --- scoring on hand-made records -----------------------------------------------------------


def test_obvious_duplicates_score_high_and_different_people_low() -> None:
    found = scores(HAND_MADE)
    assert score_of(found, JON, JON_AGAIN) > 0.8
    assert score_of(found, MARIA, MARIA_SWAPPED) > 0.8
    duplicates = {frozenset((JON.id, JON_AGAIN.id)), frozenset((MARIA.id, MARIA_SWAPPED.id))}
    for key, pair in found.items():
        if key not in duplicates:
            assert pair.score < 0.5, pair  # wife, namesake, neighbour with the same birthday


def test_pair_shape_and_evidence() -> None:
    result = find_candidates(HAND_MADE)
    assert isinstance(result, DedupResult)
    assert [p.score for p in result.pairs] == sorted((p.score for p in result.pairs), reverse=True)
    assert all(p.left_id < p.right_id and 0.5 <= p.score <= 1.0 for p in result.pairs)
    assert len({(p.left_id, p.right_id) for p in result.pairs}) == len(result.pairs)

    jon = next(p for p in result.pairs if {p.left_id, p.right_id} == {JON.id, JON_AGAIN.id})
    assert (jon.left_id, jon.right_id) == ("a-jon", "b-jon")
    ev = jon.evidence
    assert ev["first_name"] == "typo" and ev["last_name"] == "exact"
    assert ev["birthdate"] == "exact" and ev["location"] == "same_address"
    assert ev["email"] == "local_part"  # jon.smith@gmail vs JonSmith@yahoo
    assert "phone" not in ev  # missing on one side: not compared, no evidence either way
    bits = sum(v for k, v in ev.items() if k.endswith("_bits") and k != "total_bits")
    assert bits == pytest.approx(ev["total_bits"], abs=0.05)

    maria = next(p for p in result.pairs if {p.left_id, p.right_id} == {MARIA.id, MARIA_SWAPPED.id})
    assert maria.evidence["names_swapped"] == "yes"
    assert maria.evidence["first_name"] == maria.evidence["last_name"] == "exact"


def test_missing_fields_are_neutral() -> None:
    base = PersonRecord("x1", "Harriet", "Quinn", None, None, "LS1 4AP", "9 Mill Road", date(1990, 2, 3))
    copy = PersonRecord("x2", "Harriet", "Quinn", None, None, "LS1 4AP", "9 Mill Rd", date(1990, 2, 3))
    others = [PersonRecord(f"o{i}", f"Person{i}", f"Other{i}", None, None, f"ZZ{i} 1AA", None, None) for i in range(20)]

    full = score_of(scores([base, copy, *others]), base, copy)
    no_birthdate = score_of(scores([base, replace(copy, birthdate=None), *others]), base, copy)
    wrong_birthdate = score_of(scores([base, replace(copy, birthdate=date(1971, 11, 30)), *others]), base, copy)
    assert full > no_birthdate > wrong_birthdate  # missing is between agreeing and disagreeing


def _people_seen_twice(count: int) -> list[PersonRecord]:
    """``count`` people, each with a postcode and a surname nobody else has, entered twice
    (the second time with a typo in the first name and without the street line)."""
    rng = random.Random(5)

    def word(k: int) -> str:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(k))

    records = []
    for i in range(count):
        first, last = word(6).title(), word(8).title()
        postcode = f"{word(2).upper()}{i % 90 + 10} {i % 9}{word(2).upper()}"
        records.append(PersonRecord(f"p{i:06d}a", first, last, postcode=postcode))
        records.append(PersonRecord(f"p{i:06d}b", first[:2] + first[3:], last, postcode=postcode))
    return records


def test_the_evidence_of_rare_values_keeps_up_with_the_prior_as_the_file_grows() -> None:
    # The prior is the share of all pairs that are one person: a hundred times as many people
    # (each once duplicated) make it ~6.6 bits smaller. Sharing a postcode and a surname that
    # nobody else has is, in the larger file, a hundred times rarer for two strangers; the
    # pair's evidence must grow with it, so that the same pair does not lose its score because
    # unrelated people were added (before: the u of an exact agreement stayed near the hand-set
    # u0 and frequencies were floored, so total bits fell by ~1.8 here and ~8 bits at 1M).
    pair = ("p000000a", "p000000b")
    small, large = (find_candidates(_people_seen_twice(n), min_score=0.0) for n in (200, 20_000))
    before, after = (next(p for p in r.pairs if (p.left_id, p.right_id) == pair) for r in (small, large))
    assert after.evidence["prior_bits"] < before.evidence["prior_bits"] - 5
    assert after.evidence["location_bits"] > before.evidence["location_bits"] + 4  # log2(m / share): share is 1/100
    assert after.evidence["total_bits"] >= before.evidence["total_bits"]
    assert after.score >= before.score


def test_empty_and_tiny_inputs() -> None:
    assert find_candidates([]) == DedupResult(pairs=[], compared_pairs=0, skipped_blocks=0)
    assert find_candidates([JON]).compared_pairs == 0
    with pytest.raises(ValueError, match="unique"):
        find_candidates([JON, JON])


def test_soundex() -> None:
    assert soundex("Robert") == soundex("Rupert") == "R163"
    assert soundex("Ashcraft") == "A261"  # h does not separate s and c
    assert soundex("Tymczak") == "T522"
    assert soundex("Pfister") == "P236"
    assert soundex("Smith") == soundex("Smyth") == soundex("SMITH")
    assert soundex("Müller") == soundex("Muller")
    assert soundex("") == soundex(None) == ""


# --- blocking -------------------------------------------------------------------------------


def test_oversized_blocks_are_skipped_and_counted() -> None:
    # Twelve Smiths in one postcode with unrelated first names: one postcode+"s" block of 12.
    firsts = ["Alan", "Beth", "Carl", "Dora", "Eric", "Fay", "Gus", "Hal", "Ivy", "Jude", "Kurt", "Lola"]
    records = [PersonRecord(f"s{i:02d}", f, "Smith", postcode="AB1 2CD") for i, f in enumerate(firsts)]
    capped = find_candidates(records, max_block_size=5)
    assert capped.skipped_blocks >= 1
    assert capped.compared_pairs == 0
    uncapped = find_candidates(records, max_block_size=500)
    assert uncapped.skipped_blocks == 0
    assert uncapped.compared_pairs == len(records) * (len(records) - 1) // 2


def test_large_blocks_are_searched_by_sorted_neighbourhood() -> None:
    """A block over the full-expansion size (a surname everyone in one postcode has) is not
    expanded into all its pairs: each record meets its nearest neighbours by name and by
    birthdate. The duplicate in it is still found, far fewer pairs are compared, and the pairs
    do not depend on the records' order."""
    syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi"]
    firsts = [a + b + c for a in syllables for b in syllables for c in ("n", "s")][:60]
    rng = random.Random(3)
    records = [
        PersonRecord(f"s{i:02d}", first.title(), "Smith", postcode="AB1 2CD", address=f"{i + 1} Mill Lane",
                     birthdate=date(1950 + rng.randrange(50), 1 + rng.randrange(12), 1 + rng.randrange(28)))
        for i, first in enumerate(firsts)
    ]
    jon = PersonRecord("t-jon", "Jonathan", "Smith", postcode="AB1 2CD", address="99 Mill Lane", birthdate=date(1980, 4, 12))
    jon_again = PersonRecord("u-jon", "Jonathon", "Smith", postcode="ab1 2cd", address="99, Mill Ln", birthdate=date(1980, 4, 12))
    records += [jon, jon_again]
    result = find_candidates(records, max_block_size=500)
    assert result.skipped_blocks == 0
    n = len(records)
    assert result.compared_pairs < n * (n - 1) // 2 // 2  # expanded, the postcode block alone is 1,891 pairs
    assert [(p.left_id, p.right_id) for p in result.pairs if p.score >= DEFAULT_THRESHOLD] == [("t-jon", "u-jon")]
    backward = find_candidates(records[::-1], max_block_size=500)
    assert backward.compared_pairs == result.compared_pairs
    assert [(p.left_id, p.right_id, p.score) for p in backward.pairs] == [(p.left_id, p.right_id, p.score) for p in result.pairs]


# --- synthetic data and the quality gate ----------------------------------------------------


@pytest.fixture(scope="module")
def synthetic() -> tuple[list[PersonRecord], set[tuple[str, str]]]:
    return generate_synthetic_people(SYNTHETIC_N, 0.1, SYNTHETIC_SEED)


@pytest.fixture(scope="module")
def matched(synthetic: tuple[list[PersonRecord], set[tuple[str, str]]]) -> DedupResult:
    records, _ = synthetic
    return find_candidates(records)


def test_generator_is_reproducible_and_consistent(synthetic: tuple[list[PersonRecord], set[tuple[str, str]]]) -> None:
    records, truth = synthetic
    again, truth_again = generate_synthetic_people(SYNTHETIC_N, 0.1, SYNTHETIC_SEED)
    assert again == records and truth_again == truth
    assert generate_synthetic_people(200, 0.1, SYNTHETIC_SEED + 1)[0] != records[:200]

    ids = {r.id for r in records}
    assert len(records) == len(ids) == SYNTHETIC_N
    assert all(a < b and a in ids and b in ids for a, b in truth)
    assert len(truth) >= SYNTHETIC_N * 0.1  # every copy pairs with its original (plus copy-copy pairs)


def test_synthetic_duplicates_share_no_normalised_identifier(
    synthetic: tuple[list[PersonRecord], set[tuple[str, str]]],
) -> None:
    """The generator only makes duplicates that exact identifier linking cannot join."""
    records, truth = synthetic
    by_id = {r.id: r for r in records}
    gb = IdentitySettings(default_region="GB")

    def norm(type: str, raw: str | None) -> str | None:
        try:
            identifier = normalize_identifier(type, raw, gb)
        except InvalidIdentifier:
            return None
        return identifier.value if identifier else None

    for a, b in truth:
        for type, field in (("email", "email"), ("phone", "phone")):
            x, y = norm(type, getattr(by_id[a], field)), norm(type, getattr(by_id[b], field))
            assert x is None or y is None or x != y, (a, b, type, x)


def test_blocking_compares_a_tiny_fraction_of_all_pairs(matched: DedupResult) -> None:
    all_pairs = SYNTHETIC_N * (SYNTHETIC_N - 1) // 2
    assert 0 < matched.compared_pairs < all_pairs // 100  # < 1% of the 12.5 million pairs
    assert matched.skipped_blocks == 0  # no block is anywhere near 500 records here


def test_synthetic_quality_gate(
    synthetic: tuple[list[PersonRecord], set[tuple[str, str]]], matched: DedupResult
) -> None:
    _, truth = synthetic
    precision, recall, f1 = evaluate(matched.pairs, truth, DEFAULT_THRESHOLD)
    assert precision >= 0.9, (precision, recall, f1)
    assert recall >= 0.8, (precision, recall, f1)


def test_scores_are_monotone_in_threshold(
    synthetic: tuple[list[PersonRecord], set[tuple[str, str]]], matched: DedupResult
) -> None:
    _, truth = synthetic
    recalls = [evaluate(matched.pairs, truth, t)[1] for t in (0.5, 0.7, 0.9)]
    assert recalls == sorted(recalls, reverse=True)


# --- evaluate ---------------------------------------------------------------------------------


def test_evaluate() -> None:
    pairs = [
        CandidatePair("a", "b", 0.95, {}),
        CandidatePair("c", "d", 0.85, {}),
        CandidatePair("e", "f", 0.55, {}),
    ]
    truth = {("a", "b"), ("e", "f"), ("g", "h")}
    assert evaluate(pairs, truth, 0.9) == pytest.approx((1.0, 1 / 3, 0.5))
    assert evaluate(pairs, truth, 0.5) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert evaluate(pairs, {("b", "a")}, 0.9) == pytest.approx((1.0, 1.0, 1.0))  # pairs are unordered
    assert evaluate(pairs, truth, 0.99) == (0.0, 0.0, 0.0)
    assert evaluate([], set(), 0.5) == (0.0, 1.0, 0.0)


# --- symmetry --------------------------------------------------------------------------------


def _swapped_records() -> list[PersonRecord]:
    records, _ = generate_synthetic_people(2_000, 0.1, SYNTHETIC_SEED)
    # Swapped first/last names of several lengths, the case the order of records used to decide.
    return [*records, PersonRecord("s1", "Maria", "Garcia", postcode="EH1 1YZ", birthdate=date(1975, 1, 30)),
            PersonRecord("s2", "Garcia", "Mariah", postcode="EH1 1YZ", birthdate=date(1975, 1, 30)),
            PersonRecord("s3", "Lee", "Ann", birthdate=date(1970, 1, 2)), PersonRecord("s4", "Anne", "Lee", birthdate=date(1970, 1, 2))]


def test_every_comparison_is_symmetric() -> None:
    from app.dedup.matcher import _block_keys, _Comparer, _features

    records = _swapped_records()
    features = [_features(r) for r in records]
    comparer = _Comparer(features)
    blocks: dict[tuple, list[int]] = {}
    for i, f in enumerate(features):
        for key in set(_block_keys(f)):
            blocks.setdefault(key, []).append(i)
    pairs = {(i, j) for members in blocks.values() if len(members) <= 500 for i in members for j in members if i < j}
    assert len(pairs) > 1_000
    asymmetric = [(records[i].id, records[j].id) for i, j in pairs
                  if comparer.compare(features[i], features[j]) != comparer.compare(features[j], features[i])]
    assert asymmetric == []


def test_scores_do_not_depend_on_record_order() -> None:
    records = _swapped_records()
    forward = {(p.left_id, p.right_id): p.score for p in find_candidates(records, min_score=0.1).pairs}
    backward = {(p.left_id, p.right_id): p.score for p in find_candidates(records[::-1], min_score=0.1).pairs}
    assert forward.keys() == backward.keys()
    assert max(abs(forward[k] - backward[k]) for k in forward) < 1e-9
    swapped = forward[("s1", "s2")]
    assert swapped > DEFAULT_THRESHOLD


# --- fields, learning, decisions ---------------------------------------------------------------


def test_town_region_second_line_and_national_id_are_evidence() -> None:
    base = PersonRecord("a", "Kim", "Wright", city="Bendigo", state="vic", address2="Rosedale Farm", national_id="5191233")
    same = PersonRecord("b", "Kim", "Wright", city="Bendigo", state="vic", address2="rosedale farm", national_id="5192133")
    other = PersonRecord("c", "Kim", "Wright", city="Mildura", state="nsw", address2="Unit 4", national_id="8812004")
    rng = random.Random(1)  # unrelated customer numbers (sequential ones would be one-digit "typos" of each other)
    filler = [PersonRecord(f"f{i}", f"Name{i}", f"Surname{i}", city=f"Town{i % 7}", national_id=f"{rng.randrange(10**7):07d}")
              for i in range(40)]
    found = scores([base, same, other, *filler])
    pair = found[frozenset(("a", "b"))]
    assert pair.evidence["city"] == "exact" and pair.evidence["state"] == "exact"
    assert pair.evidence["address2"] == "exact" and pair.evidence["national_id"] == "typo"  # two digits swapped
    assert all(pair.evidence[f"{f}_bits"] > 0 for f in ("city", "state", "address2", "national_id"))
    assert score_of(found, base, same) > DEFAULT_THRESHOLD > score_of(found, base, other)


def test_the_model_is_learned_from_the_records() -> None:
    records, _ = generate_synthetic_people(SYNTHETIC_N, 0.1, SYNTHETIC_SEED)
    learned = find_candidates(records).model
    hand_set = find_candidates(records, learn=False).model
    assert learned["iterations"] > 1 and learned["converged"]
    assert learned["fitted_pairs"] > 1_000 and learned["random_pairs"] > 1_000
    # EM moved the weights away from the hand-set prior, towards what these records show.
    moved = [abs(learned["comparisons"][c][lv]["m"] - hand_set["comparisons"][c][lv]["m"])
             for c in ("first_name", "last_name", "birthdate", "email", "phone") for lv in learned["comparisons"][c]]
    assert max(moved) > 0.05


def test_reviewers_decisions_refine_the_model() -> None:
    records, _ = generate_synthetic_people(SYNTHETIC_N, 0.1, SYNTHETIC_SEED)
    before = find_candidates(records)
    # A reviewer rejects every pair at the same postcode whose first names are merely "similar":
    # the next fit must trust that pattern less.
    pattern = {"location": "same_postcode", "first_name": "similar", "last_name": "exact", "prior_bits": -10.0}
    decisions = [Decision(pattern, same_person=False)] * 300
    after = find_candidates(records, decisions=decisions)
    assert after.model["decisions"] == {"same_person": 0, "different_people": 300}
    assert after.model["comparisons"]["first_name"]["similar"]["u"] > before.model["comparisons"]["first_name"]["similar"]["u"]
    assert after.model["comparisons"]["first_name"]["similar"]["bits"] < before.model["comparisons"]["first_name"]["similar"]["bits"]
    # ...and a pattern people confirmed gains weight.
    confirmed = [Decision({"location": "different", "first_name": "exact", "last_name": "exact", "birthdate": "exact"}, True)] * 300
    moved = find_candidates(records, decisions=confirmed).model["comparisons"]["location"]["different"]["m"]
    assert moved > before.model["comparisons"]["location"]["different"]["m"]
