"""The catalogue: the items a recommender may ever return.

Transaction logs carry lines that are not products: postage, bank charges, manual adjustments,
gift vouchers. Online Retail's are listed in ``NON_PRODUCT_CODES``; they are kept out of the
catalogue so no model learns from them or recommends them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

NON_PRODUCT_CODES: frozenset[str] = frozenset({
    "POST",  # postage
    "DOT",  # dotcom postage
    "M", "m",  # manual adjustment
    "C2",  # carriage
    "D",  # discount
    "S",  # samples
    "B",  # adjust bad debt
    "BANK CHARGES",
    "AMAZONFEE",
    "CRUK",  # CRUK commission
    "PADS",  # "pads to match all cushions": a 0.001 placeholder line
})
"""Stock codes that are fees, adjustments or placeholders, not products (seen in Online Retail)."""

NON_PRODUCT_PREFIXES: tuple[str, ...] = ("gift_",)
"""Prefixes of non-product codes (Online Retail's gift vouchers ``gift_0001_10`` ...)."""


def is_product(sku: str) -> bool:
    """Whether a stock code is a product that may be recommended."""
    return sku not in NON_PRODUCT_CODES and not sku.startswith(NON_PRODUCT_PREFIXES)


@dataclass(frozen=True)
class Catalogue:
    """The recommendable items in a fixed order: position ``i`` is column ``i`` of every matrix."""

    skus: np.ndarray  # object array of str, sorted
    index: dict[str, int] = field(repr=False, compare=False)

    @classmethod
    def from_skus(cls, skus: Iterable[str]) -> Catalogue:
        """The products among ``skus`` (non-product codes dropped), deduplicated and sorted."""
        unique = sorted({str(s) for s in skus if isinstance(s, str) and s and is_product(s)})
        array = np.array(unique, dtype=object)
        return cls(skus=array, index={s: i for i, s in enumerate(unique)})

    def __len__(self) -> int:
        return len(self.skus)

    def __contains__(self, sku: object) -> bool:
        return sku in self.index

    def positions(self, skus: Sequence[str] | Iterable[str]) -> np.ndarray:
        """Catalogue positions of the known ``skus`` (unknown or non-product items are skipped)."""
        index = self.index
        return np.fromiter((index[s] for s in skus if s in index), dtype=np.int64)
