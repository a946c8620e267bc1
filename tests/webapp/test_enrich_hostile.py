"""Property tests: no input string makes any enrichment function raise or misbehave."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

import webapp.enrich as enrich
from db.limits import PATH_MAX

# Any text, plus text built from the characters URL, address and header parsers care about.
SPECIAL = st.text(alphabet=st.sampled_from(list("[]:/.,%@?#&=* \x00fF0129abwx")), max_size=60)
ANY_TEXT = st.one_of(st.text(max_size=300), SPECIAL)
ALLOW = enrich.ForwardedAllow.parse("127.0.0.1, 10.0.0.0/8, ::1")
EXAMPLES = settings(max_examples=300, deadline=None)


@EXAMPLES
@given(peer=st.one_of(st.none(), ANY_TEXT), header=st.one_of(st.none(), ANY_TEXT))
def test_client_address(peer: str | None, header: str | None) -> None:
    address = enrich.client_address(peer, header, ALLOW)
    assert address is None or enrich.normalize_address(address) == address


@EXAMPLES
@given(value=ANY_TEXT)
def test_allow_list_parse(value: str) -> None:
    enrich.ForwardedAllow.parse(value).trusts(value)


@EXAMPLES
@given(ua=ANY_TEXT)
def test_user_agent_and_bots(ua: str) -> None:
    device = enrich.parse_user_agent(ua)
    assert enrich.device_class(None, device) in (None, "Mobile", "Tablet", "Desktop")
    assert enrich.is_bot(ua) in (True, False)


@EXAMPLES
@given(address=st.one_of(st.none(), ANY_TEXT, st.ip_addresses().map(str)))
def test_country(address: str | None) -> None:
    code = enrich.country_of(address)
    assert code is None or re.fullmatch(r"[A-Z]{2}", code)


@EXAMPLES
@given(url=ANY_TEXT, referrer=st.one_of(st.none(), ANY_TEXT), site=st.one_of(st.none(), ANY_TEXT))
def test_urls_and_sources(url: str, referrer: str | None, site: str | None) -> None:
    page = enrich.split_page_url(url)
    assert page.path.startswith("/") and len(page.path) <= PATH_MAX
    source = enrich.source_of(referrer, url, site)
    assert source.source and len(source.source) <= 255
    assert "?" not in (source.referrer or "")
