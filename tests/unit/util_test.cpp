#include "hfwarm/util/async.hpp"
#include "hfwarm/util/hash.hpp"
#include "hfwarm/util/log.hpp"
#include "hfwarm/util/units.hpp"

#include <doctest/doctest.h>

#include <spdlog/sinks/ostream_sink.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>

#include <sstream>
#include <stdexcept>

using namespace hfwarm::util;

TEST_CASE("sha256 of a known string matches the published digest") {
    CHECK(sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("git blob sha1 equals what git hash-object prints") {
    // printf 'hello\n' | git hash-object --stdin
    CHECK(gitBlobSha1Hex("hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a");
    // the empty blob
    CHECK(gitBlobSha1Hex("") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
}

TEST_CASE("byte sizes parse with binary suffixes and reject garbage") {
    CHECK(parseByteSize("0") == 0u);
    CHECK(parseByteSize("4096") == 4096u);
    CHECK(parseByteSize("4M") == 4u * 1024 * 1024);
    CHECK(parseByteSize("4MiB") == 4u * 1024 * 1024);
    CHECK(parseByteSize("1.5k") == 1536u);
    CHECK(parseByteSize("2G") == 2ull * 1024 * 1024 * 1024);
    CHECK_FALSE(parseByteSize(""));
    CHECK_FALSE(parseByteSize("-1"));
    CHECK_FALSE(parseByteSize("4X"));
    CHECK_FALSE(parseByteSize("M"));
}

TEST_CASE("human byte sizes use binary units") {
    CHECK(humanBytes(0) == "0 B");
    CHECK(humanBytes(1023) == "1023 B");
    CHECK(humanBytes(1536) == "1.5 KiB");
    CHECK(humanBytes(3ull * 1024 * 1024 * 1024) == "3.0 GiB");
}

TEST_CASE(
    "a spawned task's failure is logged with the task's name and the reason, then the handler goes on") {
    std::ostringstream out;
    auto log =
        std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::ostream_sink_st>(out));
    int after = 0;
    auto handler = logFailure(log, "download worker repo=gpt2", [&] { ++after; });
    handler(nullptr);
    CHECK(out.str().empty());
    handler(std::make_exception_ptr(std::runtime_error("disk on fire")));
    CHECK(out.str().find("task stopped task=\"download worker repo=gpt2\" reason=\"disk on fire\"") !=
          std::string::npos);
    CHECK(after == 2);
    CHECK(exceptionText(std::make_exception_ptr(42)) == "unknown exception");
}

TEST_CASE("a waiter cancelled while it waits for a slot takes none, and the slot goes to the next waiter") {
    using namespace boost::asio::experimental::awaitable_operators;
    hfwarm::net::io_context io;
    Slots slots(io.get_executor(), 1);
    std::vector<std::string> events;
    auto rethrow = [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    };
    hfwarm::net::co_spawn(
        io,
        [&]() -> hfwarm::net::awaitable<void> {
            co_await slots.acquire();  // the only slot
            events.push_back("first holds");
            // A waiter that gives up: the timer wins the race and cancels its acquire().
            hfwarm::net::steady_timer giveUp(io, std::chrono::steady_clock::time_point::min());
            auto winner = co_await (slots.acquire() || giveUp.async_wait(hfwarm::net::use_awaitable));
            events.push_back(winner.index() == 1 ? "impatient gave up" : "impatient took a slot");
            hfwarm::net::co_spawn(
                io,
                [&]() -> hfwarm::net::awaitable<void> {
                    co_await slots.acquire();
                    events.push_back("second holds");
                    slots.release();
                },
                rethrow);
            slots.release();
        },
        rethrow);
    // Bounds the test only if the slot were lost; every step above is driven by events.
    io.run_for(std::chrono::seconds(10));
    CHECK(events == std::vector<std::string>{"first holds", "impatient gave up", "second holds"});
}
