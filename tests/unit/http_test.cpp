#include "hfwarm/http/client.hpp"
#include "hfwarm/http/url.hpp"

#include <doctest/doctest.h>

using namespace hfwarm::http;

TEST_CASE("quote percent-encodes like Python's urllib.parse.quote") {
    CHECK(quote("config.json") == "config.json");
    CHECK(quote("a b/c#d+e.txt") == "a%20b/c%23d%2Be.txt");
    CHECK(quote("refs/pr/1", "") == "refs%2Fpr%2F1");
    CHECK(quote("sub dir/model-00001_of~2.safetensors") == "sub%20dir/model-00001_of~2.safetensors");
    CHECK(quote("?&=%;:@$,") == "%3F%26%3D%25%3B%3A%40%24%2C");
    // UTF-8 bytes, upper-case hex: quote("日本/ü.txt")
    CHECK(quote("\xe6\x97\xa5\xe6\x9c\xac/\xc3\xbc.txt") == "%E6%97%A5%E6%9C%AC/%C3%BC.txt");
}

TEST_CASE("an https URL is split into host, port and request target") {
    auto url = parseUrl("https://Hub.Example.COM/api/models/gpt2/revision/main?blobs=true#frag");
    REQUIRE(url.has_value());
    CHECK(url->scheme == "https");
    CHECK(url->host == "hub.example.com");
    CHECK(url->port == 443);
    CHECK(url->path == "/api/models/gpt2/revision/main");
    CHECK(url->target == "/api/models/gpt2/revision/main?blobs=true");
    CHECK(url->authority() == "hub.example.com:443");

    auto loopback = parseUrl("http://127.0.0.1:8080");
    REQUIRE(loopback.has_value());
    CHECK(loopback->port == 8080);
    CHECK(loopback->target == "/");

    auto v6 = parseUrl("https://[::1]:9443/x");
    REQUIRE(v6.has_value());
    CHECK(v6->host == "::1");
    CHECK(v6->authority() == "[::1]:9443");
}

TEST_CASE("URLs that cannot be requested are refused with the URL named, query hidden") {
    auto relative = parseUrl("/api/models");
    REQUIRE_FALSE(relative.has_value());
    auto ftp = parseUrl("ftp://example.com/file?secret=1");
    REQUIRE_FALSE(ftp.has_value());
    CHECK(ftp.error().message.find("ftp://example.com/file") != std::string::npos);
    CHECK(ftp.error().message.find("secret") == std::string::npos);
    CHECK_FALSE(parseUrl("https://user:pw@example.com/").has_value());
}

TEST_CASE("redaction drops query, fragment and user info") {
    CHECK(redactUrl("https://cdn.example.com/blob/abc?X-Amz-Signature=s3cr3t") ==
          "https://cdn.example.com/blob/abc");
    CHECK(redactUrl("https://u:p@cdn.example.com/x#y") == "https://cdn.example.com/x");
    CHECK(redactUrl("not a url?token=1") == "not a url");
}

TEST_CASE("a port is a number from 1 to 65535, never wrapped") {
    CHECK(parsePort("1") == 1);
    CHECK(parsePort("65535") == 65535);
    for (const char* bad : {"0", "65536", "99999", "", "+80", "-1", "0x50", "8O", "123456789012345678901"})
        CHECK_FALSE(parsePort(bad).has_value());
    auto wrapped = parseUrl("https://127.0.0.1:99999/x");
    REQUIRE_FALSE(wrapped.has_value());
    CHECK(wrapped.error().message.find("invalid port") != std::string::npos);
    CHECK_FALSE(parseUrl("https://127.0.0.1:0/").has_value());
    CHECK_FALSE(parseUrl("https://127.0.0.1:65536/").has_value());
}

TEST_CASE("userinfo is masked, the rest of the URL kept") {
    CHECK(maskUserinfo("https://user:pw@hub.example.com:8443/x?q=1") ==
          "https://***@hub.example.com:8443/x?q=1");
    CHECK(maskUserinfo("https://hub.example.com/a@b") == "https://hub.example.com/a@b");
    CHECK(maskUserinfo("http://a:b@c@host/") == "http://***@host/");
    CHECK(maskUserinfo("not a url") == "not a url");
}

TEST_CASE("authorities are normalized with the effective port") {
    CHECK(normalizeAuthority("https://huggingface.co") == "huggingface.co:443");
    CHECK(normalizeAuthority("https://HF.example:8443/prefix/") == "hf.example:8443");
    CHECK(normalizeAuthority("http://proxy.local") == "proxy.local:80");
    CHECK(normalizeAuthority("huggingface.co") == "huggingface.co:443");
    CHECK(normalizeAuthority("127.0.0.1:4443") == "127.0.0.1:4443");
}

TEST_CASE("a relative redirect keeps the host and the query of the request") {
    auto target = redirectTarget("https://hub.test/api/models/old/revision/main?blobs=true",
                                 "/api/models/new/revision/main");
    REQUIRE(target.has_value());
    CHECK(target->url == "https://hub.test/api/models/new/revision/main?blobs=true");
    CHECK(target->relative);
    CHECK_FALSE(target->crossHost);

    auto withQuery = redirectTarget("https://hub.test/a?x=1", "/b?y=2");
    REQUIRE(withQuery.has_value());
    CHECK(withQuery->url == "https://hub.test/b?y=2");

    auto pathRelative = redirectTarget("https://hub.test/org/name/resolve/main/a/b.txt", "../c.txt");
    REQUIRE(pathRelative.has_value());
    CHECK(pathRelative->url == "https://hub.test/org/name/resolve/main/c.txt");
}

TEST_CASE("an absolute redirect to the CDN crosses hosts; a different port counts as another host") {
    auto cdn = redirectTarget("https://hub.test/gpt2/resolve/main/model.bin",
                              "https://cdn.test/repos/ab/cd?X-Amz-Signature=x#frag");
    REQUIRE(cdn.has_value());
    CHECK_FALSE(cdn->relative);
    CHECK(cdn->crossHost);
    CHECK(cdn->url == "https://cdn.test/repos/ab/cd?X-Amz-Signature=x");

    auto port = redirectTarget("https://127.0.0.1:4443/x", "https://127.0.0.1:4444/y");
    REQUIRE(port.has_value());
    CHECK(port->crossHost);

    auto same = redirectTarget("https://hub.test/x", "https://HUB.test:443/y");
    REQUIRE(same.has_value());
    CHECK_FALSE(same->crossHost);
}

TEST_CASE("a redirect from https to http is refused with a clear error") {
    auto downgrade = redirectTarget("https://hub.test/x", "http://cdn.test/y?sig=1");
    REQUIRE_FALSE(downgrade.has_value());
    CHECK(downgrade.error().message.find("refusing redirect from https to http") != std::string::npos);
    CHECK(downgrade.error().message.find("sig=1") == std::string::npos);
    // Upgrading is fine.
    auto upgrade = redirectTarget("http://hub.test/x", "https://hub.test/y");
    REQUIRE(upgrade.has_value());
    CHECK(upgrade->crossHost);
}

TEST_CASE("unusable Location values are errors") {
    CHECK_FALSE(redirectTarget("https://hub.test/x", "").has_value());
    CHECK_FALSE(redirectTarget("https://hub.test/x", "https://exa mple.com/").has_value());
    CHECK_FALSE(redirectTarget("https://hub.test/x", "ftp://files.test/y").has_value());
}

TEST_CASE("redirect policies decide which hops are followed") {
    RedirectTarget relative{"https://hub.test/b", true, false};
    RedirectTarget absolute{"https://cdn.test/b", false, true};
    CHECK_FALSE(followsRedirect(RedirectPolicy::None, relative));
    CHECK(followsRedirect(RedirectPolicy::RelativeOnly, relative));
    CHECK_FALSE(followsRedirect(RedirectPolicy::RelativeOnly, absolute));
    CHECK(followsRedirect(RedirectPolicy::All, absolute));
}

TEST_CASE("the token goes only over https, only to the endpoint host, never after crossing hosts") {
    const std::string hub = normalizeAuthority("https://hub.test");
    auto hubUrl = parseUrl("https://hub.test/api/models/x").value();
    auto cdnUrl = parseUrl("https://cdn.test/blob").value();
    auto plain = parseUrl("http://hub.test:443/api/models/x").value();
    auto otherPort = parseUrl("https://hub.test:8443/x").value();
    CHECK(sendsToken(hubUrl, hub, false, false));
    CHECK_FALSE(sendsToken(hubUrl, hub, true, false));
    CHECK_FALSE(sendsToken(cdnUrl, hub, false, false));
    CHECK_FALSE(sendsToken(plain, hub, false, false));
    CHECK_FALSE(sendsToken(otherPort, hub, false, false));
    CHECK_FALSE(sendsToken(hubUrl, "", false, false));
}

TEST_CASE("with token_over_http the token goes over http to the endpoint host only") {
    const std::string cache = normalizeAuthority("http://cache.lan:8080");
    auto cacheUrl = parseUrl("http://cache.lan:8080/api/models/x").value();
    auto elsewhere = parseUrl("http://cdn.lan:8080/blob").value();
    CHECK_FALSE(sendsToken(cacheUrl, cache, false, false));
    CHECK(sendsToken(cacheUrl, cache, false, true));
    CHECK_FALSE(sendsToken(cacheUrl, cache, true, true));
    CHECK_FALSE(sendsToken(elsewhere, cache, false, true));
}

TEST_CASE("header lookup is case-insensitive and keeps repeated fields") {
    Headers headers;
    headers.add("Link", "<a>; rel=\"next\"");
    headers.add("X-Error-Code", "EntryNotFound");
    headers.add("link", "<b>; rel=\"last\"");
    CHECK(headers.get("x-error-code") == "EntryNotFound");
    CHECK(headers.getAll("LINK").size() == 2);
    CHECK_FALSE(headers.get("etag").has_value());
    headers.set("LINK", "<c>");
    CHECK(headers.getAll("link").size() == 1);
    CHECK(headers.get("Link") == "<c>");
    headers.remove("x-error-code");
    CHECK_FALSE(headers.contains("X-Error-Code"));
}

TEST_CASE("network failures are retryable, policy failures are not") {
    CHECK(Failure{FailureKind::Stall, ""}.retryable());
    CHECK(Failure{FailureKind::Connect, ""}.retryable());
    CHECK(Failure{FailureKind::Timeout, ""}.retryable());
    CHECK(Failure{FailureKind::Network, ""}.retryable());
    CHECK_FALSE(Failure{FailureKind::Tls, ""}.retryable());
    CHECK_FALSE(Failure{FailureKind::Redirect, ""}.retryable());
    CHECK_FALSE(Failure{FailureKind::BodyTooLarge, ""}.retryable());
    CHECK_FALSE(Failure{FailureKind::Aborted, ""}.retryable());
}

TEST_CASE("NO_PROXY entries match hosts, domain suffixes, IPs and ports") {
    CHECK(bypassesProxy("huggingface.co", 443, "localhost,huggingface.co"));
    CHECK(bypassesProxy("cdn-lfs.huggingface.co", 443, ".huggingface.co"));
    CHECK(bypassesProxy("cdn-lfs.huggingface.co", 443, "huggingface.co"));
    CHECK_FALSE(bypassesProxy("nothuggingface.co", 443, "huggingface.co"));
    CHECK(bypassesProxy("127.0.0.1", 8443, "127.0.0.1"));
    CHECK(bypassesProxy("hub.test", 8443, "hub.test:8443"));
    CHECK_FALSE(bypassesProxy("hub.test", 443, "hub.test:8443"));
    CHECK(bypassesProxy("::1", 443, "[::1]"));
    CHECK(bypassesProxy("anything.example", 443, "*"));
    CHECK(bypassesProxy("HUB.test", 443, " other.test , Hub.Test "));
    CHECK_FALSE(bypassesProxy("hub.test", 443, ""));
}
