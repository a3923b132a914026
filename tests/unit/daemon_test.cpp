#include "hfwarm/daemon/scheduler.hpp"

#include <doctest/doctest.h>

#include <chrono>

using namespace hfwarm;
using namespace std::chrono_literals;
using daemon::Scheduler;

namespace {

manifest::Manifest manifestOf(const std::string& text) {
    auto parsed = manifest::parse(text, "m.txt");
    REQUIRE(parsed.ok());
    return parsed.manifest;
}

manifest::RepoRef key(const std::string& id) {
    return manifest::RepoRef{manifest::RepoType::Model, id, "main"};
}

const Scheduler::Clock::time_point t0{};

}  // namespace

TEST_CASE("a new entry is due at once, once; a ready one again after the refresh interval") {
    Scheduler s(60s, 1);
    CHECK(s.takeDue(key("org/a"), t0));
    CHECK_FALSE(s.takeDue(key("org/a"), t0));  // warming
    CHECK(s.nextDue() == Scheduler::Clock::time_point::max());
    CHECK(s.finished(key("org/a"), true, t0 + 5s) == t0 + 65s);
    CHECK(s.nextDue() == t0 + 65s);
    CHECK_FALSE(s.takeDue(key("org/a"), t0 + 64s));
    CHECK(s.takeDue(key("org/a"), t0 + 65s));
}

TEST_CASE("failures retry after 30 s doubled per failure with jitter, at most the refresh interval") {
    Scheduler s(100s, 7);
    const auto k = key("org/a");
    REQUIRE(s.takeDue(k, t0));
    auto first = s.finished(k, false, t0) - t0;
    CHECK(first >= 24s);
    CHECK(first <= 36s);
    REQUIRE(s.takeDue(k, t0 + first));
    auto second = s.finished(k, false, t0) - t0;
    CHECK(second >= 48s);
    CHECK(second <= 72s);
    for (int i = 0; i < 5; ++i) {
        REQUIRE(s.takeDue(k, t0 + 1000s));
        CHECK(s.finished(k, false, t0) - t0 <= 120s);  // 100 s with at most 20 % jitter
    }
    REQUIRE(s.takeDue(k, t0 + 1000s));
    CHECK(s.finished(k, true, t0) == t0 + 100s);  // a success ends the backoff
}

TEST_CASE("a reload keeps schedules by key, plans changed entries now and forgets removed ones") {
    Scheduler s(60s, 1);
    const auto before = manifestOf("org/a\norg/b\norg/c file:x\norg/d\n");
    for (const char* id : {"org/a", "org/b", "org/c", "org/d"}) REQUIRE(s.takeDue(key(id), t0));
    s.finished(key("org/a"), true, t0);
    s.finished(key("org/c"), true, t0);
    s.finished(key("org/d"), true, t0);
    // org/b is still warming when the manifest changes: added at the top, reordered, one removed,
    // one changed.
    const auto after = manifestOf("org/new\norg/c file:x file:y\norg/b\norg/a\n");
    s.reconcile(before, after, t0 + 10s);
    CHECK_FALSE(s.takeDue(key("org/a"), t0 + 10s));  // kept: next check at 60 s
    CHECK(s.takeDue(key("org/c"), t0 + 10s));        // changed: planned again now
    CHECK(s.takeDue(key("org/new"), t0 + 10s));      // new
    // The warm that was running when the reload came finds its own schedule, not another's.
    CHECK(s.finished(key("org/b"), true, t0 + 20s) == t0 + 80s);
    CHECK(s.takeDue(key("org/a"), t0 + 60s));
    // A removed entry's warm that ends later leaves no schedule behind.
    CHECK(s.finished(key("org/d"), true, t0 + 30s) == Scheduler::Clock::time_point::max());
}

TEST_CASE("sync makes an idle entry due now and leaves a warming one alone") {
    Scheduler s(60s, 1);
    REQUIRE(s.takeDue(key("org/a"), t0));
    s.finished(key("org/a"), true, t0);
    s.dueNow(key("org/a"), t0 + 1s);
    CHECK(s.nextDue() == t0 + 1s);
    REQUIRE(s.takeDue(key("org/a"), t0 + 1s));
    s.dueNow(key("org/a"), t0 + 2s);
    CHECK_FALSE(s.takeDue(key("org/a"), t0 + 2s));
}

TEST_CASE("speed is smoothed over ticks and never negative") {
    Scheduler s(60s, 1);
    s.recordBytes(key("org/a"), 1000, 1.0);
    CHECK(s.speed(key("org/a")) == doctest::Approx(500));
    s.recordBytes(key("org/a"), 3000, 1.0);
    CHECK(s.speed(key("org/a")) == doctest::Approx(1250));
    s.recordBytes(key("org/a"), 0, 1.0);  // the entry started over
    CHECK(s.speed(key("org/a")) == doctest::Approx(625));
    CHECK(s.speed(key("org/unknown")) == 0);
}
