"""The membership cache (db/rollups/membership.py) on its own: what it reports unknown
and which buckets it forgets first."""

from __future__ import annotations

from db.rollups.membership import MemberCache, grouped


def test_keys_are_grouped_by_bucket() -> None:
    keys = {("s", 1, "b"), ("s", 1, "a"), ("t", 1, "a")}
    groups = grouped(keys)
    assert {b: sorted(m) for b, m in groups.items()} == {("s", 1): ["a", "b"], ("t", 1): ["a"]}


def test_only_rows_not_remembered_are_unknown() -> None:
    cache = MemberCache(10)
    every = grouped({("s", 1, "a"), ("s", 1, "c"), ("t", 1, "a")})
    assert cache.unknown(every) == every
    cache.remember(grouped({("s", 1, "a"), ("s", 1, "b")}))
    assert cache.size == 2
    assert cache.unknown(every) == {("s", 1): ["c"], ("t", 1): ["a"]}
    assert cache.unknown(grouped({("s", 1, "b")})) == {}


def test_the_least_recently_used_bucket_is_forgotten_first() -> None:
    cache = MemberCache(3)
    cache.remember(grouped({("s", 1, "a"), ("s", 1, "b")}))
    cache.remember(grouped({("t", 1, "x")}))
    cache.remember(grouped({("s", 1, "a")}))  # s is used again: t is now the oldest
    cache.remember(grouped({("u", 1, "y")}))  # 4 rows: t's goes
    assert cache.size == 3
    assert cache.unknown(grouped({("t", 1, "x"), ("s", 1, "b"), ("u", 1, "y")})) == {
        ("t", 1): ["x"]
    }


def test_a_cache_of_size_zero_remembers_nothing() -> None:
    cache = MemberCache(0)
    cache.remember(grouped({("s", 1, "a")}))
    assert cache.size == 0 and cache.unknown(grouped({("s", 1, "a")})) == {("s", 1): ["a"]}
