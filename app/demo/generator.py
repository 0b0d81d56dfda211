"""A believable store, generated: customers who sign up, browse, buy and stop buying.

Deterministic for a seed and an end date: the same call gives the same messages, with stable
`messageId`s, so loading it twice stores nothing twice. Messages follow the Segment spec
(identify traits, `Order Completed` with `order_id`, `revenue`, `currency`, `products`; page
views; `Product Viewed`, `Product Added`, `Checkout Started`; `group` calls for business
customers).

Purchases follow the process the CLV models assume (BG/NBD): each customer buys at their own
rate (gamma-distributed across customers) until they drop out (after each order, with their
own beta-distributed probability); each has their own typical basket. So RFM tiers spread,
CLV has repeat buyers to fit, and lapsed customers look lapsed.

Some people are in twice, as in real data: a newsletter sign-up with the same e-mail typed
differently (identity resolution merges it on its own), and a guest checkout under a nickname,
another e-mail and the same address (only fuzzy de-duplication can find it).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

FIRST_NAMES = [
    ("James", "Jim"), ("Mary", None), ("Robert", "Bob"), ("Patricia", "Pat"), ("John", "Jack"), ("Jennifer", "Jen"),
    ("Michael", "Mike"), ("Linda", None), ("William", "Bill"), ("Elizabeth", "Liz"), ("David", "Dave"),
    ("Barbara", "Barb"), ("Richard", "Rick"), ("Susan", "Sue"), ("Joseph", "Joe"), ("Jessica", "Jess"),
    ("Thomas", "Tom"), ("Sarah", None), ("Charles", "Charlie"), ("Karen", None), ("Daniel", "Dan"),
    ("Nancy", None), ("Matthew", "Matt"), ("Lisa", None), ("Anthony", "Tony"), ("Margaret", "Maggie"),
    ("Christopher", "Chris"), ("Sandra", "Sandy"), ("Andrew", "Andy"), ("Emily", None), ("Joshua", "Josh"),
    ("Michelle", None), ("Kenneth", "Ken"), ("Amanda", "Mandy"), ("Steven", "Steve"), ("Rebecca", "Becky"),
    ("Samuel", "Sam"), ("Katherine", "Kate"), ("Benjamin", "Ben"), ("Olivia", "Liv"), ("Nathan", "Nate"),
    ("Sophia", "Sophie"), ("Alexander", "Alex"), ("Grace", None), ("Zoe", None), ("Ethan", None),
]
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker",
    "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson",
    "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Okafor", "Kowalski", "Nakamura",
    "Lindqvist", "Moreau", "Rossi", "Fischer", "Novak", "Byrne", "Haddad",
]
CITIES = [  # city, state, zip prefix, phone area code
    ("San Francisco", "CA", "941", "415"), ("Los Angeles", "CA", "900", "213"), ("Seattle", "WA", "981", "206"),
    ("Portland", "OR", "972", "503"), ("Denver", "CO", "802", "303"), ("Austin", "TX", "787", "512"),
    ("Chicago", "IL", "606", "312"), ("Boston", "MA", "021", "617"), ("New York", "NY", "100", "212"),
    ("Atlanta", "GA", "303", "404"), ("Miami", "FL", "331", "305"), ("Minneapolis", "MN", "554", "612"),
    ("Philadelphia", "PA", "191", "215"), ("Phoenix", "AZ", "850", "602"), ("Nashville", "TN", "372", "615"),
    ("Pittsburgh", "PA", "152", "412"), ("Columbus", "OH", "432", "614"), ("Raleigh", "NC", "276", "919"),
    ("Salt Lake City", "UT", "841", "801"), ("San Diego", "CA", "921", "619"),
]
STREETS = ["Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Pine St", "Elm St", "Washington Ave", "Park Blvd",
           "Lake Rd", "Hill St", "Sunset Blvd", "River Rd", "Church St", "Highland Ave", "Mill Rd"]
STREET_LONG = {"St": "Street", "Ave": "Avenue", "Dr": "Drive", "Ln": "Lane", "Blvd": "Boulevard", "Rd": "Road"}
DOMAINS = ["example.com", "mail.example", "example.org", "inbox.example", "example.net"]
COMPANIES = ["Northwind Traders", "Contoso Ltd", "Fabrikam Inc", "Tailspin Toys", "Wide World Importers",
             "Adventure Works", "Proseware", "Litware", "Lucerne Publishing", "Coho Winery"]
PRODUCTS = [  # sku, name, category, price, popularity
    ("COF-001", "House Blend Coffee 1kg", "Coffee", 24.00, 10), ("COF-002", "Single Origin Ethiopia 250g", "Coffee", 14.50, 6),
    ("COF-003", "Decaf Colombia 500g", "Coffee", 16.00, 3), ("COF-004", "Espresso Roast 1kg", "Coffee", 26.00, 7),
    ("TEA-001", "Earl Grey 100 bags", "Tea", 9.50, 5), ("TEA-002", "Sencha Green Tea 200g", "Tea", 12.00, 3),
    ("TEA-003", "Chai Spice Loose 250g", "Tea", 11.00, 3), ("EQP-001", "Pour-Over Dripper", "Equipment", 29.00, 3),
    ("EQP-002", "Burr Grinder", "Equipment", 129.00, 1), ("EQP-003", "French Press 1L", "Equipment", 39.00, 2),
    ("EQP-004", "Espresso Machine", "Equipment", 449.00, 0.3), ("EQP-005", "Gooseneck Kettle", "Equipment", 59.00, 1),
    ("ACC-001", "Paper Filters x100", "Accessories", 6.50, 6), ("ACC-002", "Ceramic Mug", "Accessories", 15.00, 3),
    ("ACC-003", "Travel Tumbler", "Accessories", 27.00, 2), ("ACC-004", "Milk Frother", "Accessories", 34.00, 1),
    ("SNK-001", "Almond Biscotti", "Snacks", 7.50, 4), ("SNK-002", "Dark Chocolate Bar", "Snacks", 4.50, 5),
    ("GFT-001", "Gift Card $50", "Gifts", 50.00, 1), ("GFT-002", "Tasting Box", "Gifts", 45.00, 1.5),
]
PAGES = ["Home", "Coffee", "Tea", "Equipment", "Accessories", "About", "Blog: Brewing Guide", "Sale"]
CAMPAIGNS = [None, None, None, ("google", "cpc", "brand"), ("newsletter", "email", "weekly"),
             ("instagram", "social", "spring_launch"), ("partner", "referral", "coffee_club")]


@dataclass(frozen=True, slots=True)
class DemoPlan:
    customers: int = 2000
    seed: int = 42
    end: date = date(2026, 12, 1)  # the history ends as this day starts
    history_days: int = 730


def _ts(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class _Store:
    def __init__(self, plan: DemoPlan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.end = datetime(plan.end.year, plan.end.month, plan.end.day, tzinfo=UTC)  # the day starts: nothing from the future
        self.start = self.end - timedelta(days=plan.history_days)
        self.serial = 0
        self.order_serial = 0
        self.cum_weights = list(itertools.accumulate(p[4] for p in PRODUCTS))

    def message(self, kind: str, at: datetime, **fields: Any) -> dict[str, Any]:
        self.serial += 1
        msg = {"type": kind, "messageId": f"demo-{self.plan.seed}-{self.serial}", "timestamp": _ts(at), **fields}
        return {k: v for k, v in msg.items() if v is not None}

    def context(self, campaign: tuple[str, str, str] | None) -> dict[str, Any] | None:
        if campaign is None:
            return None
        source, medium, name = campaign
        return {"campaign": {"source": source, "medium": medium, "name": name}}

    def visit(self, who: dict[str, Any], at: datetime, pages: int) -> Iterator[dict[str, Any]]:
        ctx = self.context(self.rng.choice(CAMPAIGNS))
        for _ in range(pages):
            page = self.rng.choice(PAGES)
            yield self.message("page", at, name=page, properties={"path": "/" + page.lower().replace(" ", "-").replace(":", "")},
                               context=ctx, **who)
            at += timedelta(seconds=self.rng.randint(10, 240))

    def order(self, who: dict[str, Any], at: datetime, basket: float) -> Iterator[dict[str, Any]]:
        rng = self.rng
        items = {}
        for _ in range(max(1, min(5, int(rng.expovariate(1 / basket)) + 1))):
            sku, name, category, price, _w = rng.choices(PRODUCTS, cum_weights=self.cum_weights)[0]
            entry = items.setdefault(sku, {"product_id": sku, "sku": sku, "name": name, "category": category,
                                           "price": price, "quantity": 0})
            entry["quantity"] += rng.choice((1, 1, 1, 2))
        products = list(items.values())
        for p in products:
            yield self.message("track", at, event="Product Viewed", properties={k: p[k] for k in ("product_id", "sku", "name", "category", "price")}, **who)
            at += timedelta(seconds=rng.randint(20, 180))
            yield self.message("track", at, event="Product Added", properties=dict(p), **who)
        at += timedelta(seconds=rng.randint(30, 300))
        subtotal = round(sum(p["price"] * p["quantity"] for p in products), 2)
        shipping = 0.0 if subtotal >= 50 else 5.95
        yield self.message("track", at, event="Checkout Started", properties={"value": subtotal, "currency": "USD"}, **who)
        self.order_serial += 1
        at += timedelta(seconds=rng.randint(30, 200))
        yield self.message("track", at, event="Order Completed", properties={
            "order_id": f"demo-{self.plan.seed}-o{self.order_serial}", "revenue": round(subtotal + shipping, 2),
            "subtotal": subtotal, "shipping": shipping, "currency": "USD", "products": products,
        }, **who)

    def customer(self, i: int) -> Iterator[dict[str, Any]]:
        rng = self.rng
        first, nickname = rng.choice(FIRST_NAMES)
        last = rng.choice(LAST_NAMES)
        city, state, zip3, area = rng.choice(CITIES)
        street = f"{rng.randint(1, 2400)} {rng.choice(STREETS)}"
        postcode = f"{zip3}{rng.randint(0, 99):02d}"
        email = f"{first}.{last}{rng.choice(['', '', str(rng.randint(1, 99))])}@{rng.choice(DOMAINS)}".lower()
        traits: dict[str, Any] = {
            "email": email, "first_name": first, "last_name": last,
            "address": {"street": street, "city": city, "state": state, "postalCode": postcode, "country": "US"},
        }
        if i < 2000 and rng.random() < 0.6:  # 555-01xx: numbers reserved for fiction, 100 per area code
            traits["phone"] = f"({CITIES[i // 100][3]}) 555-{100 + i % 100:04d}"
        if rng.random() < 0.7:
            traits["birthday"] = date(rng.randint(1950, 2004), rng.randint(1, 12), rng.randint(1, 28)).isoformat()
        user_id, anonymous_id = f"c{i:05d}", f"anon-{self.plan.seed}-{i}"
        signed_up = self.start + timedelta(days=rng.uniform(0, self.plan.history_days - 20))
        # An anonymous first visit, then the sign-up stitches it to the customer.
        yield from self.visit({"anonymousId": anonymous_id}, signed_up - timedelta(minutes=rng.randint(5, 90)),
                              rng.randint(1, 4))
        yield self.message("identify", signed_up, userId=user_id, anonymousId=anonymous_id,
                           traits={**traits, "plan": rng.choice(["free", "free", "club"]),
                                   "created_at": _ts(signed_up)})
        who = {"userId": user_id}
        if rng.random() < 0.08:  # a business customer: a company account
            company = rng.choice(COMPANIES)
            yield self.message("group", signed_up, userId=user_id, groupId=company.lower().replace(" ", "-"),
                               traits={"name": company, "industry": "Hospitality", "plan": "business"})
        # Buying: at the customer's own rate until they drop out (BG/NBD's story).
        rate = rng.gammavariate(0.9, 1 / 45)  # orders per day
        dropout = rng.betavariate(1.2, 4.0)
        basket = rng.gammavariate(2.0, 0.6)
        at = signed_up + timedelta(minutes=rng.randint(1, 30))
        buys = rng.random() < 0.85
        while buys and at < self.end:
            yield from self.order(who, at, basket)
            if rng.random() < dropout:
                break
            at += timedelta(days=rng.expovariate(max(rate, 1e-4)), minutes=rng.randint(0, 600))
        # Browsing that did not end in an order.
        for _ in range(rng.randint(0, 3)):
            yield from self.visit(who, self.start + timedelta(days=rng.uniform(0, self.plan.history_days)),
                                  rng.randint(1, 5))
        # Duplicates, as real data has them.
        roll = rng.random()
        if roll < 0.03:  # the newsletter form: the same e-mail, typed differently -> merged by identity
            when = signed_up + timedelta(days=rng.uniform(1, 200))
            if when < self.end:
                yield self.message("identify", when, anonymousId=f"news-{self.plan.seed}-{i}",
                                   traits={"email": f"  {email.upper()} ", "newsletter": True})
        elif roll < 0.08:  # a guest checkout: nickname, another e-mail, same address -> fuzzy dedup
            when = signed_up + timedelta(days=rng.uniform(1, 300))
            if when < self.end:
                guest = {"anonymousId": f"guest-{self.plan.seed}-{i}"}
                long_street = street.rsplit(" ", 1)
                yield self.message("identify", when, **guest, traits={
                    "email": f"{(nickname or first)[0].lower()}{last.lower()}{rng.randint(70, 99)}@guestmail.example",
                    "first_name": nickname or first, "last_name": last,
                    "address": {"street": f"{long_street[0]} {STREET_LONG.get(long_street[1], long_street[1])}",
                                "city": city, "postalCode": postcode},
                    **({"birthday": traits["birthday"]} if "birthday" in traits else {}),
                })
                yield from self.order(guest, when + timedelta(minutes=3), basket)


def generate(plan: DemoPlan) -> Iterator[dict[str, Any]]:
    """The messages, customer after customer, each customer's in time order."""
    store = _Store(plan)
    for i in range(plan.customers):
        yield from store.customer(i)
