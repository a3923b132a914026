#include "hfwarm/hub/hub.hpp"

#include <doctest/doctest.h>

#include <chrono>

using namespace hfwarm;
using namespace hfwarm::hub;

namespace {

RepoRef model(std::string id, std::string revision = "main") {
    return RepoRef{RepoType::Model, std::move(id), std::move(revision)};
}

http::Response response(unsigned status, std::vector<std::pair<std::string, std::string>> fields,
                        std::string body = "") {
    http::Response r;
    r.status = status;
    for (auto& [name, value] : fields) r.headers.add(name, value);
    r.body = std::move(body);
    return r;
}

const auto kNow = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT

const std::string kSha = "0123456789abcdef0123456789abcdef01234567";
const std::string kBlob = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391";
const std::string kLfs = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

}  // namespace

TEST_CASE("resolve URLs encode the revision as one segment and the path per segment") {
    CHECK(resolveUrl("https://huggingface.co/", model("gpt2"), "config.json") ==
          "https://huggingface.co/gpt2/resolve/main/config.json");
    CHECK(resolveUrl("https://huggingface.co", model("org/name", "refs/pr/1"), "a b/c#1+2.txt") ==
          "https://huggingface.co/org/name/resolve/refs%2Fpr%2F1/a%20b/c%231%2B2.txt");
    CHECK(resolveUrl("https://hub.test", RepoType::Dataset, "org/data", kSha,
                     "train/\xc3\xa9t\xc3\xa9.parquet") ==
          "https://hub.test/datasets/org/data/resolve/" + kSha + "/train/%C3%A9t%C3%A9.parquet");
    CHECK(resolveUrl("https://hub.test", RepoType::Space, "org/app", "v1.0", "app.py") ==
          "https://hub.test/spaces/org/app/resolve/v1.0/app.py");
}

TEST_CASE("API URLs name the repo type and keep their flags") {
    CHECK(revisionUrl("https://hub.test", model("gpt2")) ==
          "https://hub.test/api/models/gpt2/revision/main?blobs=true");
    CHECK(revisionUrl("https://hub.test/", RepoRef{RepoType::Dataset, "org/d", "feature/x"}) ==
          "https://hub.test/api/datasets/org/d/revision/feature%2Fx?blobs=true");
    CHECK(treeUrl("https://hub.test", RepoRef{RepoType::Space, "org/s", "main"}, kSha) ==
          "https://hub.test/api/spaces/org/s/tree/" + kSha + "?recursive=true");
}

TEST_CASE("repos are described as a person writes them in a manifest") {
    CHECK(describe(model("gpt2")) == "gpt2");
    CHECK(describe(RepoRef{RepoType::Dataset, "org/d", "v1"}) == "datasets/org/d@v1");
}

TEST_CASE("a revision listing gives the commit and every file with its etag") {
    std::string body = R"({"id":"org/name","sha":")" + kSha + R"(","siblings":[
        {"rfilename":"config.json","size":0,"blobId":")" +
                       kBlob + R"("},
        {"rfilename":"model.safetensors","size":3,"blobId":")" +
                       kSha + R"(",
         "lfs":{"sha256":")" +
                       kLfs + R"(","size":3,"pointerSize":134}},
        {"rfilename":"../odd path","size":1,"blobId":")" +
                       kBlob + R"(","lfs":null}]})";
    auto listing = parseRevision(body, model("org/name"));
    REQUIRE(listing.has_value());
    CHECK(listing->commit == kSha);
    CHECK(listing->complete);
    REQUIRE(listing->files.size() == 3);
    CHECK(listing->files[0].path == "config.json");
    CHECK(listing->files[0].etag() == kBlob);
    CHECK_FALSE(listing->files[0].lfs.has_value());
    CHECK(listing->files[1].etag() == kLfs);
    CHECK(listing->files[1].size == 3);
    CHECK(listing->files[1].blobId == kSha);
    // Paths stay raw: the cache module validates them.
    CHECK(listing->files[2].path == "../odd path");
}

TEST_CASE("a malformed revision listing is a permanent error naming the repo and the entry") {
    auto check = [](const std::string& body, const std::string& expected) {
        auto listing = parseRevision(body, model("org/name"));
        REQUIRE_FALSE(listing.has_value());
        CHECK(listing.error().kind == ErrorKind::Permanent);
        CHECK_FALSE(listing.error().retryable());
        CHECK(listing.error().message.find("org/name") != std::string::npos);
        CHECK_MESSAGE(listing.error().message.find(expected) != std::string::npos, listing.error().message);
    };
    check("<html>", "not a JSON object");
    check("[]", "not a JSON object");
    check(R"({"siblings":[]})", "'sha'");
    check(R"({"sha":"abc","siblings":[]})", "'sha'");
    check(R"({"sha":")" + kSha + R"("})", "'siblings'");
    check(R"({"sha":")" + kSha + R"(","siblings":[{"rfilename":"a","blobId":")" + kBlob + R"("}]})",
          "'size'");
    check(R"({"sha":")" + kSha + R"(","siblings":[{"rfilename":"a","size":-1,"blobId":")" + kBlob + R"("}]})",
          "'size'");
    check(
        R"({"sha":")" + kSha + R"(","siblings":[{"rfilename":"a","size":"1","blobId":")" + kBlob + R"("}]})",
        "'size'");
    check(R"({"sha":")" + kSha + R"(","siblings":[{"rfilename":"a","size":1}]})", "'blobId'");
    check(R"({"sha":")" + kSha + R"(","siblings":[{"rfilename":5,"size":1,"blobId":")" + kBlob + R"("}]})",
          "'rfilename'");
    check(R"({"sha":")" + kSha + R"(","siblings":[{"rfilename":"a","size":1,"blobId":")" + kBlob +
              R"(","lfs":{"sha256":"xyz","size":1}}]})",
          "'lfs.sha256'");
    check(R"({"sha":")" + kSha + R"(","siblings":["a"]})", "not an object");
}

TEST_CASE("a tree page keeps files, skips folders and reads LFS and Xet fields") {
    std::string body = R"([
        {"type":"directory","oid":")" +
                       kBlob + R"(","size":0,"path":"sub"},
        {"type":"file","oid":")" +
                       kBlob + R"(","size":0,"path":"sub/a.txt"},
        {"type":"file","oid":")" +
                       kSha + R"(","size":3,"path":"w.bin",
         "lfs":{"oid":")" +
                       kLfs + R"(","size":3,"pointerSize":134},"xetHash":")" + kLfs + R"("}])";
    auto files = parseTreePage(body, model("org/name"));
    REQUIRE(files.has_value());
    REQUIRE(files->size() == 2);
    CHECK((*files)[0].path == "sub/a.txt");
    CHECK((*files)[0].etag() == kBlob);
    CHECK((*files)[1].etag() == kLfs);
    CHECK((*files)[1].xetHash == kLfs);
}

TEST_CASE("a malformed tree page is an error") {
    CHECK_FALSE(parseTreePage("{}", model("x")).has_value());
    CHECK_FALSE(parseTreePage(R"([{"path":"a"}])", model("x")).has_value());
    CHECK_FALSE(
        parseTreePage(R"([{"type":"file","path":"a","size":1,"oid":"nothex"}])", model("x")).has_value());
    CHECK_FALSE(parseTreePage(R"([{"type":"file","path":"a","size":1,"oid":")" + kBlob + R"(","xetHash":7}])",
                              model("x"))
                    .has_value());
    // Found by the hub_listing fuzz target: a xetHash must be 64 hex, as trees/<commit>.json needs.
    auto notHex = parseTreePage(
        R"([{"type":"file","path":"a","size":1,"oid":")" + kBlob +
            R"(","xetHash":"2cf24lba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}])",
        model("x"));
    REQUIRE_FALSE(notHex.has_value());
    CHECK(notHex.error().message.find("xetHash") != std::string::npos);
}

TEST_CASE("the next page comes from the Link header's rel=next entry") {
    CHECK(nextLink(R"(<https://hub.test/api/models/x/tree/main?recursive=true&cursor=abc>; rel="next")") ==
          "https://hub.test/api/models/x/tree/main?recursive=true&cursor=abc");
    CHECK(nextLink(R"(<https://a/first>; rel="first", <https://a/p2?c=1,2>; rel="next")") ==
          "https://a/p2?c=1,2");
    CHECK(nextLink(R"(<https://a/p2>;rel=next)") == "https://a/p2");
    CHECK(nextLink(R"(<https://a/p2>; title="x"; rel="prev next")") == "https://a/p2");
    CHECK_FALSE(nextLink(R"(<https://a/last>; rel="last")").has_value());
    CHECK_FALSE(nextLink("").has_value());
    CHECK_FALSE(nextLink("garbage").has_value());
}

TEST_CASE("Retry-After is read as seconds or as an HTTP date, else from RateLimit when r=0") {
    http::Headers seconds;
    seconds.add("Retry-After", " 120 ");
    CHECK(retryAfter(seconds, kNow) == std::chrono::seconds(120));

    http::Headers date;
    date.add("Retry-After", "Sun, 06 Nov 1994 08:50:37 GMT");
    CHECK(retryAfter(date, kNow) == std::chrono::seconds(60));

    http::Headers past;
    past.add("Retry-After", "Sun, 06 Nov 1994 08:00:00 GMT");
    CHECK(retryAfter(past, kNow) == std::chrono::seconds(0));

    http::Headers exhausted;
    exhausted.add("RateLimit", R"("api";r=0;t=42)");
    CHECK(retryAfter(exhausted, kNow) == std::chrono::seconds(42));

    http::Headers remaining;
    remaining.add("RateLimit", R"("api"; r = 10; t = 42)");
    CHECK_FALSE(retryAfter(remaining, kNow).has_value());

    http::Headers junk;
    junk.add("Retry-After", "soon");
    CHECK_FALSE(retryAfter(junk, kNow).has_value());
}

TEST_CASE("Hub errors become actionable messages with a retry classification") {
    SUBCASE("429 is rate limited with the wait") {
        auto e = errorFromResponse(response(429, {{"RateLimit", R"("resolvers";r=0;t=30)"}}), model("gpt2"),
                                   "config.json", false, kNow);
        CHECK(e.kind == ErrorKind::RateLimited);
        CHECK(e.retryable());
        CHECK(e.retryAfter == std::chrono::seconds(30));
        CHECK(e.message.find("30 s") != std::string::npos);
    }
    SUBCASE("5xx and 408 are server errors to retry") {
        CHECK(errorFromResponse(response(503, {}), model("gpt2"), "", false, kNow).kind == ErrorKind::Server);
        CHECK(errorFromResponse(response(408, {}), model("gpt2"), "", false, kNow).retryable());
    }
    SUBCASE("a missing file names the file, the repo and the request id") {
        auto e = errorFromResponse(response(404, {{"X-Error-Code", "EntryNotFound"},
                                                  {"X-Error-Message", "Entry not found"},
                                                  {"X-Request-Id", "Root=1-abc"}}),
                                   model("org/name"), "missing.bin", false, kNow);
        CHECK(e.kind == ErrorKind::NotFound);
        CHECK(e.code == "EntryNotFound");
        CHECK_FALSE(e.retryable());
        CHECK(e.message.find("missing.bin") != std::string::npos);
        CHECK(e.message.find("org/name") != std::string::npos);
        CHECK(e.message.find("Root=1-abc") != std::string::npos);
        CHECK(e.requestId == "Root=1-abc");
    }
    SUBCASE("401 without a token says to set HF_TOKEN") {
        auto e = errorFromResponse(response(401, {{"X-Error-Code", "RepoNotFound"}}), model("org/private"),
                                   "", false, kNow);
        CHECK(e.kind == ErrorKind::NotFound);
        CHECK(e.message.find("HF_TOKEN") != std::string::npos);
    }
    SUBCASE("a rejected token is denied, not missing") {
        auto e = errorFromResponse(
            response(401, {{"X-Error-Message", "Invalid credentials in Authorization header"}}),
            model("org/x"), "", true, kNow);
        CHECK(e.kind == ErrorKind::Denied);
        CHECK(e.message.find("rejected the token") != std::string::npos);
    }
    SUBCASE("a gated repo says what to do, with or without a token") {
        auto without = errorFromResponse(response(401, {{"X-Error-Code", "GatedRepo"}}), model("org/gated"),
                                         "model.bin", false, kNow);
        CHECK(without.kind == ErrorKind::Denied);
        CHECK(without.message.find("gated") != std::string::npos);
        CHECK(without.message.find("set HF_TOKEN") != std::string::npos);
        auto with = errorFromResponse(response(403, {{"X-Error-Code", "GatedRepo"}}), model("org/gated"),
                                      "model.bin", true, kNow);
        CHECK(with.kind == ErrorKind::Denied);
    }
    SUBCASE("an unknown revision names it") {
        auto e = errorFromResponse(response(404, {{"X-Error-Code", "RevisionNotFound"}}),
                                   model("gpt2", "nope"), "", false, kNow);
        CHECK(e.kind == ErrorKind::NotFound);
        CHECK(e.message.find("'nope'") != std::string::npos);
    }
    SUBCASE("the JSON error field is used when X-Error-Message is absent") {
        auto e = errorFromResponse(response(400, {}, R"({"error":"Invalid rev id"})"), model("gpt2"), "",
                                   false, kNow);
        CHECK(e.kind == ErrorKind::Permanent);
        CHECK(e.message.find("Invalid rev id") != std::string::npos);
    }
    SUBCASE("a disabled repo is denied") {
        auto e =
            errorFromResponse(response(403, {{"X-Error-Message", "Access to this resource is disabled."}}),
                              model("org/x"), "", true, kNow);
        CHECK(e.kind == ErrorKind::Denied);
        CHECK(e.message.find("disabled") != std::string::npos);
    }
}

TEST_CASE("transport failures map to Network when retryable, Permanent otherwise") {
    CHECK(errorFromFailure(http::Failure{http::FailureKind::Stall, "stalled"}).kind == ErrorKind::Network);
    auto tls = errorFromFailure(http::Failure{http::FailureKind::Tls, "verify failed; use --ca-file"});
    CHECK(tls.kind == ErrorKind::Permanent);
    CHECK(tls.message == "verify failed; use --ca-file");
}
