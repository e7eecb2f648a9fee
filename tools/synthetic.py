"""Synthetic convenience-store / supermarket members and purchases, for demos and scale tests.

The real datasets (`../shared/data`) have no stores, birthdays, phones or consent, so this
generator supplies them, together with purchase behaviour that the models can learn from:
heterogeneous visit rates, weekly and festival rhythm, favourite items bought again and again,
complementary pairs (milk and bread), and members who slow down and then lapse.
Everything is vectorised numpy; the same seed gives identical output.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from engine.transactions import CANONICAL_COLUMNS, STR_DTYPE, TS_DTYPE

DEFAULT_START = dt.date(2026, 1, 1)
REGIONS: tuple[str, ...] = ("north", "south", "east", "west")
STORES_PER_REGION = 10
N_SKUS = 1000


@dataclass(frozen=True)
class _Category:
    name: str
    label: str  # the shelf label a Chinese store would use
    share: float  # average share of a member's non-favourite lines
    margin: float  # typical gross margin fraction
    products: tuple[tuple[str, float], ...]  # (product, median price in yuan)
    sizes: tuple[str, ...]  # smallest (cheapest) first


# Shares and prices are plausible for a city convenience store / small supermarket, not measured.
CATEGORIES: tuple[_Category, ...] = (
    _Category("dairy", "乳制品", 0.10, 0.25,
              (("pure milk", 6.5), ("yogurt", 7.5), ("soy milk", 4.0), ("flavoured milk", 5.5),
               ("drinking yogurt", 6.0)),
              ("200ml", "250ml", "500ml", "1L", "6x200ml", "12x250ml")),
    _Category("bakery", "烘焙", 0.07, 0.35,
              (("sliced bread", 9.0), ("croissant", 6.5), ("sponge cake", 8.0), ("egg tart", 7.0),
               ("mooncake", 25.0)),
              ("mini", "single", "2-pack", "400g", "4-pack", "family pack")),
    _Category("beverages", "饮料", 0.17, 0.32,
              (("bottled water", 2.0), ("green tea", 3.5), ("cola", 3.5), ("orange juice", 5.5),
               ("canned coffee", 6.0), ("energy drink", 6.0), ("milk tea", 5.0)),
              ("330ml", "500ml", "550ml", "1L", "1.5L", "6-pack")),
    _Category("snacks", "零食", 0.14, 0.33,
              (("potato chips", 7.5), ("biscuits", 8.0), ("sunflower seeds", 9.0), ("peanuts", 8.5),
               ("spicy strips", 3.5), ("chocolate", 12.0), ("dried beef", 22.0)),
              ("small", "70g", "100g", "150g", "200g", "family pack")),
    _Category("fresh_fruit", "水果", 0.07, 0.28,
              (("apples", 12.0), ("bananas", 8.0), ("oranges", 10.0), ("grapes", 16.0),
               ("watermelon slice", 7.0)),
              ("single", "cut cup", "500g", "1kg", "boxed", "premium")),
    _Category("vegetables", "蔬菜", 0.05, 0.22,
              (("bok choy", 4.5), ("tomatoes", 6.0), ("cucumbers", 4.0), ("potatoes", 4.0),
               ("spring onions", 3.0)),
              ("bunch", "300g", "bagged", "500g", "organic", "1kg")),
    _Category("frozen", "冷冻", 0.06, 0.27,
              (("dumplings", 18.0), ("tangyuan", 12.0), ("ice cream", 6.0), ("frozen buns", 15.0),
               ("chicken wings", 22.0)),
              ("single", "300g", "500g", "1kg", "family pack", "party box")),
    _Category("household", "日用", 0.04, 0.20,
              (("tissues", 12.0), ("laundry detergent", 30.0), ("trash bags", 9.0), ("dish soap", 11.0),
               ("batteries", 14.0)),
              ("single", "refill", "2-pack", "3-pack", "6-pack", "value pack")),
    _Category("personal_care", "个护", 0.04, 0.30,
              (("toothpaste", 14.0), ("toothbrush", 9.0), ("shampoo", 35.0), ("body wash", 30.0),
               ("face masks", 25.0)),
              ("travel", "100g", "200ml", "400ml", "2-pack", "value pack")),
    _Category("instant_food", "方便食品", 0.10, 0.28,
              (("instant noodles", 4.5), ("ham sausage", 3.0), ("self-heating hotpot", 19.0),
               ("canned congee", 5.0), ("pickled mustard", 2.0)),
              ("single", "cup", "spicy", "bowl", "5-pack", "family pack")),
    _Category("ready_meals", "熟食", 0.11, 0.40,
              (("rice bento", 16.0), ("oden", 8.0), ("steamed buns", 4.0), ("rice balls", 6.0),
               ("tea eggs", 2.5)),
              ("single", "mild", "spicy", "2-pack", "large", "combo")),
    _Category("alcohol", "酒类", 0.05, 0.30,
              (("beer", 6.0), ("baijiu", 48.0), ("rice wine", 12.0), ("red wine", 60.0)),
              ("125ml", "330ml", "500ml", "500ml bottle", "6-pack", "gift box")),
)
_SIZE_PRICE_STEP = 1.35  # each size up the list costs this much more; the median is the 3rd size
# Made-up brand names: the catalogue must not look like real brands' data.
_BRANDS = ("Huaxia", "Jinfeng", "Lanshan", "Qingyuan", "Taihe", "Xinglong", "Yuelai", "Baifu",
           "Hongyun", "Minghu")
# Obvious complements, boosted so basket completion is learnable (milk -> bread, noodles -> sausage).
COMPLEMENTS: tuple[tuple[str, str], ...] = (
    ("pure milk", "sliced bread"),
    ("instant noodles", "ham sausage"),
    ("beer", "peanuts"),
    ("toothpaste", "toothbrush"),
    ("canned coffee", "croissant"),
    ("rice bento", "green tea"),
    ("soy milk", "steamed buns"),
)
# Festival dates (Chinese calendar). The product's festival calendar for rules is configuration;
# this copy only shapes synthetic demand, and periods outside 2023-2030 simply get no festivals.
FESTIVALS: dict[str, tuple[dt.date, ...]] = {
    "spring_festival": tuple(dt.date.fromisoformat(d) for d in (
        "2023-01-22", "2024-02-10", "2025-01-29", "2026-02-17", "2027-02-06", "2028-01-26",
        "2029-02-13", "2030-02-03")),
    "mid_autumn": tuple(dt.date.fromisoformat(d) for d in (
        "2023-09-29", "2024-09-17", "2025-10-06", "2026-09-25", "2027-09-15", "2028-10-03",
        "2029-09-22", "2030-09-12")),
}


@dataclass(frozen=True)
class _FestivalEffect:
    days_before: int  # stocking-up window before the festival day
    rate_before: float  # visit-rate multiplier in that window
    extra_lines: float  # extra expected lines per basket in that window
    products: tuple[str, ...]  # what people stock up on
    days_after: int  # holiday week: people travel home, stores are quieter
    rate_after: float


_FESTIVAL_EFFECTS: dict[str, _FestivalEffect] = {
    "spring_festival": _FestivalEffect(14, 1.35, 1.0,
                                       ("dumplings", "tangyuan", "sunflower seeds", "baijiu", "chocolate"),
                                       7, 0.7),
    "mid_autumn": _FestivalEffect(7, 1.2, 0.5, ("mooncake",), 0, 1.0),
}
_FESTIVAL_LINE_SHARE = 0.3  # share of non-favourite lines bought for the festival in its window
_OFF_SEASON_PRODUCTS = {"mooncake": 0.03}  # popularity multiplier outside any festival window

# Monday..Sunday visit-rate multipliers: weekends are busier.
_WEEKDAY_RATE = np.array([0.92, 0.90, 0.92, 0.95, 1.05, 1.20, 1.16])
# Relative visits per hour of day: commute peaks on weekdays, a later and flatter weekend.
_HOURS_WEEKDAY = np.array([0.2, 0.1, 0.05, 0.05, 0.05, 0.2, 0.8, 2.5, 3.5, 2.0, 1.2, 1.5,
                           2.8, 2.2, 1.2, 1.1, 1.4, 2.4, 3.0, 2.6, 1.8, 1.2, 0.8, 0.4])
_HOURS_WEEKEND = np.array([0.3, 0.2, 0.1, 0.05, 0.05, 0.1, 0.3, 0.8, 1.5, 2.0, 2.2, 2.3,
                           2.5, 2.2, 2.0, 2.0, 2.1, 2.4, 2.6, 2.4, 2.0, 1.5, 1.0, 0.5])

# Member behaviour. Gamma(0.8) visit rates: ~2% shop almost daily, most weekly-ish, ~18% rarely.
_RATE_SHAPE, _RATE_MEAN, _RATE_MAX = 0.8, 0.15, 2.0
_NEW_MEMBER_SHARE = 0.25  # registered during the period
_NEVER_BUYS_SHARE = 0.12  # of new members: registered, no purchase yet
_FIRST_VISIT_ON_SIGNUP = 0.6  # of new buying members: they sign up at the till
_LAPSE_SHARE = 0.30
_LAPSE_FLOOR = 0.1  # rate multiplier just before the lapse date
_HOME_STORE_SHARE, _SAME_REGION_SHARE = 0.85, 0.10
_COMPLEMENT_PROBABILITY = 0.45
_PROMO_SHARE, _PROMO_PRICE = 0.08, 0.8
_MAX_LINES = 10
_CHUNK_CELLS = 4_000_000  # member-days per chunk when drawing visits: bounds memory


@dataclass
class GroundTruth:
    """How the data was generated: for tests and evaluation only, never a model input."""

    members: pd.DataFrame  # member_id, visit_rate, active_from, lapse_date (NaT: never), never_buys
    complements: pd.DataFrame  # sku, complement_sku
    responses: pd.DataFrame | None = None
    """With coupon campaigns: member_id, response (persuadable | sure_thing | never), redeem_probability,
    extra_spend (yuan a persuadable adds when redeeming) and true_uplift (expected incremental spend)."""


@dataclass
class SyntheticData:
    """Members, their canonical transaction lines, the catalogue and the stores."""

    members: pd.DataFrame
    transactions: pd.DataFrame
    catalogue: pd.DataFrame
    stores: pd.DataFrame
    truth: GroundTruth
    exposures: pd.DataFrame | None = None
    """With coupon campaigns (``with_coupon_responses``): member_id, rule_id, day, group (t | h), redeemed."""


def generate(
    members: int, days: int, seed: int = 0, start: dt.date | None = None
) -> SyntheticData:
    """Generate `members` members and their purchases over `days` days from `start` (2026-01-01).

    Deterministic for a given (members, days, seed, start). Transactions have every canonical
    column and are sorted by ts then member_id, like `read_transactions` output.
    """
    if members < 1 or days < 1:
        raise ValueError(f"members and days must be positive, got members={members}, days={days}")
    start = start or DEFAULT_START
    # Independent streams, so e.g. the catalogue doesn't change with the member count.
    rng_catalogue, rng_members, rng_visits, rng_lines = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    catalogue = _Catalogue.build(rng_catalogue)
    stores = _stores()
    people = _Members.build(rng_members, members, days, start, catalogue)
    calendar = _Calendar.build(start, days)
    visits = _draw_visits(rng_visits, people, calendar)
    transactions = _draw_lines(rng_lines, visits, people, catalogue, calendar, start)
    return SyntheticData(
        members=people.frame,
        transactions=transactions,
        catalogue=catalogue.frame,
        stores=stores,
        truth=GroundTruth(members=people.truth, complements=catalogue.complements),
    )


# --- catalogue ---


@dataclass
class _Catalogue:
    frame: pd.DataFrame
    category: np.ndarray  # category index per sku code
    price: np.ndarray
    partner: np.ndarray  # complement sku code, -1 for none
    popular: _GroupedChoice  # sku by popularity, per category
    favourite: _GroupedChoice  # same, flatter: personal favourites reach into the long tail
    festival: _GroupedChoice  # per festival, over its products (index into festival_skus)
    festival_skus: np.ndarray
    complements: pd.DataFrame

    @classmethod
    def build(cls, rng: np.random.Generator) -> _Catalogue:
        shares = np.array([c.share for c in CATEGORIES])
        counts = np.floor(shares / shares.sum() * N_SKUS).astype(int)
        counts[: N_SKUS - counts.sum()] += 1  # hand out the rounding remainder
        names, products, categories, prices, margins, popularity = [], [], [], [], [], []
        for index, (cat, n) in enumerate(zip(CATEGORIES, counts)):
            per_product = [len(part) for part in np.array_split(np.arange(n), len(cat.products))]
            for (product, median), k in zip(cat.products, per_product):
                combos = rng.choice(len(_BRANDS) * len(cat.sizes), size=k, replace=False)
                for combo in combos:
                    brand, size = divmod(int(combo), len(cat.sizes))
                    names.append(f"{_BRANDS[brand]} {product} {cat.sizes[size]}")
                    products.append(product)
                    categories.append(index)
                    prices.append(median * _SIZE_PRICE_STEP ** (size - 2))
                    margins.append(cat.margin)
            rank = rng.permutation(n) + 1
            popularity.extend(1.0 / rank**0.9)  # Zipf-like within the category
        n_skus = len(names)
        category = np.asarray(categories)
        price = np.asarray(prices) * rng.lognormal(0.0, 0.2, n_skus)
        price = np.maximum(np.round(price, 1), 0.5)
        margin = np.clip(np.asarray(margins) + rng.normal(0.0, 0.05, n_skus), 0.05, 0.6)
        popularity = np.asarray(popularity)
        product = np.asarray(products)
        sku_ids = np.array([f"SKU{i + 1:05d}" for i in range(n_skus)])
        frame = pd.DataFrame(
            {
                "sku": pd.Series(sku_ids, dtype=STR_DTYPE),
                "name": pd.Series(names, dtype=STR_DTYPE),
                "category": pd.Series([CATEGORIES[c].name for c in category], dtype=STR_DTYPE),
                "category_label": pd.Series([CATEGORIES[c].label for c in category], dtype=STR_DTYPE),
                "product": pd.Series(product, dtype=STR_DTYPE),
                "price": price,
                "margin": np.round(margin, 3),
            }
        )

        partner = np.full(n_skus, -1)
        by_popularity = np.argsort(-popularity, kind="stable")
        for a, b in COMPLEMENTS:
            skus_a = by_popularity[product[by_popularity] == a]
            skus_b = by_popularity[product[by_popularity] == b]
            # Popular milk goes with popular bread; every sku of both products gets a partner.
            partner[skus_a] = skus_b[np.arange(len(skus_a)) % len(skus_b)]
            partner[skus_b] = skus_a[np.arange(len(skus_b)) % len(skus_a)]
        has_partner = partner >= 0
        complements = pd.DataFrame(
            {
                "sku": pd.Series(sku_ids[has_partner], dtype=STR_DTYPE),
                "complement_sku": pd.Series(sku_ids[partner[has_partner]], dtype=STR_DTYPE),
            }
        )

        everyday = popularity.copy()
        for off_season, factor in _OFF_SEASON_PRODUCTS.items():
            everyday[product == off_season] *= factor
        festival_skus, festival_group, festival_weight = [], [], []
        for f, effect in enumerate(_FESTIVAL_EFFECTS.values()):
            skus = np.flatnonzero(np.isin(product, effect.products))
            festival_skus.append(skus)
            festival_group.append(np.full(len(skus), f))
            festival_weight.append(popularity[skus])
        festival_skus_all = np.concatenate(festival_skus)
        return cls(
            frame=frame,
            category=category,
            price=price,
            partner=partner,
            popular=_GroupedChoice.from_weights(category, everyday),
            favourite=_GroupedChoice.from_weights(category, everyday**0.5),
            festival=_GroupedChoice.from_weights(np.concatenate(festival_group), np.concatenate(festival_weight)),
            festival_skus=festival_skus_all,
            complements=complements,
        )


@dataclass(frozen=True)
class _GroupedChoice:
    """Many categorical distributions in one array, so each draw can use its own in one call.

    `cum` holds g + (cumulative share within group g); drawing from group g is a searchsorted of
    g + u for u in [0, 1), clipped to the group's index range against float rounding.
    """

    cum: np.ndarray
    start: np.ndarray
    stop: np.ndarray

    @classmethod
    def from_weights(cls, group: np.ndarray, weight: np.ndarray) -> _GroupedChoice:
        """`group` is sorted and covers 0..G-1; every group needs some positive weight."""
        sizes = np.bincount(group)
        start = np.r_[0, np.cumsum(sizes)[:-1]]
        position = np.arange(len(group)) - start[group]
        # Cumulating per row of a padded matrix keeps each group's sums small and exact enough.
        padded = np.zeros((len(sizes), int(sizes.max())))
        padded[group, position] = weight
        within = np.cumsum(padded, axis=1)
        within /= within[:, -1:]
        within[np.arange(len(sizes)), sizes - 1] = 1.0
        cum = group + np.clip(within[group, position], 0.0, 1.0)
        return cls(cum=cum, start=start, stop=start + sizes)

    def draw(self, group: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One index per element of `group`, drawn from that group's distribution using `u`."""
        index = np.searchsorted(self.cum, group + u, side="right")
        return np.clip(index, self.start[group], self.stop[group] - 1)


# --- stores and members ---


def _stores() -> pd.DataFrame:
    n = len(REGIONS) * STORES_PER_REGION
    return pd.DataFrame(
        {
            "store_id": pd.Series([f"S{i + 1:03d}" for i in range(n)], dtype=STR_DTYPE),
            "region": pd.Series(np.repeat(REGIONS, STORES_PER_REGION), dtype=STR_DTYPE),
        }
    )


@dataclass
class _Members:
    frame: pd.DataFrame
    truth: pd.DataFrame
    ids: pa.Array
    rate: np.ndarray  # visits per day at full activity
    active_from: np.ndarray  # first day index with purchases
    lapse_day: np.ndarray  # float day index of the last possible purchase + 1 (inf: never)
    decline_days: np.ndarray  # how long the rate fades before the lapse
    signup_visit: np.ndarray  # bool: first purchase on the registration day
    basket_extra: np.ndarray  # expected lines per basket minus one
    repeat_share: np.ndarray  # share of lines taken from the member's favourites
    home_store: np.ndarray
    region: np.ndarray
    category_choice: _GroupedChoice  # per-member category preferences (index member * C + c)
    favourites: np.ndarray  # sku codes, grouped by member
    favourite_start: np.ndarray
    favourite_count: np.ndarray

    @classmethod
    def build(
        cls, rng: np.random.Generator, n: int, days: int, start: dt.date, catalogue: _Catalogue
    ) -> _Members:
        n_stores = len(REGIONS) * STORES_PER_REGION
        store_weight = rng.lognormal(0.0, 0.4, n_stores)
        home_store = rng.choice(n_stores, size=n, p=store_weight / store_weight.sum())
        region = home_store // STORES_PER_REGION

        new = rng.random(n) < _NEW_MEMBER_SHARE
        registered = np.where(new, rng.integers(0, days, n), -rng.integers(1, 3 * 365, n))
        never_buys = new & (rng.random(n) < _NEVER_BUYS_SHARE)
        active_from = np.maximum(registered, 0)
        signup_visit = new & ~never_buys & (rng.random(n) < _FIRST_VISIT_ON_SIGNUP)

        rate = np.clip(rng.gamma(_RATE_SHAPE, _RATE_MEAN / _RATE_SHAPE, n), 0.003, _RATE_MAX)
        lapses = (rng.random(n) < _LAPSE_SHARE) & ~never_buys
        # Lapse dates run past the period's end, so some members are still fading at its end.
        earliest = active_from + 10
        lapse_day = np.where(
            lapses,
            earliest + rng.random(n) * np.maximum(days + 45 - earliest, 1),
            np.inf,
        )
        lapse_day = np.where(never_buys, active_from.astype(float), lapse_day)
        decline_days = rng.uniform(21, 75, n)

        # Frequent shoppers top up (small baskets); rare ones do a bigger shop.
        basket_extra = np.minimum(
            rng.gamma(2.0, 0.9, n) * np.clip((_RATE_MEAN / rate) ** 0.25, 0.5, 2.0), 6.0
        )
        repeat_share = rng.beta(7.0, 3.0, n)

        shares = np.array([c.share for c in CATEGORIES])
        concentration = rng.uniform(3.0, 12.0, n)
        prefs = rng.gamma(shares[None, :] * concentration[:, None])
        prefs += 1e-12  # an all-zero row (tiny gamma shapes) would have no distribution
        n_categories = len(CATEGORIES)
        member_of_cell = np.repeat(np.arange(n), n_categories)
        category_choice = _GroupedChoice.from_weights(member_of_cell, prefs.ravel())

        favourite_count = 2 + rng.poisson(6.0, n)
        favourite_start = np.r_[0, np.cumsum(favourite_count)[:-1]]
        owner = np.repeat(np.arange(n), favourite_count)
        fav_category = category_choice.draw(owner, rng.random(len(owner))) - owner * n_categories
        favourites = catalogue.favourite.draw(fav_category, rng.random(len(owner)))

        ids = _formatted_ids("M", np.arange(1, n + 1), 7)
        start64 = np.datetime64(start, "D")
        registered_date = start64 + registered.astype("timedelta64[D]")
        age_days = np.clip(rng.normal(36.0, 12.0, n), 16.0, 80.0) * 365.25
        birthday = start64 - age_days.astype("timedelta64[D]")
        frame = pd.DataFrame(
            {
                "member_id": pd.Series(ids, dtype=STR_DTYPE),
                "registered": registered_date.astype(TS_DTYPE),
                "birthday": birthday.astype(TS_DTYPE),
                "region": _taken(pa.array(REGIONS), region),
                "home_store_id": _taken(_formatted_ids("S", np.arange(1, n_stores + 1), 3), home_store),
                "phone": _fake_phones(rng, n),
                "opted_out": rng.random(n) < 0.05,
                "channel_sms": rng.random(n) < 0.85,
                "channel_app": rng.random(n) < 0.60,
                "channel_email": rng.random(n) < 0.20,
            }
        )
        lapse_date = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
        lapse_date[lapses] = start64 + np.floor(lapse_day[lapses]).astype("timedelta64[D]")
        truth = pd.DataFrame(
            {
                "member_id": frame["member_id"],
                "visit_rate": rate,
                "active_from": (start64 + active_from.astype("timedelta64[D]")).astype(TS_DTYPE),
                "lapse_date": lapse_date.astype(TS_DTYPE),
                "never_buys": never_buys,
            }
        )
        return cls(
            frame=frame,
            truth=truth,
            ids=ids,
            rate=rate,
            active_from=active_from,
            lapse_day=lapse_day,
            decline_days=decline_days,
            signup_visit=signup_visit,
            basket_extra=basket_extra,
            repeat_share=repeat_share,
            home_store=home_store,
            region=region,
            category_choice=category_choice,
            favourites=favourites,
            favourite_start=favourite_start,
            favourite_count=favourite_count,
        )


_PHONE_PREFIXES = np.array([130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 150, 151, 152, 153,
                            155, 156, 157, 158, 159, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189])


def _fake_phones(rng: np.random.Generator, n: int) -> pd.Series:
    """Random, unique 11-digit mobile-looking numbers: they only exist to exercise hashing."""
    numbers = rng.choice(_PHONE_PREFIXES, n) * 10**8 + rng.integers(0, 10**8, n)
    while True:
        _, first = np.unique(numbers, return_index=True)
        repeated = np.setdiff1d(np.arange(n), first)
        if not len(repeated):
            break
        numbers[repeated] = rng.choice(_PHONE_PREFIXES, len(repeated)) * 10**8 + rng.integers(
            0, 10**8, len(repeated)
        )
    return pd.Series(pc.cast(pa.array(numbers), pa.string()), dtype=STR_DTYPE)


# --- calendar and visits ---


@dataclass
class _Calendar:
    rate: np.ndarray  # visit-rate multiplier per day
    extra_lines: np.ndarray  # extra expected lines per basket per day
    festival: np.ndarray  # index into _FESTIVAL_EFFECTS of a stocking-up window, -1 outside
    weekend: np.ndarray

    @classmethod
    def build(cls, start: dt.date, days: int) -> _Calendar:
        dates = np.datetime64(start, "D") + np.arange(days)
        weekday = (dates.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
        rate = _WEEKDAY_RATE[weekday].copy()
        extra = np.zeros(days)
        festival = np.full(days, -1)
        for f, (name, effect) in enumerate(_FESTIVAL_EFFECTS.items()):
            for day in FESTIVALS[name]:
                offset = (np.datetime64(day, "D") - dates[0]).astype(np.int64)
                before = slice(max(offset - effect.days_before, 0), max(offset, 0))
                after = slice(max(offset, 0), max(offset + effect.days_after, 0))
                rate[before] *= effect.rate_before
                extra[before] += effect.extra_lines
                festival[before] = f
                rate[after] *= effect.rate_after
        return cls(rate=rate, extra_lines=extra, festival=festival, weekend=weekday >= 5)


@dataclass
class _Visits:
    member: np.ndarray
    day: np.ndarray


def _draw_visits(rng: np.random.Generator, people: _Members, calendar: _Calendar) -> _Visits:
    """Poisson visits per member-day, drawn in chunks of members to bound memory."""
    n, days = len(people.rate), len(calendar.rate)
    day = np.arange(days)
    rows = max(1, _CHUNK_CELLS // days)
    members, visit_days = [], []
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        lapse = people.lapse_day[lo:hi, None]
        # Activity fades linearly over `decline_days` before the lapse: churn shows in the trend.
        fading = np.clip((lapse - day) / people.decline_days[lo:hi, None], _LAPSE_FLOOR, 1.0)
        active = (day >= people.active_from[lo:hi, None]) & (day < lapse)
        intensity = np.where(active, people.rate[lo:hi, None] * calendar.rate * fading, 0.0)
        counts = rng.poisson(intensity)
        m, d = np.nonzero(counts)
        c = counts[m, d]
        members.append(np.repeat(m + lo, c))
        visit_days.append(np.repeat(d, c))
    signup = np.flatnonzero(people.signup_visit)
    members.append(signup)
    visit_days.append(people.active_from[signup])
    return _Visits(member=np.concatenate(members), day=np.concatenate(visit_days))


# --- baskets and lines ---


def _draw_lines(
    rng: np.random.Generator,
    visits: _Visits,
    people: _Members,
    catalogue: _Catalogue,
    calendar: _Calendar,
    start: dt.date,
) -> pd.DataFrame:
    """Turn visits into baskets (time, store, size) and lines (sku, qty, amount), canonical order."""
    n_baskets = len(visits.member)
    day = visits.day
    hours = _GroupedChoice.from_weights(np.repeat([0, 1], 24), np.r_[_HOURS_WEEKDAY, _HOURS_WEEKEND])
    weekend = calendar.weekend[day].astype(np.int64)
    hour = hours.draw(weekend, rng.random(n_baskets))
    hour -= weekend * 24
    seconds = hour * 3600 + rng.integers(0, 3600, n_baskets)
    start_us = np.datetime64(start, "D").astype("datetime64[us]").astype(np.int64)
    ts = start_us + (day.astype(np.int64) * 86_400 + seconds) * 1_000_000
    order = np.lexsort((visits.member, ts))  # canonical order: ts, then member
    member, day, ts = visits.member[order], day[order], ts[order]

    where = rng.random(n_baskets)
    same_region = people.region[member] * STORES_PER_REGION + rng.integers(0, STORES_PER_REGION, n_baskets)
    store = np.where(
        where < _HOME_STORE_SHARE,
        people.home_store[member],
        np.where(
            where < _HOME_STORE_SHARE + _SAME_REGION_SHARE,
            same_region,
            rng.integers(0, len(REGIONS) * STORES_PER_REGION, n_baskets),
        ),
    )
    size = 1 + rng.poisson(people.basket_extra[member] + calendar.extra_lines[day])
    size = np.minimum(size, _MAX_LINES)

    basket, sku, qty = _draw_basket_skus(rng, member, day, size, people, catalogue, calendar)
    unit = catalogue.price[sku] * np.where(rng.random(len(sku)) < _PROMO_SHARE, _PROMO_PRICE, 1.0)
    basket_ids = _formatted_ids("B", np.arange(1, n_baskets + 1), 8)
    store_ids = _formatted_ids("S", np.arange(1, len(REGIONS) * STORES_PER_REGION + 1), 3)
    return pd.DataFrame(
        {
            "member_id": _taken(people.ids, member[basket]),
            "ts": ts[basket].astype("datetime64[us]").astype(TS_DTYPE),
            "sku": _taken(pa.array(catalogue.frame["sku"].to_numpy()), sku),
            "qty": qty,
            "amount": np.round(qty * unit, 2),
            "store_id": _taken(store_ids, store[basket]),
            "basket_id": _taken(basket_ids, basket),
            "category": _taken(pa.array([c.name for c in CATEGORIES]), catalogue.category[sku]),
        },
        columns=list(CANONICAL_COLUMNS),
    )


def _draw_basket_skus(
    rng: np.random.Generator,
    member: np.ndarray,
    day: np.ndarray,
    size: np.ndarray,
    people: _Members,
    catalogue: _Catalogue,
    calendar: _Calendar,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw `size` lines per basket; return (basket, sku, qty) with one line per sku per basket."""
    n_lines = int(size.sum())
    basket = np.repeat(np.arange(len(size), dtype=np.int32), size)
    line_member = member.astype(np.int32)[basket]
    sku = np.empty(n_lines, dtype=np.int32)

    favourite = rng.random(n_lines) < people.repeat_share[line_member]
    fm = line_member[favourite]
    # Skewed slot choice: a member's first favourites come back most often.
    slot = np.floor(people.favourite_count[fm] * rng.random(len(fm)) ** 1.7).astype(np.int64)
    sku[favourite] = people.favourites[people.favourite_start[fm] + slot]
    del fm, slot

    festival = calendar.festival[day][basket]
    for_festival = ~favourite & (festival >= 0) & (rng.random(n_lines) < _FESTIVAL_LINE_SHARE)
    picked = catalogue.festival.draw(festival[for_festival], rng.random(int(for_festival.sum())))
    sku[for_festival] = catalogue.festival_skus[picked]
    del festival, picked

    browse = ~(favourite | for_festival)
    del favourite, for_festival
    bm = line_member[browse]
    del line_member
    category = people.category_choice.draw(bm, rng.random(len(bm))) - bm * len(CATEGORIES)
    sku[browse] = catalogue.popular.draw(category, rng.random(len(bm)))
    del bm, category, browse

    # Complements: the line after a milk line often becomes bread (from the original draws).
    partner = catalogue.partner[sku[:-1]]
    follow = (
        (basket[1:] == basket[:-1])
        & (partner >= 0)
        & (rng.random(n_lines - 1) < _COMPLEMENT_PROBABILITY)
    )
    sku[1:][follow] = partner[follow]
    del partner, follow

    qty = 1.0 + (rng.random(n_lines) < 0.15) * rng.geometric(0.55, n_lines)
    # One line per sku per basket, as a till prints it: repeated draws add to the quantity.
    n_skus = len(catalogue.price)
    key, inverse = np.unique(basket.astype(np.int64) * n_skus + sku, return_inverse=True)
    qty = np.bincount(inverse, weights=qty)
    return (key // n_skus).astype(np.int32), (key % n_skus).astype(np.int32), qty


def _formatted_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Ids like M0000042, zero-padded to `width` digits (wider if the numbers need it)."""
    digits = pc.cast(pa.array(np.asarray(numbers, dtype=np.int64)), pa.string())
    width = max(width, len(str(int(numbers.max())))) if len(numbers) else width
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(digits, width, padding="0"), "")


def _taken(dictionary: pa.Array, codes: np.ndarray) -> pd.Series:
    """dictionary[codes] as a pandas string column, without a Python string per row."""
    indices = pa.array(np.asarray(codes, dtype=np.int32))
    return pd.Series(pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.string()), dtype=STR_DTYPE)


# --- coupon campaigns with known heterogeneous responses ---

CAMPAIGN_RULE = "synthetic-coupon"
ATTRIBUTION_DAYS = 14
_RESPONSE_TYPES = ("persuadable", "sure_thing", "never")


def with_coupon_responses(
    data: SyntheticData,
    campaign_days: int = 4,
    every_days: int = 21,
    reach: float = 0.6,
    holdout: float = 0.5,
    seed: int = 0,
) -> SyntheticData:
    """``data`` with coupon campaigns whose effects are known, for validating the response model.

    On ``campaign_days`` days, ``every_days`` apart and ending ``ATTRIBUTION_DAYS`` before the data
    ends, a ``reach`` share of the members registered by then meets the rule ``synthetic-coupon``:
    a ``holdout`` share is held out (gets nothing), the rest get a coupon. Each member has one of
    three responses, drawn from what they do (so a model can learn it from their features):

    * **persuadable** (85% of the occasional third by visit rate, 40% of the middle third):
      redeems with a probability of 0.5-0.8 on an extra visit in the attribution window that would
      not have happened otherwise, spending 50-110 yuan more (their uplift);
    * **sure thing** (80% of the frequent third, 40% of the middle): redeems with 0.5-0.9 on a
      visit they make anyway: spend unchanged, uplift 0;
    * **never** (the rest, 15-20% of each third): never redeems, uplift 0.

    ``truth.responses`` has each member's type and true expected uplift; ``exposures`` the records
    the service keeps (member, rule, day, group, redeemed). Deterministic for a given seed.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 15]))
    members = data.members["member_id"].to_numpy(dtype=object)
    n = len(members)
    rate = data.truth.members.set_index("member_id").loc[members, "visit_rate"].to_numpy(dtype=float)
    third = np.searchsorted(np.quantile(rate, [1 / 3, 2 / 3]), rate)  # 0 occasional .. 2 frequent shoppers
    u = rng.random(n)
    persuadable = np.array([0.85, 0.40, 0.0])[third]
    sure_thing = np.array([0.0, 0.40, 0.80])[third]
    kind = np.where(u < persuadable, 0, np.where(u < persuadable + sure_thing, 1, 2))
    redeem_p = np.where(kind == 0, rng.uniform(0.5, 0.8, n), np.where(kind == 1, rng.uniform(0.5, 0.9, n), 0.0))
    extra = np.where(kind == 0, rng.uniform(50.0, 110.0, n), 0.0)
    responses = pd.DataFrame({
        "member_id": pd.Series(members, dtype=STR_DTYPE),
        "response": pd.Series(np.array(_RESPONSE_TYPES)[kind], dtype=STR_DTYPE),
        "redeem_probability": np.round(redeem_p, 4),
        "extra_spend": np.round(extra, 2),
        "true_uplift": np.round(redeem_p * extra, 4),
    })

    lines = data.transactions
    first = lines["ts"].min().normalize()
    last = lines["ts"].max().normalize()
    end = last - pd.Timedelta(days=ATTRIBUTION_DAYS)
    days = [end - pd.Timedelta(days=every_days * k) for k in range(campaign_days)][::-1]
    days = [d for d in days if d > first + pd.Timedelta(days=30)]
    registered = data.members.set_index("member_id").loc[members, "registered"].to_numpy(dtype="datetime64[ns]")
    index = {m: i for i, m in enumerate(members)}
    visits = lines.drop_duplicates("basket_id")[["member_id", "ts", "store_id"]]
    exposures, extra_lines = [], []
    catalogue = data.catalogue
    for day in days:
        eligible = np.flatnonzero((registered < np.datetime64(day)) & (rng.random(n) < reach))
        treated = rng.random(len(eligible)) >= holdout
        window = visits[(visits["ts"] >= day) & (visits["ts"] < day + pd.Timedelta(days=ATTRIBUTION_DAYS))]
        visited = set(window["member_id"].astype(str))
        redeemed = np.zeros(len(eligible), dtype=bool)
        for j, (i, t) in enumerate(zip(eligible.tolist(), treated.tolist())):
            if not t or kind[i] == 2 or rng.random() >= redeem_p[i]:
                continue
            member = str(members[i])
            if kind[i] == 1:
                redeemed[j] = member in visited  # redeemed on a visit they made anyway
                continue
            redeemed[j] = True  # a persuadable: an extra basket, worth extra[i], in the window
            when = day + pd.Timedelta(days=int(rng.integers(0, ATTRIBUTION_DAYS)), hours=int(rng.integers(8, 21)))
            skus = catalogue.sample(n=3, random_state=int(rng.integers(0, 2**31)))
            share = rng.dirichlet(np.ones(3)) * extra[i]
            for k, (sku, category) in enumerate(zip(skus["sku"], skus["category"])):
                extra_lines.append((member, when, sku, 1.0, round(float(share[k]), 2), None,
                                    f"CP{day:%Y%m%d}-{i}", category))
        exposures.append(pd.DataFrame({
            "member_id": members[eligible].astype(str), "rule_id": CAMPAIGN_RULE, "day": day.date(),
            "group": np.where(treated, "t", "h"), "redeemed": redeemed,
        }))
    frame = pd.concat(exposures, ignore_index=True) if exposures else pd.DataFrame(
        columns=["member_id", "rule_id", "day", "group", "redeemed"])
    transactions = lines
    if extra_lines:
        added = pd.DataFrame(extra_lines, columns=list(CANONICAL_COLUMNS))
        added["store_id"] = added["member_id"].map(
            data.members.set_index("member_id")["home_store_id"].astype(object).to_dict())
        for column in ("member_id", "sku", "store_id", "basket_id", "category"):
            added[column] = added[column].astype(STR_DTYPE)
        added["ts"] = added["ts"].astype(TS_DTYPE)
        transactions = pd.concat([lines, added], ignore_index=True)
        transactions = transactions.sort_values(["ts", "member_id"], kind="stable").reset_index(drop=True)
    _ = index
    truth = GroundTruth(members=data.truth.members, complements=data.truth.complements, responses=responses)
    return SyntheticData(members=data.members, transactions=transactions, catalogue=data.catalogue,
                         stores=data.stores, truth=truth, exposures=frame)
