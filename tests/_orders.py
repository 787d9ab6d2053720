"""Orders of buyers from sellers whose disputes are the sellers' (the entity tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def seller_orders(rng: np.random.Generator, n: int = 6000) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` orders of 2,000 buyers (a country each, no effect) from 200 sellers of Zipf sizes,
    each with a rating and its own dispute rate; returns the orders and the sellers' rates."""
    buyer = rng.integers(0, 2000, n)
    sizes = 1.0 / np.arange(1, 201) ** 1.05
    seller = rng.choice(200, n, p=sizes / sizes.sum())
    rate = 1 / (1 + np.exp(-(-2.5 + rng.normal(0, 1.0, 200))))
    orders = pd.DataFrame(
        {
            "buyer_id": buyer,
            "buyer_country": rng.choice(["DE", "FR", "IT"], 2000)[buyer],
            "seller_id": seller,
            "seller_rating": np.round(rng.uniform(3, 5, 200), 1)[seller],
            "price": np.round(rng.gamma(2, 20, n), 2),
            "dispute": (rng.random(n) < rate[seller]).astype(int),
        }
    )
    return orders, rate
