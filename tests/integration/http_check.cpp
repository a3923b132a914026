// Drives http::Client and the hub calls against a running hfwarm-hubsim and prints one line per
// check ("ok: ..." or "FAIL: ..."); exit status 1 when any check failed. http_client_test.py starts
// the simulator, runs a scenario and checks the simulator's request log afterwards.
//
//   http_check SCENARIO HUB_URL CA_FILE TOKEN
//   SCENARIO: basic | stall | reset | proxy (HTTPS_PROXY/NO_PROXY from the environment) | speed
#include "hfwarm/http/client.hpp"
#include "hfwarm/hub/hub.hpp"
#include "hfwarm/util/hash.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <iostream>
#include <string>
#include <vector>

using namespace hfwarm;

namespace {

int failures = 0;

void check(bool ok, const std::string& what, const std::string& detail = "") {
    if (ok) {
        std::cout << "ok: " << what << "\n";
    } else {
        std::cout << "FAIL: " << what << (detail.empty() ? "" : " (" + detail + ")") << "\n";
        ++failures;
    }
}

struct Args {
    std::string scenario;
    std::string hub;
    std::string ca;
    std::string token;
};

// Collects a body in memory; accepts 200 and 206 only.
class Collect final : public http::Sink {
  public:
    Result<void> onResponse(const http::Response& head) override {
        status = head.status;
        if (head.status != 200 && head.status != 206)
            return makeError("unexpected status " + std::to_string(head.status));
        return {};
    }
    net::awaitable<Result<void>> onData(const char* data, std::size_t size) override {
        body.append(data, size);
        chunks.push_back(size);
        co_return Result<void>{};
    }
    unsigned status = 0;
    std::string body;
    std::vector<std::size_t> chunks;
};

std::unique_ptr<http::Client> makeClient(net::any_io_executor ex, const Args& args,
                                         http::ClientOptions options) {
    options.caFile = args.ca;
    options.token = args.token;
    options.tokenHost = args.hub;
    return http::Client::create(ex, options).value();
}

const hub::RepoFile* findFile(const hub::Listing& listing, const std::string& path) {
    for (const auto& file : listing.files)
        if (file.path == path) return &file;
    return nullptr;
}

net::awaitable<void> basic(Args args) {
    auto ex = co_await net::this_coro::executor;
    http::ClientOptions options;
    options.connectionsPerHost = 2;
    auto client = makeClient(ex, args, options);
    const hub::RepoRef gpt2{manifest::RepoType::Model, "gpt2", "main"};

    auto listing = co_await hub::listRepo(*client, args.hub, gpt2);
    check(listing.has_value(), "revision listing of gpt2", listing ? "" : listing.error().message);
    if (!listing) co_return;
    check(util::isHex(listing->commit, 40) && listing->complete, "listing has a commit and is complete");
    const auto* config = findFile(*listing, "config.json");
    const auto* weights = findFile(*listing, "model.safetensors");
    check(config && !config->lfs && weights && weights->lfs,
          "config.json is plain, model.safetensors is LFS");
    if (!config || !weights) co_return;

    auto tree = co_await hub::listTree(*client, args.hub, gpt2, listing->commit);
    check(tree.has_value() && tree->complete && tree->files.size() == listing->files.size(),
          "paginated tree listing has the same files",
          tree ? std::to_string(tree->files.size()) : tree.error().message);

    const hub::RepoRef renamed{manifest::RepoType::Model, "hubsim/old-name", "main"};
    auto moved = co_await hub::listRepo(*client, args.hub, renamed);
    check(moved.has_value() && findFile(*moved, "config.json"),
          "a renamed repo is listed through its relative redirect", moved ? "" : moved.error().message);

    auto small = co_await client->fetch(http::Request{"GET", hub::resolveUrl(args.hub, gpt2, "config.json")});
    check(small.has_value() && small->status == 200 && util::gitBlobSha1Hex(small->body) == config->blobId,
          "a plain file hashes to its blob id");

    auto head =
        co_await client->fetch(http::Request{"GET", hub::resolveUrl(args.hub, gpt2, "model.safetensors")},
                               http::FetchOptions{http::RedirectPolicy::RelativeOnly, {}, {}});
    check(head.has_value() && head->status == 302 && head->headers.get("x-linked-etag") &&
              head->headers.get("location"),
          "RelativeOnly returns the CDN redirect with its headers",
          head ? std::to_string(head->status) : head.error().message);

    Collect sink;
    auto streamed = co_await client->stream(
        http::Request{"GET", hub::resolveUrl(args.hub, gpt2, "model.safetensors")},
        http::FetchOptions{http::RedirectPolicy::All, std::nullopt, std::nullopt}, sink);
    check(streamed.has_value() && streamed->crossedHost && streamed->redirects == 1 && sink.status == 200 &&
              util::sha256Hex(sink.body) == weights->lfs->sha256 && sink.body.size() == weights->size,
          "an LFS file streams from the CDN and hashes to its sha256",
          streamed ? std::to_string(sink.body.size()) : streamed.error().message);
    bool bigChunks = !sink.chunks.empty();
    for (std::size_t i = 0; i + 1 < sink.chunks.size(); ++i)
        bigChunks = bigChunks && sink.chunks[i] >= 64 * 1024;
    check(bigChunks, "body chunks are 64 KiB or more", std::to_string(sink.chunks.size()) + " chunks");

    http::Request ranged{"GET", hub::resolveUrl(args.hub, gpt2, "model.safetensors"), {}, {}};
    ranged.headers.add("Range", "bytes=100-");
    Collect tail;
    auto partial =
        co_await client->stream(ranged, http::FetchOptions{http::RedirectPolicy::All, {}, {}}, tail);
    check(partial.has_value() && tail.status == 206 && tail.body == sink.body.substr(100),
          "a ranged request returns the tail of the file");

    auto missing = co_await client->fetch(http::Request{"GET", hub::resolveUrl(args.hub, gpt2, "nope.txt")});
    bool missingOk = missing.has_value() && missing->status == 404;
    if (missingOk) {
        auto error =
            hub::errorFromResponse(*missing, gpt2, "nope.txt", false, std::chrono::system_clock::now());
        missingOk = error.kind == hub::ErrorKind::NotFound && error.code == "EntryNotFound";
        std::cout << "  message: " << error.message << "\n";
    }
    check(missingOk, "a missing file maps to EntryNotFound");

    const hub::RepoRef gated{manifest::RepoType::Model, "hubsim/gated-model", "main"};
    auto withToken =
        co_await client->fetch(http::Request{"GET", hub::resolveUrl(args.hub, gated, "config.json")});
    check(withToken.has_value() && withToken->status == 200, "a gated repo's file downloads with the token",
          withToken ? std::to_string(withToken->status) : withToken.error().message);
    http::ClientOptions anonymousOptions;
    anonymousOptions.caFile = args.ca;
    auto anonymous = http::Client::create(ex, anonymousOptions).value();
    auto withoutToken =
        co_await anonymous->fetch(http::Request{"GET", hub::resolveUrl(args.hub, gated, "config.json")});
    bool refusedOk = withoutToken.has_value() && (withoutToken->status == 401 || withoutToken->status == 403);
    if (refusedOk) {
        auto error = hub::errorFromResponse(*withoutToken, gated, "config.json", false,
                                            std::chrono::system_clock::now());
        refusedOk = !error.retryable() && error.message.find("HF_TOKEN") != std::string::npos;
        std::cout << "  message: " << error.message << "\n";
    }
    check(refusedOk, "a gated repo's file without a token fails with a hint to set HF_TOKEN");

    // Twelve concurrent requests through two connections per host.
    auto before = client->stats();
    std::vector<std::string> paths = {
        "config.json", "generation_config.json", "tokenizer.json", "vocab.json", "merges.txt", "README.md"};
    int okCount = 0;
    {
        using namespace net::experimental::awaitable_operators;
        auto one = [&](std::string path) -> net::awaitable<void> {
            auto r = co_await client->fetch(http::Request{"GET", hub::resolveUrl(args.hub, gpt2, path)});
            if (r && r->status == 200) ++okCount;
        };
        co_await ((one(paths[0]) && one(paths[1]) && one(paths[2]) && one(paths[3]) && one(paths[4]) &&
                   one(paths[5])) &&
                  (one(paths[0]) && one(paths[1]) && one(paths[2]) && one(paths[3]) && one(paths[4]) &&
                   one(paths[5])));
    }
    auto after = client->stats();
    check(okCount == 12, "twelve concurrent requests succeed", std::to_string(okCount));
    check(after.open <= 4 && after.connectionsOpened - before.connectionsOpened <= 2,
          "the per-host cap holds and connections are reused",
          "open=" + std::to_string(after.open) +
              " opened=" + std::to_string(after.connectionsOpened - before.connectionsOpened));

    http::ClientOptions untrustedOptions;
    auto untrusted = http::Client::create(ex, untrustedOptions).value();
    auto refused = co_await untrusted->fetch(http::Request{"GET", args.hub + "/api/models/gpt2"});
    check(!refused.has_value() && refused.error().kind == http::FailureKind::Tls &&
              refused.error().message.find("--ca-file") != std::string::npos,
          "an untrusted certificate fails with a hint to use --ca-file",
          refused ? "connected" : refused.error().message);
    if (!refused) std::cout << "  message: " << refused.error().message << "\n";

    auto limited =
        co_await client->fetch(http::Request{"GET", hub::resolveUrl(args.hub, gpt2, "tokenizer.json")},
                               http::FetchOptions{http::RedirectPolicy::RelativeOnly, 10, {}});
    check(!limited.has_value() && limited.error().kind == http::FailureKind::BodyTooLarge,
          "a body over its limit is refused");
}

// Asks for the rest of gpt2's model.safetensors after `first` was cut by `cause`, and checks that
// both bodies together hash to the listing's sha256. Plain pointers: GCC 12 mishandles temporaries
// with destructors inside co_await expressions.
net::awaitable<void> resumeExactly(http::Client* client, const Args* args, const http::Request* request,
                                   const Collect* first, const char* cause) {
    const hub::RepoRef gpt2{manifest::RepoType::Model, "gpt2", "main"};
    http::Request resume = *request;
    resume.headers.add("Range", "bytes=" + std::to_string(first->body.size()) + "-");
    Collect second;
    auto rest =
        co_await client->stream(resume, http::FetchOptions{http::RedirectPolicy::All, {}, {}}, second);
    auto listing = co_await hub::listRepo(*client, args->hub, gpt2);
    const auto* weights = listing ? findFile(*listing, "model.safetensors") : nullptr;
    check(rest.has_value() && weights && util::sha256Hex(first->body + second.body) == weights->lfs->sha256,
          std::string("resuming with Range after ") + cause + " gives the exact file",
          rest ? std::to_string(first->body.size()) + "+" + std::to_string(second.body.size())
               : rest.error().message);
}

// The first body of each file stalls longer than the stall timeout; the second attempt passes.
net::awaitable<void> stall(Args args) {
    auto ex = co_await net::this_coro::executor;
    http::ClientOptions options;
    options.stallTimeout = std::chrono::milliseconds(1000);
    auto client = makeClient(ex, args, options);
    const hub::RepoRef gpt2{manifest::RepoType::Model, "gpt2", "main"};
    http::Request request{"GET", hub::resolveUrl(args.hub, gpt2, "model.safetensors"), {}, {}};
    Collect first;
    auto cut = co_await client->stream(request, http::FetchOptions{http::RedirectPolicy::All, {}, {}}, first);
    check(!cut.has_value() && cut.error().kind == http::FailureKind::Stall && cut.error().retryable(),
          "a stalled body is cut after the stall timeout", cut ? "completed" : cut.error().message);
    if (!cut) std::cout << "  message: " << cut.error().message << "\n";
    check(cut.has_value() || (cut.error().message.find("X-Amz") == std::string::npos &&
                              cut.error().message.find('?') == std::string::npos),
          "the failure names the URL without its signed query");
    co_await resumeExactly(client.get(), &args, &request, &first, "a stall");
}

// The first body of each file is cut by a reset after some bytes; the bytes received before the
// cut reach the sink, and a ranged request completes the file.
net::awaitable<void> reset(Args args) {
    auto ex = co_await net::this_coro::executor;
    http::ClientOptions options;
    auto client = makeClient(ex, args, options);
    const hub::RepoRef gpt2{manifest::RepoType::Model, "gpt2", "main"};
    http::Request request{"GET", hub::resolveUrl(args.hub, gpt2, "model.safetensors"), {}, {}};
    Collect first;
    auto cut = co_await client->stream(request, http::FetchOptions{http::RedirectPolicy::All, {}, {}}, first);
    check(!cut.has_value() && cut.error().kind == http::FailureKind::Network && !first.body.empty(),
          "a reset mid-body is a retryable network failure after the received bytes were delivered",
          cut ? "completed" : cut.error().message + "; got " + std::to_string(first.body.size()));
    if (!cut) std::cout << "  message: " << cut.error().message << "\n";
    co_await resumeExactly(client.get(), &args, &request, &first, "a reset");
}

// Lists a repo and downloads a file with the proxy settings of the environment; the Python side
// checks what went through its CONNECT proxy.
net::awaitable<void> proxy(Args args) {
    auto ex = co_await net::this_coro::executor;
    http::ClientOptions options;
    http::readProxyEnvironment(options);
    check(!options.httpsProxy.empty(), "HTTPS_PROXY is read from the environment");
    auto client = makeClient(ex, args, options);
    const hub::RepoRef gpt2{manifest::RepoType::Model, "gpt2", "main"};
    auto listing = co_await hub::listRepo(*client, args.hub, gpt2);
    check(listing.has_value(), "a listing through the proxy settings",
          listing ? "" : listing.error().message);
    const auto* weights = listing ? findFile(*listing, "model.safetensors") : nullptr;
    Collect sink;
    auto streamed =
        co_await client->stream(http::Request{"GET", hub::resolveUrl(args.hub, gpt2, "model.safetensors")},
                                http::FetchOptions{http::RedirectPolicy::All, {}, {}}, sink);
    check(streamed.has_value() && weights && util::sha256Hex(sink.body) == weights->lfs->sha256,
          "an LFS file through the proxy settings hashes to its sha256",
          streamed ? "" : streamed.error().message);
}

// Streams the largest file of the first listed repo into a hashing sink and prints the rate.
net::awaitable<void> speed(Args args) {
    auto ex = co_await net::this_coro::executor;
    http::ClientOptions options;
    auto client = makeClient(ex, args, options);
    const hub::RepoRef repo{manifest::RepoType::Model, "large/weights", "main"};
    auto listing = co_await hub::listRepo(*client, args.hub, repo);
    check(listing.has_value(), "listing large/weights", listing ? "" : listing.error().message);
    if (!listing) co_return;
    const hub::RepoFile* largest = nullptr;
    for (const auto& file : listing->files)
        if (!largest || file.size > largest->size) largest = &file;
    class Hash final : public http::Sink {
      public:
        Result<void> onResponse(const http::Response&) override { return {}; }
        net::awaitable<Result<void>> onData(const char* data, std::size_t size) override {
            hasher.update(data, size);
            bytes += size;
            co_return Result<void>{};
        }
        util::Hasher hasher{util::HashKind::Sha256};
        std::uint64_t bytes = 0;
    } sink;
    auto started = std::chrono::steady_clock::now();
    auto streamed =
        co_await client->stream(http::Request{"GET", hub::resolveUrl(args.hub, repo, largest->path)},
                                http::FetchOptions{http::RedirectPolicy::All, {}, {}}, sink);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    check(streamed.has_value() && sink.bytes == largest->size && sink.hasher.finishHex() == largest->etag(),
          "the large file arrives whole", streamed ? "" : streamed.error().message);
    std::cout << "  speed: " << sink.bytes / (1024.0 * 1024.0) / seconds << " MiB/s over " << sink.bytes
              << " bytes (sha256 included)\n";
}

// One awaitable, created once: Boost 1.81's awaitable move-assignment does not destroy the frame it
// replaces.
net::awaitable<void> pick(Args args) {
    if (args.scenario == "stall") return stall(args);
    if (args.scenario == "reset") return reset(args);
    if (args.scenario == "proxy") return proxy(args);
    if (args.scenario == "speed") return speed(args);
    return basic(args);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::cerr << "usage: http_check basic|stall|reset|proxy|speed HUB_URL CA_FILE TOKEN\n";
        return 2;
    }
    Args args{argv[1], argv[2], argv[3], argv[4]};
    net::io_context io;
    net::co_spawn(io, pick(args), [](std::exception_ptr error) {
        if (!error) return;
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            std::cout << "FAIL: exception: " << e.what() << "\n";
            ++failures;
        }
    });
    io.run();
    std::cout << (failures ? "some checks failed" : "all checks passed") << "\n";
    return failures ? 1 : 0;
}
