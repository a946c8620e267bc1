"""The package's public surface and its privacy promise: inputs never come back out."""

from __future__ import annotations

import dataclasses

import pytest

import webapp.enrich as enrich
from webapp.enrich.agent import UA_CACHE_SIZE

ADDRESS = "81.2.69.160"
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 session=s3cr3t-t0ken"
)


def test_public_api_is_exported() -> None:
    for name in enrich.__all__:
        assert getattr(enrich, name) is not None, name


@pytest.mark.parametrize("cls", [enrich.Device, enrich.PageUrl, enrich.Source])
def test_results_are_frozen(cls: type) -> None:
    assert dataclasses.is_dataclass(cls)
    assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_address_and_user_agent_never_leave() -> None:
    """Every derived value, as text, holds neither the address nor the raw User-Agent."""
    enrich.load_rules()
    device = enrich.parse_user_agent(USER_AGENT)
    outputs = [
        device,
        enrich.device_class(None, device),
        enrich.is_bot(USER_AGENT),
        enrich.country_of(ADDRESS),
        enrich.visitor_hash(b"k" * 32, "site", ADDRESS, USER_AGENT),
        enrich.source_of(f"https://ref.example/?ip={ADDRESS}", None, "mysite.com"),
        enrich.split_page_url(f"https://mysite.com/?ip={ADDRESS}&ua=s3cr3t-t0ken"),
    ]
    text = repr(outputs)
    assert ADDRESS not in text
    assert "s3cr3t" not in text
    assert "Windows NT 10.0" not in text
    assert enrich.country_of(ADDRESS) == "GB"


def test_cache_sizes_report_bounded_caches() -> None:
    sizes = enrich.cache_sizes()
    assert set(sizes) == {"user_agent", "bot"}
    assert all(0 <= size <= UA_CACHE_SIZE for size in sizes.values())
