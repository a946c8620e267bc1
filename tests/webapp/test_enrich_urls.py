"""split_page_url and source_of: what a report may keep from page and referrer URLs."""

from __future__ import annotations

import pytest

from db.limits import PATH_MAX
from webapp.enrich import DIRECT, PageUrl, Source, source_of, split_page_url

HN = "news.ycombinator.com"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/", PageUrl("example.com", "/")),
        ("https://www.Example.COM:8443/a/b/?x=1#top", PageUrl("example.com", "/a/b/")),
        ("https://example.com", PageUrl("example.com", "/")),
        ("http://user:secret@www.example.com/p", PageUrl("example.com", "/p")),
        ("http://[2001:db8::1]:8080/v6", PageUrl("[2001:db8::1]", "/v6")),
        ("/only/a/path?utm_source=x", PageUrl(None, "/only/a/path", utm_source="x")),
        ("relative/path", PageUrl(None, "/relative/path")),
        (
            "https://ex.com/?utm_source=news&utm_medium=email&utm_campaign=spring"
            "&utm_term=shoes&utm_content=banner&other=1",
            PageUrl("ex.com", "/", "news", "email", "spring", "shoes", "banner"),
        ),
        # Empty or blank values are absent; the first non-empty value wins; names are
        # case-insensitive; values are percent-decoded and stripped.
        ("https://ex.com/?utm_source=&utm_medium=%20%20", PageUrl("ex.com", "/")),
        ("https://ex.com/?utm_source=a&utm_source=b", PageUrl("ex.com", "/", utm_source="a")),
        ("https://ex.com/?UTM_Source=%20Big%20News%20", PageUrl("ex.com", "/", "Big News")),
        ("https://ex.com/?utm_source=a%00b", PageUrl("ex.com", "/", utm_source="ab")),
        # Malformed: no exception, nothing made up.
        ("http://[::1", PageUrl(None, "/")),
        ("http://[not-v6]/x", PageUrl(None, "/")),
        ("", PageUrl(None, "/")),
        ("https://ex.com/a\x00b", PageUrl("ex.com", "/ab")),
        ("https://ex.com/ünï/漢字", PageUrl("ex.com", "/ünï/漢字")),
    ],
)
def test_split_page_url(url: str, expected: PageUrl) -> None:
    assert split_page_url(url) == expected


def test_long_values_are_cut() -> None:
    page = split_page_url(f"https://ex.com/{'p' * 5000}?utm_campaign={'c' * 5000}")
    assert page.path == "/" + "p" * (PATH_MAX - 1)
    assert page.utm_campaign == "c" * 255


@pytest.mark.parametrize(
    ("referrer", "expected"),
    [
        # Well-known names.
        ("https://www.google.com/", Source("Google", "google.com/")),
        ("https://www.google.co.uk/search?q=secret", Source("Google", "google.co.uk/search")),
        ("https://google.com.au/", Source("Google", "google.com.au/")),
        ("https://www.google.de", Source("Google", "google.de/")),
        ("https://www.bing.com/search?q=x", Source("Bing", "bing.com/search")),
        ("https://duckduckgo.com/", Source("DuckDuckGo", "duckduckgo.com/")),
        ("https://search.yahoo.com/search", Source("Yahoo", "search.yahoo.com/search")),
        ("https://yandex.ru/search/", Source("Yandex", "yandex.ru/search")),
        ("https://www.baidu.com/s?wd=x", Source("Baidu", "baidu.com/s")),
        ("https://m.facebook.com/", Source("Facebook", "m.facebook.com/")),
        ("https://l.facebook.com/l.php?u=x", Source("Facebook", "l.facebook.com/l.php")),
        ("https://fb.me/abc", Source("Facebook", "fb.me/abc")),
        ("https://l.instagram.com/", Source("Instagram", "l.instagram.com/")),
        ("https://twitter.com/someone", Source("Twitter", "twitter.com/someone")),
        ("https://x.com/someone/", Source("Twitter", "x.com/someone")),
        ("https://t.co/AbC123", Source("Twitter", "t.co/AbC123")),
        ("https://www.linkedin.com/feed/", Source("LinkedIn", "linkedin.com/feed")),
        ("https://lnkd.in/xyz", Source("LinkedIn", "lnkd.in/xyz")),
        ("https://old.reddit.com/r/python/", Source("Reddit", "old.reddit.com/r/python")),
        ("https://www.youtube.com/watch?v=1", Source("YouTube", "youtube.com/watch")),
        ("https://youtu.be/xyz", Source("YouTube", "youtu.be/xyz")),
        ("https://github.com/org/repo", Source("GitHub", "github.com/org/repo")),
        ("https://news.ycombinator.com/item?id=1", Source("Hacker News", HN + "/item")),
        ("https://en.m.wikipedia.org/wiki/X", Source("Wikipedia", "en.m.wikipedia.org/wiki/X")),
        # Look-alikes are not the named source.
        ("https://notgithub.com/", Source("notgithub.com", "notgithub.com/")),
        ("https://googleblog.com/", Source("googleblog.com", "googleblog.com/")),
        # Anything else: the host without www.
        ("https://www.blog.example.org/p/?a#c", Source("blog.example.org", "blog.example.org/p")),
        ("http://Example.NET:8080/", Source("example.net", "example.net/")),
        # Apps name a source by host; their "path" is not shown.
        ("android-app://com.slack/channel/1", Source("com.slack", "com.slack")),
        # Direct: nothing, nothing usable, or the site itself.
        (None, Source(DIRECT)),
        ("", Source(DIRECT)),
        ("not a url", Source(DIRECT)),
        ("about:blank", Source(DIRECT)),
        ("file:///home/me/page.html", Source(DIRECT)),
        ("http://[::1", Source(DIRECT)),
        ("https://mysite.com/other-page", Source(DIRECT)),
        ("https://www.mysite.com:443/", Source(DIRECT)),
        ("\x00\x00", Source(DIRECT)),
    ],
)  # fmt: skip
def test_source_from_referrer(referrer: str | None, expected: Source) -> None:
    assert source_of(referrer, None, "www.mysite.com") == expected


@pytest.mark.parametrize(
    ("referrer", "utm_source", "site_host", "expected"),
    [
        # utm_source wins over the referrer's name; the referrer is still shown.
        ("https://google.com/", "newsletter", "mysite.com", Source("newsletter", "google.com/")),
        (None, "newsletter", "mysite.com", Source("newsletter")),
        ("https://mysite.com/x", " spring\x00 ", "mysite.com", Source("spring")),
        # A blank utm_source is absent.
        ("https://t.co/x", "  ", "mysite.com", Source("Twitter", "t.co/x")),
        (None, "", None, Source(DIRECT)),
        # Without the site's host every external host counts.
        ("https://mysite.com/x", None, None, Source("mysite.com", "mysite.com/x")),
        (None, "u" * 1000, None, Source("u" * 255)),
    ],
)  # fmt: skip
def test_utm_source_and_site_host(
    referrer: str | None, utm_source: str | None, site_host: str | None, expected: Source
) -> None:
    assert source_of(referrer, utm_source, site_host) == expected


@pytest.mark.parametrize(
    "text",
    [
        "http://" + "a" * 100_000 + ".com/",
        "https://ex.com/" + "/" * 10_000,
        "https://ex.com/?" + "&".join(["utm_source=x"] * 10_000),
        "https://ex.com:99999999/",
        "https://[fe80::1%25eth0]/",
        "http://%zz%/",
        "\ud800://\ud800/\ud800",
        "é漢字🙂" * 1000,
        "https://" + "." * 300 + "/",
        "javascript:alert(1)",
    ],
)
def test_hostile_urls_never_raise(text: str) -> None:
    page = split_page_url(text)
    assert page.path.startswith("/")
    assert len(page.path) <= PATH_MAX
    source = source_of(text, text, text)
    assert len(source.source) <= 255
    assert source.referrer is None or len(source.referrer) <= PATH_MAX
