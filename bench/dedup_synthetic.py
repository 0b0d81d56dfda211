"""Synthetic people for de-duplication: a generator with known duplicates, and an evaluator.

``generate_synthetic_people(n, dup_rate, seed)`` makes reproducible records (one
``random.Random``, built-in word lists, no downloads) whose duplicates share no normalised
e-mail or phone with their person, so identifier linking cannot join them: exactly the cases
:mod:`app.dedup.matcher` is for. The tests use it as a quality gate; run this file for the
table in docs/DEDUP.md::

    .venv/bin/python -m bench.dedup_synthetic --n 20000 --dup-rate 0.1 --seed 7
"""

from __future__ import annotations

import argparse
import itertools
import random
import resource
import string
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta

from app.dedup.matcher import DEFAULT_THRESHOLD, PersonRecord, evaluate, find_candidates
from app.dedup.matcher import _NICKNAME_GROUPS  # the generator's nicknames are the matcher's
from app.identity.normalize import IdentitySettings, InvalidIdentifier, normalize_identifier, normalize_name

__all__ = ["generate_synthetic_people", "main"]


# --- word lists --------------------------------------------------------------------------

_FIRST_NAMES = (
    "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara Richard "
    "Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Nancy Daniel Lisa Matthew Margaret "
    "Anthony Betty Mark Sandra Donald Ashley Steven Dorothy Paul Kimberly Andrew Emily Joshua Donna "
    "Kenneth Michelle Kevin Carol Brian Amanda George Melissa Edward Deborah Ronald Stephanie Timothy "
    "Rebecca Jason Laura Jeffrey Sharon Ryan Cynthia Jacob Kathleen Gary Amy Nicholas Shirley Eric "
    "Angela Jonathan Helen Stephen Anna Larry Brenda Justin Pamela Scott Nicole Brandon Samantha "
    "Benjamin Katherine Samuel Emma Gregory Ruth Alexander Christine Patrick Catherine Frank Debra "
    "Raymond Rachel Jack Carolyn Dennis Janet Jerry Virginia Tyler Maria Aaron Heather José Diane "
    "Henry Julie Adam Joyce Douglas Victoria Nathan Olivia Peter Kelly Zachary Christina Kyle Lauren "
    "Noah Joan Ethan Evelyn Jeremy Judith Walter Megan Christian Cheryl Keith Andrea Roger Hannah "
    "Terry Martha Austin Jacqueline Sean Frances Gerald Gloria Carl Ann Harold Teresa Dylan Kathryn "
    "Arthur Sara Lawrence Janice Jordan Jean Jesse Alice Bryan Madison Gabriel Julia Joe Judy Logan "
    "Grace Alan Denise Juan Amber Albert Marilyn Elijah Danielle Wayne Theresa Randy Sophia Mason "
    "Marie Vincent Diana Liam Roy Natalie Isabella Caleb Charlotte Bradley Rose Russell Lucas Zoë "
    "Søren François Siobhán Aoife Mohammed Fatima Priya Wei Björn Chloé Renée Łukasz Zofia Aisha"
).split()

_LAST_NAMES = (
    "Smith Johnson Williams Brown Jones García Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill "
    "Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips "
    "Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers "
    "Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson "
    "Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo "
    "Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins Perry Russell Sullivan Bell Coleman "
    "Butler Henderson Barnes Fisher Vasquez Simmons Romero Patterson Hamilton Graham Reynolds "
    "Griffin Wallace Moreno West Cole Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens "
    "Murray Ford Castro Marshall Owens Harrison Fernandez McDonald Woods Washington Kennedy Wells "
    "Vargas Chen Freeman Webb Tucker Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez "
    "Silva Shaw Snyder Mason Dixon Muñoz Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Stone "
    "Salazar Fox Warren Mills Meyer Rice Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver "
    "Ryan Gardner Payne Grant Dunn Spencer Hawkins Arnold Pierce Hansen Peters Santos Hart Knight "
    "Elliott Cunningham Duncan Armstrong Hudson Carroll Lane Riley Andrews Ray Berry Perkins Hoffman "
    "Johnston Matthews Peña Richards Willis Carpenter Sandoval O'Brien O'Connor Müller Nowak "
    "Kowalski Dubois MacLeod Fitzgerald Søndergaard Van_der_Berg Ó_Súilleabháin Smith-Jones"
).replace("_", " ").split()

_STREETS = (
    "High,Church,Station,Victoria,Park,Green,Manor,Mill,Queen,King,New,Kings,Grange,Chestnut,Oak,"
    "Maple,Elm,Cedar,Willow,Meadow,Springfield,Windsor,York,Albert,Alexandra,Richmond,George,North,"
    "South,West,London,Bridge,Castle,Chapel,School,Orchard,Highfield,Broadway,Mount Pleasant,"
    "Hillside,Riverside,Lakeview,Sunset,Washington,Lincoln,Jefferson,Madison,Franklin,Pine,Birch,Ash,"
    "Poplar,Sycamore,Holly,Beech,Rosewood,Garden,Market,Abbey,Priory"
).split(",")
# (full form, abbreviation): duplicates often write the other one.
_STREET_TYPES = (
    ("Street", "St"), ("Road", "Rd"), ("Avenue", "Ave"), ("Lane", "Ln"), ("Drive", "Dr"), ("Close", "Cl"),
    ("Court", "Ct"), ("Place", "Pl"), ("Crescent", "Cres"), ("Gardens", "Gdns"), ("Terrace", "Ter"), ("Way", "Way"),
)
_EMAIL_DOMAINS = (
    ("gmail.com", 40), ("yahoo.com", 10), ("hotmail.com", 10), ("outlook.com", 10), ("icloud.com", 8),
    ("btinternet.com", 6), ("aol.com", 4), ("proton.me", 4), ("live.co.uk", 4), ("mail.com", 4),
)
_WORK_DOMAINS = ("acme.com", "globex.co.uk", "initech.com", "umbrella.org", "hooli.io", "example.org")
_NICKNAME_OF: Mapping[str, str] = {g[0]: g[1] for g in _NICKNAME_GROUPS}
_GB = IdentitySettings(default_region="GB")
_EARLIEST_BIRTHDATE = date(1940, 1, 1)
_LATEST_BIRTHDATE = date(2007, 12, 31)


def _zipf_weights(n: int) -> list[float]:
    # Name frequencies are skewed: the most common name here is ~3% of people, like "Smith".
    return [1.0 / (rank + 10) for rank in range(n)]


@dataclass
class _Person:
    """Mutable working copy used while generating (PersonRecord is frozen)."""

    first: str | None
    last: str | None
    email: str | None
    phone: str | None
    postcode: str | None
    address: str | None
    birthdate: date | None


class _Generator:
    """State of one reproducible synthetic run (everything drawn from one Random)."""

    def __init__(self, n: int, rng: random.Random) -> None:
        self.rng = rng
        self.first_w = _zipf_weights(len(_FIRST_NAMES))
        self.last_w = _zipf_weights(len(_LAST_NAMES))
        self.domains = [d for d, _ in _EMAIL_DOMAINS]
        self.domain_w = [w for _, w in _EMAIL_DOMAINS]
        # ~5 customers per postcode; each postcode is one street (as in the UK).
        self.postcodes: list[tuple[str, str, tuple[str, str]]] = []
        seen: set[str] = set()
        while len(self.postcodes) < max(20, n // 5):
            pc = self._postcode()
            if pc not in seen:
                seen.add(pc)
                self.postcodes.append((pc, rng.choice(_STREETS), rng.choice(_STREET_TYPES)))
        self.used_emails: set[str] = set()  # normalised; no two people share an identifier
        self.used_phones: set[str] = set()

    # -- building blocks --

    def _postcode(self) -> str:
        r, up = self.rng, string.ascii_uppercase
        outward = "".join(r.choice(up) for _ in range(r.choice((1, 2)))) + str(r.randint(1, 29))
        return f"{outward} {r.randint(0, 9)}{r.choice(up)}{r.choice(up)}"

    def _address(self, street: str, kind: tuple[str, str]) -> str:
        address = f"{self.rng.randint(1, 250)} {street} {kind[0]}"
        if self.rng.random() < 0.08:
            address = f"Flat {self.rng.randint(1, 12)}, {address}"
        return address

    def _new_email(self, first: str, last: str, domain: str | None = None) -> str | None:
        f = normalize_name(first).replace(" ", "") or "x"
        l = normalize_name(last).replace(" ", "") or "y"
        r = self.rng
        nn = str(r.randint(1, 99))
        for _ in range(20):
            local = r.choice(
                (f"{f}.{l}", f"{f}{l}", f"{f[0]}{l}", f"{f}.{l}{nn}", f"{f}{nn}", f"{l}.{f}", f"{f}_{l}", f"{f[0]}.{l}{nn}")
            )
            email = f"{local}@{domain or r.choices(self.domains, self.domain_w)[0]}"
            norm = _norm("email", email)
            if norm and norm not in self.used_emails:
                self.used_emails.add(norm)
                return email
            nn = str(r.randint(1, 9999))
        return None

    def _new_phone(self) -> str:
        while True:  # UK mobile numbers; a handful of ranges are unassigned, hence the loop
            national = "07" + self.rng.choice("45789") + "".join(self.rng.choice(string.digits) for _ in range(8))
            norm = _norm("phone", national)
            if norm and norm not in self.used_phones:
                self.used_phones.add(norm)
                return self._format_phone(national)

    def _format_phone(self, national: str) -> str:
        d = national  # "07911123456"
        return self.rng.choice(
            (f"{d[:5]} {d[5:]}", f"+44 {d[1:5]} {d[5:]}", f"+44{d[1:]}", f"{d[:5]}-{d[5:8]}-{d[8:]}", f"({d[:5]}) {d[5:]}", f"0044 {d[1:5]} {d[5:]}", d)
        )

    def _birthdate(self) -> date:
        return _EARLIEST_BIRTHDATE + timedelta(days=self.rng.randint(0, (_LATEST_BIRTHDATE - _EARLIEST_BIRTHDATE).days))

    def _typo(self, s: str) -> str:
        """One insert, delete, transpose or substitute, keeping the string non-empty."""
        r = self.rng
        if len(s) < 2:
            return s
        i = r.randrange(len(s))
        op = r.choice(("insert", "delete", "transpose", "substitute"))
        ch = r.choice(string.ascii_lowercase)
        if op == "insert":
            return s[:i] + ch + s[i:]
        if op == "delete" and len(s) > 2:
            return s[:i] + s[i + 1 :]
        if op == "transpose" and i < len(s) - 1 and s[i] != s[i + 1]:
            return s[:i] + s[i + 1] + s[i] + s[i + 2 :]
        return s[:i] + (ch if ch != s[i].lower() else "e") + s[i + 1 :]

    # -- people --

    def person(self, household: _Person | None = None) -> _Person:
        r = self.rng
        first = r.choices(_FIRST_NAMES, self.first_w)[0]
        if household is not None:  # partner, child or flatmate: same address, new person
            last = household.last if r.random() < 0.85 else r.choices(_LAST_NAMES, self.last_w)[0]
            postcode, address = household.postcode, household.address
            birthdate = None
            if household.birthdate is not None:
                years = r.choice((r.randint(-6, 6), r.randint(20, 35), -r.randint(20, 35)))  # partner, child, parent
                birthdate = household.birthdate + timedelta(days=years * 365 + r.randint(-180, 180))
                if birthdate > _LATEST_BIRTHDATE:  # nobody in the file is born in the future
                    birthdate = household.birthdate - timedelta(days=abs(years) * 365 + r.randint(0, 180))
            if r.random() < 0.15:
                birthdate = None
        else:
            last = r.choices(_LAST_NAMES, self.last_w)[0]
            pc, street, kind = r.choice(self.postcodes)
            postcode, address = pc, self._address(street, kind)
            birthdate = self._birthdate() if r.random() < 0.85 else None
        if r.random() < 0.05:
            first, last = first.upper(), last.upper()
        return _Person(
            first=first,
            last=last,
            email=self._new_email(first, last) if r.random() < 0.85 else None,
            phone=self._new_phone() if r.random() < 0.70 else None,
            postcode=postcode if r.random() < 0.95 else None,
            address=address if r.random() < 0.90 else None,
            birthdate=birthdate,
        )

    def duplicate(self, p: _Person, cluster_emails: set[str], cluster_phones: set[str]) -> _Person:
        """A corrupted copy of ``p`` sharing no normalised e-mail or phone with its cluster."""
        r = self.rng
        d = replace(p)
        first, last = d.first or "", d.last or ""
        if first and r.random() < 0.12:  # nickname or truncation: "William" -> "Bill", "Christopher" -> "Chris"
            key = normalize_name(first)
            if key in _NICKNAME_OF and r.random() < 0.5:
                first = _NICKNAME_OF[key].title()
            elif len(first) >= 6:
                first = first[: r.randint(3, 5)]
        if first and r.random() < 0.03:
            first = first[0]
        if first and r.random() < 0.20:
            first = self._typo(first)
        if last and r.random() < 0.20:
            last = self._typo(last)
        if r.random() < 0.07:
            first, last = last, first
        style = r.random()
        if style < 0.15:
            first, last = first.upper(), last.upper()
        elif style < 0.30:
            first, last = first.lower(), last.lower()
        d.first, d.last = first or None, last or None

        d.email = self._duplicate_email(p, cluster_emails)
        d.phone = self._duplicate_phone(p, cluster_phones)

        if d.birthdate is not None:
            roll = r.random()
            if roll < 0.20:
                d.birthdate = None
            elif roll < 0.24 and d.birthdate.day <= 12 and d.birthdate.day != d.birthdate.month:
                d.birthdate = d.birthdate.replace(month=d.birthdate.day, day=d.birthdate.month)
            elif roll < 0.27:  # one digit of the day mistyped
                d.birthdate = d.birthdate + timedelta(days=r.choice((-1, 1, 10, -10)))

        if r.random() < 0.10:  # moved house
            pc, street, kind = r.choice(self.postcodes)
            d.postcode, d.address = pc, self._address(street, kind)
        if d.postcode and r.random() < 0.4:
            d.postcode = r.choice((d.postcode.lower(), d.postcode.replace(" ", "")))
        if d.address:
            if r.random() < 0.4:
                for full, short in _STREET_TYPES:
                    if d.address.endswith(" " + full):
                        d.address = d.address[: -len(full)] + short + (r.choice(("", ".")))
                        break
                    if d.address.endswith(" " + short):
                        d.address = d.address[: -len(short)] + full
                        break
            if r.random() < 0.08:
                words = d.address.split(" ")
                i = r.randrange(len(words))
                if not words[i].isdigit():
                    words[i] = self._typo(words[i])
                d.address = " ".join(words)
        if r.random() < 0.12:
            d.address = None
        if r.random() < 0.10:
            d.postcode = None
        return d

    def _duplicate_email(self, p: _Person, cluster: set[str]) -> str | None:
        r = self.rng
        roll = r.random()
        if roll < 0.30 or not (p.first and p.last):
            return None
        if not p.email or roll >= 0.75:
            if roll >= 0.90:
                return None
            email = self._new_email(p.first, p.last, domain=r.choice(_WORK_DOMAINS))  # unique, registered
            if email:
                cluster.add(_norm("email", email) or "")
            return email
        local, domain = p.email.split("@")
        if roll < 0.55:  # same mailbox family: a dot moved, a +tag
            if "." in local and r.random() < 0.6:
                local = local.replace(".", "", 1)
            elif r.random() < 0.5 and len(local) > 3 and "." not in local:
                i = r.randint(1, len(local) - 1)
                local = local[:i] + "." + local[i:]
            else:
                local = f"{local}+{r.choice(('shop', 'news', 'promo'))}"
        else:  # same local part at another provider
            domain = r.choice([x for x in self.domains if x != domain])
        email = f"{local}@{domain}"
        if r.random() < 0.4:  # case alone never makes a new identifier, but it comes along
            email = email.capitalize() if r.random() < 0.5 else email.upper()
        norm = _norm("email", email)
        if norm is None or norm in cluster or norm in self.used_emails:
            return None
        self.used_emails.add(norm)
        cluster.add(norm)
        return email

    def _duplicate_phone(self, p: _Person, cluster: set[str]) -> str | None:
        r = self.rng
        roll = r.random()
        if roll < 0.35:
            return None
        if p.phone and roll < 0.60:  # mistyped and formatted differently
            digits = "0" + "".join(ch for ch in p.phone if ch.isdigit())[-10:]
            for _ in range(10):
                i = r.randint(3, len(digits) - 2)
                if r.random() < 0.5:
                    typo = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
                else:
                    typo = digits[:i] + r.choice(string.digits) + digits[i + 1 :]
                norm = _norm("phone", typo)
                if norm and norm not in cluster and norm not in self.used_phones:
                    self.used_phones.add(norm)
                    cluster.add(norm)
                    return self._format_phone(typo)
            return None
        phone = self._new_phone()  # a new number (already registered as used)
        cluster.add(_norm("phone", phone) or "")
        return phone


def _norm(type: str, raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        identifier = normalize_identifier(type, raw, _GB)
    except InvalidIdentifier:
        return None
    return identifier.value if identifier else None


def generate_synthetic_people(
    n: int, dup_rate: float, seed: int
) -> tuple[list[PersonRecord], set[tuple[str, str]]]:
    """``n`` synthetic people of whom about ``dup_rate`` are corrupted copies of others.

    Reproducible for a given seed (one ``random.Random(seed)``, built-in word lists). Copies
    get typos, swapped names, nicknames, missing fields, postcode/address variants, moves,
    and e-mails/phones that never normalise to one their cluster already uses, so exact
    identifier linking cannot join them. 20% of people share an address with a relative (hard
    negatives). Returns the records (ids in random order) and the true duplicate pairs
    ``(a, b)`` with ``a < b``, including copy-copy pairs of the same person.
    """
    if n < 1 or not 0.0 <= dup_rate < 1.0:
        raise ValueError("need n >= 1 and 0 <= dup_rate < 1")
    rng = random.Random(seed)
    gen = _Generator(n, rng)
    n_dup = round(n * dup_rate)
    people: list[_Person] = []
    for _ in range(n - n_dup):
        household = rng.choice(people) if people and rng.random() < 0.20 else None
        people.append(gen.person(household))

    entity = list(range(len(people)))  # entity id of every generated record
    emails = [{_norm("email", p.email)} - {None} for p in people]
    phones = [{_norm("phone", p.phone)} - {None} for p in people]
    records = list(people)
    for _ in range(n_dup):
        k = rng.randrange(len(people))
        records.append(gen.duplicate(people[k], emails[k], phones[k]))  # type: ignore[arg-type]
        entity.append(k)

    order = list(range(len(records)))
    rng.shuffle(order)
    width = len(str(n))
    out: list[PersonRecord] = []
    members: dict[int, list[str]] = defaultdict(list)
    for new_index, old_index in enumerate(order):
        p = records[old_index]
        rid = f"p{new_index:0{width}d}"
        out.append(PersonRecord(rid, p.first, p.last, p.email, p.phone, p.postcode, p.address, p.birthdate))
        members[entity[old_index]].append(rid)
    truth = {tuple(sorted(pair)) for ids in members.values() for pair in itertools.combinations(ids, 2)}
    return out, truth  # type: ignore[return-value]


# --- command line ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Benchmark on synthetic people: ``python -m bench.dedup_synthetic --n 20000``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--n", type=int, default=20_000, help="records to generate")
    parser.add_argument("--dup-rate", type=float, default=0.10, help="share of records that are copies")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-block-size", type=int, default=500)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    records, truth = generate_synthetic_people(args.n, args.dup_rate, args.seed)
    t1 = time.perf_counter()
    result = find_candidates(records, min_score=0.5, max_block_size=args.max_block_size)
    t2 = time.perf_counter()
    n = len(records)
    print(f"records={n} true_pairs={len(truth)} generate={t1 - t0:.2f}s match={t2 - t1:.2f}s "
          f"peak_rss={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}MB (generator included)")
    print(
        f"compared_pairs={result.compared_pairs} ({result.compared_pairs / max(n * (n - 1) // 2, 1):.4%} of all pairs) "
        f"skipped_blocks={result.skipped_blocks} candidates>=0.5={len(result.pairs)}"
    )
    print("threshold  precision  recall     f1")
    for threshold in (0.5, 0.6, 0.7, 0.8, 0.9):
        p, r, f = evaluate(result.pairs, truth, threshold)
        mark = "  <- default" if threshold == DEFAULT_THRESHOLD else ""
        print(f"{threshold:9.1f}  {p:9.4f}  {r:6.4f}  {f:6.4f}{mark}")


if __name__ == "__main__":
    main()
