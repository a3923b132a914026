// The connection policy of parallel downloads as pure decisions: rates and times are injected.
#include "hfwarm/transfer/connection_policy.hpp"

#include <doctest/doctest.h>

#include <vector>

using namespace hfwarm::transfer;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t MiB = 1ull << 20;
constexpr std::uint64_t GiB = 1ull << 30;

// Connections that each carry `rate` bytes per second, sampled `since` after their first byte.
std::vector<ConnectionSample> connections(std::size_t count, double rate, std::chrono::nanoseconds since) {
    const auto bytes = static_cast<std::uint64_t>(rate * std::chrono::duration<double>(since).count());
    return std::vector<ConnectionSample>(count, ConnectionSample{bytes, since});
}

// Plays a download whose connections are each capped at `rate`, polled every 10 ms from the
// first byte, with the event loop `busy` of the time: the count of connections the policy asks for at each
// step, until `until`.
std::size_t countAfter(double rate, std::size_t share, std::chrono::milliseconds until, double busy = 0.1) {
    std::size_t count = kMinConnections;
    for (auto t = 0ms; t <= until; t += 10ms)
        count = wantedConnections(connections(count, rate, t), count, share, busy);
    return count;
}

}  // namespace

TEST_CASE("a capped link opens the file's share within its first second") {
    CHECK(countAfter(20.0 * MiB, 8, 1000ms) == 8);
    CHECK(countAfter(40.0 * MiB, 8, 1000ms) >= 4);
    CHECK(countAfter(4.0 * MiB, 8, 1000ms) == 8);
    // Before a connection has its probe of bytes and time, nothing is judged.
    CHECK(countAfter(20.0 * MiB, 8, kProbeTime - 10ms) == kMinConnections);
    CHECK(countAfter(20.0 * MiB, 8, kProbeTime) == 8);
}

TEST_CASE("an uncapped link stays on two connections") {
    CHECK(countAfter(400.0 * MiB, 8, 5000ms) == kMinConnections);
    CHECK(countAfter(kCappedRate * 1.01, 8, 5000ms) == kMinConnections);
    CHECK(countAfter(kCappedRate * 0.99, 8, 5000ms) == 8);
    // Slow connections on a busy event loop: the CPU is the limit, more connections would share it.
    CHECK(countAfter(30.0 * MiB, 8, 5000ms, 0.95) == kMinConnections);
    CHECK(countAfter(30.0 * MiB, 8, 5000ms, kBusyShare) == kMinConnections);
    CHECK(countAfter(30.0 * MiB, 8, 5000ms, kBusyShare - 0.01) == 8);
    // One slow starter next to a fast connection does not open more.
    std::vector<ConnectionSample> mixed = connections(1, 400.0 * MiB, 200ms);
    mixed.push_back(connections(1, 10.0 * MiB, 200ms).front());
    CHECK(wantedConnections(mixed, 2, 8, 0.1) == 2);
}

TEST_CASE("a connection is judged from its probe of bytes and time") {
    CHECK_FALSE(judgedRate({kProbeBytes - 1, 1s}));
    CHECK_FALSE(judgedRate({10 * MiB, kProbeTime - 1ms}));
    auto rate = judgedRate({kProbeBytes, kProbeTime});
    REQUIRE(rate);
    CHECK(*rate == doctest::Approx(static_cast<double>(kProbeBytes) /
                                   std::chrono::duration<double>(kProbeTime).count()));
    CHECK(wantedConnections(std::vector<ConnectionSample>{}, 2, 8, 0.1) == 2);
    // Never fewer than it has.
    CHECK(wantedConnections(connections(6, 10.0 * MiB, 1s), 6, 4, 0.1) == 6);
}

TEST_CASE("added connections are kept only when they bring the host speed") {
    // Capped connections: more of them, more bytes per second, even when the CPU caps the gain.
    CHECK(keepAdded(240.0, 480.0));
    CHECK(keepAdded(240.0, 300.0));
    // A link that is full already: the same rate shared by more connections, give or take noise.
    CHECK_FALSE(keepAdded(240.0, 299.0));
    CHECK_FALSE(keepAdded(240.0, 264.0));
    CHECK_FALSE(keepAdded(240.0, 240.0));
    CHECK_FALSE(keepAdded(240.0, 200.0));
    // Nothing measured before: the batch stays.
    CHECK(keepAdded(0.0, 10.0));
}

TEST_CASE("the event loop's load leaves out the time it waited for a CPU") {
    // A quiet machine: the loop ran 30% of the time, slept the rest.
    CHECK(loopBusy({300ms, 0ms}, 1s) == doctest::Approx(0.3));
    // A machine busy compiling, the download bound by a capped CDN: the loop waited half the time
    // for a CPU and ran 2%; it had little to do, so more connections can help.
    CHECK(loopBusy({20ms, 500ms}, 1s) == doctest::Approx(0.04));
    CHECK(loopBusy({20ms, 500ms}, 1s) < kBusyShare);
    // The same machine, loopback: the loop ran whenever it got the CPU.
    CHECK(loopBusy({450ms, 500ms}, 1s) == doctest::Approx(0.9));
    CHECK(loopBusy({450ms, 500ms}, 1s) >= kBusyShare);
    // Never ran: as busy as can be.
    CHECK(loopBusy({0ms, 1s}, 1s) == 1.0);
    CHECK(loopBusy({0ms, 0ms}, 0ms) == 1.0);
}

TEST_CASE("the host's rate is measured over the last window") {
    using Clock = std::chrono::steady_clock;
    const Clock::time_point t0{};
    RateWindow window(250ms);
    CHECK_FALSE(window.rate());
    window.add(t0, 0);
    window.add(t0 + kProbeTime - 1ms, 1 * MiB);
    CHECK_FALSE(window.rate());  // shorter than kProbeTime
    window.add(t0 + 100ms, 10 * MiB);
    REQUIRE(window.rate());
    CHECK(*window.rate() == doctest::Approx(100.0 * MiB));
    // The rate doubles: after a whole window only the new rate counts.
    for (int step = 1; step <= 5; ++step) window.add(t0 + 100ms + step * 50ms, 10 * MiB + step * 10 * MiB);
    REQUIRE(window.rate());
    CHECK(*window.rate() == doctest::Approx(200.0 * MiB));
    // Nothing arrives for 50 ms: the window from 150 ms to 400 ms holds 40 MiB.
    window.add(t0 + 400ms, 60 * MiB);
    CHECK(*window.rate() == doctest::Approx(160.0 * MiB));
}

TEST_CASE("files to one host share its connections") {
    // Six 64 MiB files and 48 connections to the host: 8 each; with 16, 2 each (never fewer).
    CHECK(hostShare(48, 6, 8, 64 * MiB) == 8);
    CHECK(hostShare(16, 6, 8, 64 * MiB) == 2);
    CHECK(hostShare(16, 20, 8, 64 * MiB) == kMinConnections);
    CHECK(hostShare(48, 1, 8, 64 * MiB) == 8);  // the per-file cap
    CHECK(hostShare(16, 1, 32, 64 * MiB) == 16);
    // No more connections than the file has pieces.
    CHECK(hostShare(48, 1, 8, 12 * MiB) == 3);
    CHECK(hostShare(48, 1, 8, 8 * MiB) == 2);
    CHECK(hostShare(48, 1, 1, 1 * GiB) == 1);
    // Six files together never ask for more than the budget when it allows two each.
    for (std::size_t budget : {12, 16, 32, 48, 64}) CHECK(6 * hostShare(budget, 6, 8, 64 * MiB) <= budget);
}

TEST_CASE("parallel pieces from two pieces and segment_min_size up") {
    CHECK(useSegments(8 * MiB, 8 * MiB, 8));
    CHECK_FALSE(useSegments(8 * MiB - 1, 8 * MiB, 8));
    CHECK(useSegments(64 * MiB, 64 * MiB, 8));
    CHECK_FALSE(useSegments(64 * MiB - 1, 64 * MiB, 8));
    CHECK_FALSE(useSegments(64 * MiB, 1 * MiB, 1));
    // A file must hold two pieces, whatever the setting.
    CHECK_FALSE(useSegments(2 * kMinPiece - 1, 1, 8));
    CHECK(useSegments(2 * kMinPiece, 1, 8));
}

TEST_CASE("pieces cut as they are taken cover the file exactly once") {
    for (std::uint64_t size : {8 * MiB, 8 * MiB + 1, 12 * MiB - 1, 64 * MiB - 1, 64 * MiB, 64 * MiB + 1,
                               1 * GiB, 3 * GiB + 12345}) {
        for (std::size_t connections : {1, 2, 8, 16}) {
            std::uint64_t pos = 0;
            std::vector<std::uint64_t> lengths;
            while (pos < size) {
                const std::uint64_t length = pieceLength(size - pos, size - pos, connections);
                REQUIRE(length > 0);
                REQUIRE(length <= size - pos);
                lengths.push_back(length);
                pos += length;
            }
            CHECK(pos == size);
            for (std::size_t i = 0; i + 1 < lengths.size(); ++i) {
                CHECK(lengths[i] >= kMinPiece);
                CHECK(lengths[i] <= kMaxPiece);
            }
            CHECK(lengths.back() < kMaxPiece + kMaxPiece / 2);
        }
    }
    // Early pieces are large, late ones small.
    CHECK(pieceLength(1 * GiB, 1 * GiB, 2) == kMaxPiece);
    CHECK(pieceLength(64 * MiB, 64 * MiB, 8) == kMinPiece);
    CHECK(pieceLength(kMinPiece + kMinPiece / 2 - 1, 64 * MiB, 8) == kMinPiece + kMinPiece / 2 - 1);
    CHECK(pieceLength(kMinPiece + kMinPiece / 2, 64 * MiB, 8) == kMinPiece);
    // A capped download's tail: pieces shrink to kTailPiece, so that its last connections finish
    // within a few tens of ms of each other.
    CHECK(pieceLength(64 * MiB, 64 * MiB, 8, kTailPiece) == kMinPiece);
    CHECK(pieceLength(8 * MiB, 8 * MiB, 8, kTailPiece) == kTailPiece);
    CHECK(pieceLength(8 * MiB, 24 * MiB, 8, kTailPiece) == 24 * MiB / 16);
    std::uint64_t pos = 0;
    std::size_t pieces = 0;
    while (pos < 64 * MiB) {
        const std::uint64_t length = pieceLength(64 * MiB - pos, 64 * MiB - pos, 8, kTailPiece);
        CHECK(length >= kTailPiece);
        CHECK(length <= kMinPiece);
        pos += length;
        ++pieces;
    }
    CHECK(pos == 64 * MiB);
    CHECK(pieces <= 40);
}

TEST_CASE("every request of a large file is a range of at most 64 MiB") {
    // Small files go in one plain GET; a resume or a piece asks for a range.
    CHECK_FALSE(requestRange(0, kMaxRequest, kMaxRequest));
    CHECK_FALSE(requestRange(0, 1, 1));
    auto resume = requestRange(5, kMaxRequest, kMaxRequest);
    REQUIRE(resume);
    CHECK(resume->first == 5);
    CHECK(resume->last == kMaxRequest - 1);
    auto over = requestRange(0, kMaxRequest + 1, kMaxRequest + 1);
    REQUIRE(over);
    CHECK(over->last == kMaxRequest - 1);

    // A 60 GiB file on one stream, and a 60 GiB piece starting mid-file: ranges of at most 64 MiB,
    // back to back, covering the bytes exactly.
    const std::uint64_t size = 60 * GiB;
    for (std::uint64_t start : {std::uint64_t{0}, std::uint64_t{123456789}}) {
        std::uint64_t pos = start;
        std::size_t requests = 0;
        while (pos < size) {
            auto range = requestRange(pos, size, size);
            REQUIRE(range);
            REQUIRE(range->first == pos);
            REQUIRE(range->last >= range->first);
            REQUIRE(range->last - range->first + 1 <= kMaxRequest);
            pos = range->last + 1;
            ++requests;
        }
        CHECK(pos == size);
        CHECK(requests == (size - start + kMaxRequest - 1) / kMaxRequest);
    }
}
