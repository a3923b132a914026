#include "hfwarm/transfer/plan.hpp"

#include "../../src/transfer/file_slots.hpp"

#include <doctest/doctest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace hfwarm;
using transfer::plan;

namespace {

const std::string kCommit = "0123456789abcdef0123456789abcdef01234567";

// A 40-hex git blob id derived from the path, so each file has its own blob.
std::string blobIdOf(const std::string& path) {
    std::string id(40, '0');
    std::size_t h = std::hash<std::string>{}(path);
    for (std::size_t i = 0; i < 16; ++i, h >>= 4) id[i] = "0123456789abcdef"[h & 0xF];
    return id;
}

// The listing of a bert-like repo: eight files of 100 bytes each.
hub::Listing bertListing() {
    hub::Listing listing;
    listing.commit = kCommit;
    listing.complete = true;
    for (const char* path : {"config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json",
                             "tokenizer_config.json", "vocab.txt", "onnx/model.onnx", "README.md"})
        listing.files.push_back({path, 100, blobIdOf(path), std::nullopt, ""});
    return listing;
}

manifest::Entry entryOf(const std::string& text) {
    auto parsed = manifest::parse(text, "m.txt");
    REQUIRE(parsed.ok());
    REQUIRE(parsed.manifest.entries.size() == 1);
    return parsed.manifest.entries[0];
}

std::vector<std::string> pathsOf(const transfer::Plan& p) {
    std::vector<std::string> out;
    for (const auto& f : p.files) out.push_back(f.path);
    return out;
}

const std::vector<std::string> kAll = {
    "config.json",           "model.safetensors", "pytorch_model.bin", "tokenizer.json",
    "tokenizer_config.json", "vocab.txt",         "onnx/model.onnx",   "README.md"};

transfer::Plan planOf(const std::string& text) {
    return plan(entryOf(text), bertListing(), nullptr);
}

}  // namespace

TEST_CASE("a whole repo plus an optional line naming an absent file fetches every file and is not failed") {
    const auto p = planOf(
        "bert-base-uncased\n"
        "bert-base-uncased file:config.json file:flax_model.msgpack optional\n");
    CHECK(pathsOf(p) == kAll);
    REQUIRE(p.absent.size() == 1);
    CHECK(p.absent[0].path == "flax_model.msgpack");
    CHECK_FALSE(p.absent[0].required());
    CHECK(p.failures("bert-base-uncased", kCommit).empty());
    const auto notes = p.notes("bert-base-uncased", kCommit);
    REQUIRE(notes.size() == 1);
    CHECK(notes[0] ==
          "m.txt:2 (optional): flax_model.msgpack does not exist in bert-base-uncased at commit 0123456789ab "
          "(recorded in .no_exist)");
}

TEST_CASE("a whole repo plus include: and exclude: on another line still fetches every file") {
    const auto p = planOf("microsoft/phi-2\nmicrosoft/phi-2 include:*.json exclude:tokenizer.json\n");
    CHECK(pathsOf(p) == kAll);
    CHECK(p.bytesTotal == 800);
}

TEST_CASE("each line's exclude: applies to that line only") {
    CHECK(pathsOf(planOf("org/a include:*.json exclude:tokenizer.json\norg/a file:tokenizer.json\n")) ==
          std::vector<std::string>{"config.json", "tokenizer.json", "tokenizer_config.json"});
    CHECK(pathsOf(planOf("org/a exclude:*.bin\norg/a include:*.bin\n")) == kAll);
    CHECK(pathsOf(planOf("org/a exclude:*.bin\norg/a exclude:*.json\n")) == kAll);
    CHECK(pathsOf(planOf("org/a exclude:*.bin exclude:*.json\norg/a exclude:*.json\n")) ==
          std::vector<std::string>{"model.safetensors", "pytorch_model.bin", "vocab.txt", "onnx/model.onnx",
                                   "README.md"});
}

TEST_CASE("include: lines add up") {
    CHECK(pathsOf(planOf("org/a include:*.json\norg/a include:onnx/\n")) ==
          std::vector<std::string>{"config.json", "tokenizer.json", "tokenizer_config.json",
                                   "onnx/model.onnx"});
    CHECK(pathsOf(planOf("org/a include:*.json\norg/a\n")) == kAll);
}

TEST_CASE("file: lines add up, and a file: line adds to an include: line") {
    CHECK(pathsOf(planOf("org/a file:config.json\norg/a file:vocab.txt\n")) ==
          std::vector<std::string>{"config.json", "vocab.txt"});
    CHECK(pathsOf(planOf("org/a include:*.safetensors\norg/a file:vocab.txt\n")) ==
          std::vector<std::string>{"model.safetensors", "vocab.txt"});
}

TEST_CASE("three lines: file:, include: and include: with exclude: each keep their own rule") {
    const auto p = planOf(
        "org/a file:README.md\n"
        "org/a include:*.safetensors\n"
        "org/a include:*.bin include:*.txt exclude:pytorch_model.bin\n");
    CHECK(pathsOf(p) == std::vector<std::string>{"model.safetensors", "vocab.txt", "README.md"});
    CHECK(pathsOf(planOf("org/a file:README.md\norg/a include:*.txt\norg/a\n")) == kAll);
    CHECK(
        pathsOf(planOf("org/a file:a\norg/a file:b\norg/a file:config.json exclude:config.json\n")).empty());
}

TEST_CASE("an absent file named by a required line fails the entry and names that line only") {
    const auto p = planOf(
        "org/a file:config.json optional\n"
        "org/a file:missing.bin\n"
        "org/a file:missing.bin file:other.bin optional\n");
    CHECK(pathsOf(p) == std::vector<std::string>{"config.json"});
    REQUIRE(p.absent.size() == 2);
    CHECK(p.absent[0].path == "missing.bin");
    CHECK(p.absent[0].requiredBy == std::vector<std::string>{"m.txt:2"});
    CHECK(p.absent[0].optionalBy == std::vector<std::string>{"m.txt:3"});
    CHECK(p.absent[1].path == "other.bin");
    CHECK_FALSE(p.absent[1].required());
    const auto failures = p.failures("org/a", kCommit);
    REQUIRE(failures.size() == 1);
    CHECK(
        failures[0] ==
        "m.txt:2: missing.bin does not exist in org/a at commit 0123456789ab (recorded in .no_exist); check "
        "the file name on that line, or mark the line optional");
    CHECK(p.notes("org/a", kCommit).size() == 1);
}

TEST_CASE("an absent file a line excludes itself is not asked for") {
    const auto p = planOf("org/a file:gone.bin exclude:*.bin\n");
    CHECK(p.absent.empty());
    CHECK(p.files.empty());
}

TEST_CASE("the cache view gives the bytes still needed") {
    std::map<std::string, std::uint64_t> onDisk = {
        {blobIdOf("config.json"), 100}, {blobIdOf("vocab.txt"), 40}, {blobIdOf("README.md"), 500}};
    const auto p = plan(entryOf("org/a file:config.json file:vocab.txt file:README.md\n"), bertListing(),
                        [&](const std::string& etag, std::uint64_t) {
                            auto it = onDisk.find(etag);
                            return it == onDisk.end() ? 0 : it->second;
                        });
    CHECK(p.bytesTotal == 300);
    // 0 of config.json, 60 of vocab.txt, and a partial file longer than the blob counts as whole.
    CHECK(p.bytesNeeded == 60);
    CHECK(p.files[1].onDisk == 40);
}

TEST_CASE("a bad name from the server is refused when selected and marks the listing invalid") {
    auto listing = bertListing();
    listing.files.push_back({"../escape.txt", 1, blobIdOf("x"), std::nullopt, ""});
    const auto unselected = plan(entryOf("org/a file:config.json\n"), listing, nullptr);
    CHECK(unselected.refused.empty());
    CHECK_FALSE(unselected.listingValid);
    const auto selected = plan(entryOf("org/a\n"), listing, nullptr);
    REQUIRE(selected.refused.size() == 1);
    CHECK(selected.refused[0].find("escape.txt") != std::string::npos);
    CHECK(selected.files.size() == 8);
}

TEST_CASE("file slots go to promoted entries first (the latest first), then in manifest order") {
    net::io_context io;
    transfer::FileSlots slots(io.get_executor(), 1);
    std::vector<std::string> order;
    auto rethrow = [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    };
    // Entries at manifest places 0..3; each file records when it gets the slot, then frees it.
    std::vector<std::shared_ptr<transfer::QueueRank>> ranks;
    for (std::size_t place = 0; place < 4; ++place)
        ranks.push_back(std::make_shared<transfer::QueueRank>(transfer::QueueRank{0, place}));
    auto file = [&](std::string name, std::size_t place) -> net::awaitable<void> {
        co_await slots.acquire(ranks[place]);
        order.push_back(name);
        slots.release();
    };
    net::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
            co_await slots.acquire(ranks[0]);  // a file in flight: it is never interrupted
            order.push_back("in flight");
            // Queued in an order unlike the manifest's, as listings finish in any order.
            net::co_spawn(io, file("d", 3), rethrow);
            net::co_spawn(io, file("b", 1), rethrow);
            net::co_spawn(io, file("c1", 2), rethrow);
            net::co_spawn(io, file("a", 0), rethrow);
            net::co_spawn(io, file("c2", 2), rethrow);
            co_await net::post(io, net::use_awaitable);  // let them all queue
            // Promotions while they wait: d, then c; the later promotion goes first.
            ranks[3]->promotion = 1;
            ranks[2]->promotion = 2;
            slots.release();
        },
        rethrow);
    io.run();
    CHECK(order == std::vector<std::string>{"in flight", "c1", "c2", "d", "a", "b"});
}
