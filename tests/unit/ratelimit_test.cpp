#include "hfwarm/ratelimit/backoff.hpp"
#include "hfwarm/ratelimit/class_state.hpp"
#include "hfwarm/ratelimit/headers.hpp"
#include "hfwarm/ratelimit/limiter.hpp"
#include "hfwarm/ratelimit/request_class.hpp"
#include "hfwarm/ratelimit/resp.hpp"
#include "hfwarm/ratelimit/shared_budget.hpp"
#include "hfwarm/ratelimit/token_bucket.hpp"

#include <doctest/doctest.h>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

using namespace hfwarm::ratelimit;
using namespace std::chrono_literals;
namespace net = boost::asio;

namespace {

// An arbitrary origin far from the clock's epoch, so that subtracting a few seconds stays valid.
const TimePoint t0 = TimePoint{} + 1000h;

double secondsOf(Duration d) {
    return std::chrono::duration<double>(d).count();
}

std::chrono::system_clock::time_point utc(int y, unsigned m, unsigned d, int hh, int mm, int ss) {
    using namespace std::chrono;
    return sys_days{year{y} / month{m} / day{d}} + hours{hh} + minutes{mm} + seconds{ss};
}

Observation response(int status) {
    Observation o;
    o.status = status;
    return o;
}

Observation withRateLimit(int status, std::uint64_t r, std::uint64_t t) {
    Observation o = response(status);
    o.rateLimit = RateLimitItem{"resolvers", r, t};
    return o;
}

Observation withPolicy(Observation o, std::uint64_t q, std::uint64_t w) {
    o.policy = RateLimitPolicyItem{"fixed window", "resolvers", q, w};
    return o;
}

}  // namespace

TEST_CASE("requests are classed as the Hub counts them") {
    CHECK(classify("/api/models/org/name/revision/main") == RequestClass::Api);
    CHECK(classify("/api/models/org/name/tree/main?recursive=true&cursor=x") == RequestClass::Api);
    CHECK(classify("/api") == RequestClass::Api);
    CHECK(classify("/org/name/resolve/main/config.json") == RequestClass::Resolvers);
    CHECK(classify("/datasets/org/name/resolve/abc123/data/train.parquet") == RequestClass::Resolvers);
    CHECK(classify("/org/name/blob/main/README.md") == RequestClass::Other);
    CHECK(classify("/apis/x") == RequestClass::Other);
    CHECK(classify("/x?next=/a/resolve/b") == RequestClass::Other);
    CHECK(classify("/org/name/resolve/main/config.json", false) == RequestClass::Other);
    CHECK(classify("/api/models/org/name", false) == RequestClass::Other);
    CHECK(className(RequestClass::Resolvers) == "resolvers");
}

TEST_CASE("a token bucket starts full, refills at its rate and never holds more than its burst") {
    TokenBucket b(2.0, 3.0, t0);
    CHECK(b.tokens(t0) == doctest::Approx(3.0));
    CHECK(b.tryTake(t0));
    CHECK(b.tryTake(t0));
    CHECK(b.tryTake(t0));
    CHECK_FALSE(b.tryTake(t0));
    CHECK(secondsOf(b.timeUntilAvailable(t0)) == doctest::Approx(0.5));
    CHECK_FALSE(b.tryTake(t0 + 499ms));
    CHECK(b.tryTake(t0 + 500ms));
    CHECK(b.tokens(t0 + 10s) == doctest::Approx(3.0));
    CHECK(b.timeUntilAvailable(t0 + 10s) == Duration::zero());
}

TEST_CASE("a fractional rate refills one token over several seconds") {
    TokenBucket b(0.25, 1.0, t0);
    CHECK(b.tryTake(t0));
    CHECK(secondsOf(b.timeUntilAvailable(t0)) == doctest::Approx(4.0));
    CHECK(b.tokens(t0 + 2s) == doctest::Approx(0.5));
    CHECK_FALSE(b.tryTake(t0 + 3s));
    CHECK(b.tryTake(t0 + 4s));
}

TEST_CASE("a take larger than the burst waits for a full bucket and leaves a debt") {
    TokenBucket b(1000.0, 100.0, t0);
    CHECK(b.tryTake(t0, 400.0));
    CHECK(b.tokens(t0) == doctest::Approx(-300.0));
    // The debt and then a full burst must come back before the next large take.
    CHECK(secondsOf(b.timeUntilAvailable(t0, 400.0)) == doctest::Approx(0.4));
    CHECK_FALSE(b.tryTake(t0 + 399ms, 400.0));
    CHECK(b.tryTake(t0 + 400ms, 400.0));
}

TEST_CASE("a token bucket ignores time going backwards and treats nonsense rates as zero") {
    TokenBucket b(1.0, 1.0, t0);
    CHECK(b.tryTake(t0));
    CHECK(b.tokens(t0 - 5s) == doctest::Approx(0.0));
    CHECK_FALSE(b.tryTake(t0 - 5s));
    b.setRate(t0, -3.0);
    CHECK(b.rate() == 0.0);
    CHECK(b.timeUntilAvailable(t0 + 1h) == Duration::max());
    b.setRate(t0, std::numeric_limits<double>::quiet_NaN());
    CHECK(b.rate() == 0.0);
}

TEST_CASE("changing the rate keeps the tokens earned so far; a smaller burst drops the excess") {
    TokenBucket b(1.0, 10.0, t0);
    for (int i = 0; i < 10; ++i) REQUIRE(b.tryTake(t0));
    b.setRate(t0 + 2s, 10.0);  // 2 tokens earned at the old rate
    CHECK(b.tokens(t0 + 2s) == doctest::Approx(2.0));
    CHECK(b.tokens(t0 + 2500ms) == doctest::Approx(7.0));
    b.setBurst(t0 + 2500ms, 4.0);
    CHECK(b.tokens(t0 + 2500ms) == doctest::Approx(4.0));
    CHECK(b.burst() == 4.0);
    b.limitTokens(t0 + 2500ms, 1.0);
    CHECK(b.tokens(t0 + 2500ms) == doctest::Approx(1.0));
    b.ensureTokens(t0 + 2500ms, 100.0);
    CHECK(b.tokens(t0 + 2500ms) == doctest::Approx(4.0));
}

TEST_CASE("a refund gives back a token up to the burst") {
    TokenBucket b(1.0, 2.0, t0);
    REQUIRE(b.tryTake(t0));
    REQUIRE(b.tryTake(t0));
    CHECK_FALSE(b.tryTake(t0));
    b.refund(t0);
    CHECK(b.tokens(t0) == doctest::Approx(1.0));
    b.refund(t0, 5.0);
    CHECK(b.tokens(t0) == doctest::Approx(2.0));
}

TEST_CASE("RateLimit parses as the Hub sends it, with whitespace variants and several items") {
    auto one = parseRateLimit("\"resolvers\";r=12;t=34");
    REQUIRE(one);
    REQUIRE(one->size() == 1);
    CHECK((*one)[0] == RateLimitItem{"resolvers", 12, 34});

    auto spaced = parseRateLimit("  \"api\" ; r = 0 ;\tt= 7 ");
    REQUIRE(spaced);
    CHECK((*spaced)[0] == RateLimitItem{"api", 0, 7});

    auto several = parseRateLimit("\"api\";r=1;t=2, \"resolvers\";t=4;r=3");
    REQUIRE(several);
    REQUIRE(several->size() == 2);
    CHECK((*several)[1] == RateLimitItem{"resolvers", 3, 4});

    // Unknown parameters (the draft's partition key, future ones) are skipped; a later duplicate wins.
    auto extra = parseRateLimit("\"api\";r=5;t=6;pk=:cGFydGl0aW9u:;x=\"y\";flag;r=4");
    REQUIRE(extra);
    CHECK((*extra)[0] == RateLimitItem{"api", 4, 6});

    auto big = parseRateLimit("\"api\";r=999999999999999;t=0");
    REQUIRE(big);
    CHECK((*big)[0].remaining == 999999999999999ull);
}

TEST_CASE("RateLimit rejects missing fields, malformed text and numbers that do not fit") {
    for (const char* bad : {"",
                            " ",
                            "\"api\"",
                            "\"api\";r=1",
                            "\"api\";t=1",
                            "r=1;t=2",
                            "api;r=1;t=2",
                            "\"api\";r=-1;t=2",
                            "\"api\";r=1.5;t=2",
                            "\"api\";r=1;t=2x",
                            "\"api\";r=;t=2",
                            "\"api\";r=1;t=1000000000000000",
                            "\"api\";r=99999999999999999999999;t=1",
                            "\"api\";r=1;t=2,",
                            ",\"api\";r=1;t=2",
                            "\"api\";r=1;t=2,garbage",
                            "\"api\";r=1;;t=2",
                            "\"api;r=1;t=2",
                            "\"\";r=1;t=2",
                            "\"api\";R=1;T=2",
                            "\"api\";r=1;t=2;\"late\"",
                            "\"api\" r=1 t=2",
                            "\xff\xfe"}) {
        CAPTURE(bad);
        CHECK_FALSE(parseRateLimit(bad));
    }
}

TEST_CASE("RateLimit-Policy parses one or several policies") {
    auto one = parseRateLimitPolicy("\"fixed window\";\"resolvers\";q=3000;w=300");
    REQUIRE(one);
    REQUIRE(one->size() == 1);
    CHECK((*one)[0] == RateLimitPolicyItem{"fixed window", "resolvers", 3000, 300});

    auto several = parseRateLimitPolicy(
        "\"fixed window\";\"api\";q=500;w=300, \"fixed window\" ; \"resolvers\" ; q = 3000 ; w = 300,"
        "\"pages\";q=100;w=300");
    REQUIRE(several);
    REQUIRE(several->size() == 3);
    CHECK((*several)[0] == RateLimitPolicyItem{"fixed window", "api", 500, 300});
    CHECK((*several)[1] == RateLimitPolicyItem{"fixed window", "resolvers", 3000, 300});
    CHECK((*several)[2] == RateLimitPolicyItem{"", "pages", 100, 300});
}

TEST_CASE("RateLimit-Policy rejects missing fields, a zero window and garbage") {
    for (const char* bad :
         {"", "\"fixed window\";\"api\";q=500", "\"fixed window\";\"api\";w=300",
          "\"fixed window\";\"api\";q=500;w=0", "\"a\";\"b\";\"c\";q=1;w=1",
          "\"fixed window\";\"api\";q=-500;w=300", "\"fixed window\";\"api\";q=5000000000000000;w=300",
          "fixed window;api;q=1;w=1", "\"fixed window\";\"api\";q=500;w=300,,\"x\";q=1;w=1"}) {
        CAPTURE(bad);
        CHECK_FALSE(parseRateLimitPolicy(bad));
    }
}

TEST_CASE("Retry-After accepts delta-seconds and IMF-fixdate; past dates wait zero") {
    auto now = utc(2026, 11, 26, 6, 0, 0);
    CHECK(parseRetryAfter("120", now) == 120s);
    CHECK(parseRetryAfter(" 0 ", now) == 0s);
    CHECK(parseRetryAfter("999999999999999", now) == std::chrono::seconds{999999999999999});
    CHECK(parseRetryAfter("Thu, 26 Nov 2026 06:01:30 GMT", now) == 90s);
    CHECK(parseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", now) == 0s);
    CHECK(parseRetryAfter("Thu, 26 Nov 2026 06:00:00 GMT", now) == 0s);
    CHECK(parseRetryAfter("Fri, 01 Jan 2027 00:00:00 GMT", now) ==
          std::chrono::duration_cast<std::chrono::seconds>(utc(2027, 1, 1, 0, 0, 0) - now));
    // A leap second is a valid time of day.
    CHECK(parseRetryAfter("Wed, 31 Dec 2026 23:59:60 GMT", now));
}

TEST_CASE("Retry-After rejects garbage, signs, overflow and other date forms") {
    auto now = utc(2026, 11, 26, 6, 0, 0);
    for (const char* bad : {"",
                            "  ",
                            "-1",
                            "+5",
                            "1.5",
                            "12s",
                            "1000000000000000",
                            "99999999999999999999999999",
                            "soon",
                            "Sunday, 06-Nov-94 08:49:37 GMT",
                            "Sun Nov  6 08:49:37 1994",
                            "Thu, 26 Nov 2026 06:01:30 UTC",
                            "Thu, 26 Nov 2026 06:01:30 GMT+1",
                            "Thu, 31 Feb 2026 06:01:30 GMT",
                            "Thu, 26 Nov 2026 24:00:00 GMT",
                            "Thu, 26 Nov 2026 06:60:00 GMT",
                            "Xyz, 26 Nov 2026 06:01:30 GMT",
                            "Thu, 26 Noe 2026 06:01:30 GMT",
                            "Thu, 2x Nov 2026 06:01:30 GMT",
                            "Thu,  26 Nov 2026 06:01:30 GMT"}) {
        CAPTURE(bad);
        CHECK_FALSE(parseRetryAfter(bad, now));
    }
}

TEST_CASE("an observation keeps only the items of its own bucket and ignores malformed headers") {
    auto now = utc(2026, 11, 26, 6, 0, 0);
    auto o = makeObservation(RequestClass::Resolvers, 200, "\"api\";r=1;t=2, \"resolvers\";r=3;t=4",
                             "\"fixed window\";\"resolvers\";q=3000;w=300", "", now);
    REQUIRE(o.rateLimit);
    CHECK(*o.rateLimit == RateLimitItem{"resolvers", 3, 4});
    REQUIRE(o.policy);
    CHECK(o.policy->quota == 3000);
    CHECK_FALSE(o.retryAfter);

    auto other = makeObservation(RequestClass::Api, 429, "\"resolvers\";r=0;t=4", "garbage;;",
                                 "Thu, 26 Nov 2026 06:00:10 GMT", now);
    CHECK_FALSE(other.rateLimit);
    CHECK_FALSE(other.policy);
    CHECK(other.retryAfter == 10s);
    CHECK(other.hasHeaders());

    CHECK_FALSE(makeObservation(RequestClass::Api, 429, "", "", "", now).hasHeaders());
}

TEST_CASE(
    "a class starts with one probe, then paces at its configured rate until the Hub announces its budget") {
    ClassState s({2.0, 3.0}, t0);
    CHECK(s.status(t0).probing);
    auto first = s.tryAcquire(t0);
    CHECK(first.go);
    CHECK(first.probe);
    CHECK_FALSE(s.tryAcquire(t0).go);
    s.observe(t0, response(404), 0.0);
    CHECK_FALSE(s.status(t0).probing);
    for (int i = 0; i < 2; ++i) CHECK(s.tryAcquire(t0).go);
    auto d = s.tryAcquire(t0);
    CHECK_FALSE(d.go);
    CHECK(secondsOf(d.wait) == doctest::Approx(0.5));
    CHECK(s.tryAcquire(t0 + 500ms).go);
    CHECK(s.status(t0 + 500ms).requests == 4);

    // An announced fixed window replaces the pace: 100 per 10 s, 90 left for 9 s, 10 reserved, and
    // 3 requests (granted at t0 and 500 ms) still in flight once this answer ends one of them.
    s.observe(t0 + 1s, withPolicy(withRateLimit(200, 90, 9), 100, 10), 0.0);
    auto st = s.status(t0 + 1s);
    CHECK(st.windowRule);
    CHECK(st.remaining == 90u);
    CHECK(st.quota == 100u);
    CHECK(st.window == 10u);
    CHECK(st.reserved == 10u);
    CHECK(st.inFlight == 2u);
    REQUIRE(st.resetIn);
    CHECK(*st.resetIn == doctest::Approx(9.0));
    CHECK(st.tokens == doctest::Approx(78.0));
    for (int i = 0; i < 78; ++i) REQUIRE(s.tryAcquire(t0 + 1s).go);
    d = s.tryAcquire(t0 + 1s);
    CHECK_FALSE(d.go);
    CHECK(d.wait == 9s);
}

TEST_CASE("when r reaches 0 the class pauses until t for everyone, then one probe opens the new window") {
    ClassState s({5.0, 5.0}, t0);
    s.observe(t0, withPolicy(withRateLimit(200, 0, 4), 100, 10), 0.0);
    auto st = s.status(t0);
    CHECK(st.pausedFor == doctest::Approx(4.0));
    CHECK_FALSE(st.probing);
    for (auto at : {t0, t0 + 1s, t0 + 3900ms}) {
        auto d = s.tryAcquire(at);
        CHECK_FALSE(d.go);
        CHECK(d.wait == t0 + 4s - at);
    }
    // The new window: one probe first, the others wait for its answer.
    CHECK(s.status(t0 + 4s).remaining == 100u);
    auto first = s.tryAcquire(t0 + 4s);
    CHECK(first.go);
    CHECK(first.probe);
    auto second = s.tryAcquire(t0 + 4s);
    CHECK_FALSE(second.go);
    CHECK(second.wait == 10s);
    // Its answer opens the whole window less the reserve: 99 - 10, with nothing in flight.
    s.observe(t0 + 4100ms, withPolicy(withRateLimit(200, 99, 10), 100, 10), 0.0);
    for (int i = 0; i < 89; ++i) REQUIRE(s.tryAcquire(t0 + 4100ms).go);
    auto held = s.tryAcquire(t0 + 4100ms);
    CHECK_FALSE(held.go);
    CHECK(held.wait == 10s);
}

TEST_CASE("the window's end is pinned down from several whole-second t values") {
    // The window really ends at t0 + 9.4 s; the server rounds t up, as the simulator does.
    ClassState s({5.0, 5.0}, t0);
    auto at = [&](Duration when, std::uint64_t r, std::uint64_t t, int status = 200) {
        s.observe(t0 + when, withPolicy(withRateLimit(status, r, t), 100, 10), 0.0);
    };
    at(0ms, 99, 10);
    at(500ms, 90, 9);
    at(1300ms, 80, 9);
    at(2450ms, 70, 7);
    REQUIRE(s.status(t0 + 2450ms).resetIn);
    CHECK(*s.status(t0 + 2450ms).resetIn == doctest::Approx(7.0));
    // The last request of the window: the pause ends at the tightest estimate, not at now + t.
    at(9s, 0, 1);
    CHECK(s.status(t0 + 9s).pausedFor == doctest::Approx(0.45));
    CHECK_FALSE(s.tryAcquire(t0 + 9440ms).go);
    CHECK(s.tryAcquire(t0 + 9450ms).go);

    // A late answer from the old window neither pauses the new one nor re-seeds it.
    at(9600ms, 0, 1);
    CHECK(s.status(t0 + 9600ms).pausedFor == 0.0);
    CHECK(s.status(t0 + 9600ms).remaining == 100u);
    // The first answer of the new window starts a new estimate.
    at(9700ms, 99, 10);
    auto st = s.status(t0 + 9700ms);
    CHECK(st.remaining == 99u);
    REQUIRE(st.resetIn);
    CHECK(*st.resetIn == doctest::Approx(10.0));
}

TEST_CASE("a 429 with RateLimit r=0 pauses until t with a little jitter, then lets one probe through") {
    ClassState s({10.0, 5.0}, t0);
    s.observe(t0, withRateLimit(429, 0, 7), 0.5);
    auto st = s.status(t0);
    // 7 s plus half of min(1 s, 0.7 s).
    CHECK(st.pausedFor == doctest::Approx(7.35));
    CHECK(st.count429 == 1);
    CHECK(st.probing);
    CHECK_FALSE(s.tryAcquire(t0 + 7s).go);

    auto probe = s.tryAcquire(t0 + 7350ms);
    CHECK(probe.go);
    CHECK(probe.probe);
    auto held = s.tryAcquire(t0 + 7350ms);
    CHECK_FALSE(held.go);
    CHECK(held.wait == 10s);  // until the probe's answer, or the probe timeout

    s.observe(t0 + 7400ms, response(200), 0.0);
    CHECK_FALSE(s.status(t0 + 7400ms).probing);
    auto after = s.tryAcquire(t0 + 7400ms);
    CHECK(after.go);
    CHECK_FALSE(after.probe);
}

TEST_CASE("a 429 without RateLimit r=0 honours Retry-After, with a floor and a ceiling") {
    ClassState s({10.0, 5.0}, t0);
    Observation o = withRateLimit(429, 3, 50);  // r > 0: the headers do not explain this 429
    o.retryAfter = 12s;
    s.observe(t0, o, 0.0);
    CHECK(s.status(t0).pausedFor == doctest::Approx(12.0));

    ClassState zero({10.0, 5.0}, t0);
    Observation z = response(429);
    z.retryAfter = 0s;
    zero.observe(t0, z, 0.0);
    CHECK(zero.status(t0).pausedFor == doctest::Approx(0.5));

    ClassState huge({10.0, 5.0}, t0);
    huge.observe(t0, withRateLimit(429, 0, 999999999999999), 1.0);
    CHECK(huge.status(t0).pausedFor == doctest::Approx(3600.0));
    CHECK(huge.tryAcquire(t0 + 3599s).wait == 1s);
}

TEST_CASE("429s without any header back off exponentially and halve the rate; successes recover it") {
    ClassState s({10.0, 5.0}, t0);
    s.observe(t0, response(429), 1.0);
    auto st = s.status(t0);
    CHECK(st.pausedFor == doctest::Approx(1.0));
    CHECK(st.rate == doctest::Approx(5.0));
    CHECK(st.aimdFactor == doctest::Approx(0.5));

    // Requests sent before the pause come back 429 too: counted, but no second decrease.
    s.observe(t0 + 10ms, response(429), 1.0);
    st = s.status(t0 + 10ms);
    CHECK(st.count429 == 2);
    CHECK(st.aimdFactor == doctest::Approx(0.5));
    CHECK(st.pausedFor == doctest::Approx(0.99));

    // The probe fails as well: the pause doubles and the rate halves again.
    REQUIRE(s.tryAcquire(t0 + 1s).probe);
    s.observe(t0 + 1s, response(429), 1.0);
    st = s.status(t0 + 1s);
    CHECK(st.pausedFor == doctest::Approx(2.0));
    CHECK(st.rate == doctest::Approx(2.5));

    // Jitter scales the backoff between half and all of it.
    REQUIRE(s.tryAcquire(t0 + 3s).probe);
    s.observe(t0 + 3s, response(429), 0.0);
    CHECK(s.status(t0 + 3s).pausedFor == doctest::Approx(2.0));

    REQUIRE(s.tryAcquire(t0 + 5s).probe);
    s.observe(t0 + 5s, response(200), 0.0);
    st = s.status(t0 + 5s);
    CHECK(st.aimdFactor == doctest::Approx(0.125 + 0.02));
    for (int i = 0; i < 100; ++i) s.observe(t0 + 5s, response(200), 0.0);
    CHECK(s.status(t0 + 5s).rate == doctest::Approx(10.0));
    CHECK(s.status(t0 + 5s).aimdFactor == 1.0);
}

TEST_CASE("a 429 with headers but no reset time backs off without lowering the rate") {
    ClassState s({10.0, 5.0}, t0);
    s.observe(t0, withPolicy(response(429), 100, 10), 1.0);
    auto st = s.status(t0);
    CHECK(st.pausedFor == doctest::Approx(1.0));
    CHECK(st.aimdFactor == 1.0);
}

TEST_CASE("a lost probe stops blocking the class after the probe timeout or a failed request") {
    ClassPolicy policy;
    policy.probeTimeout = 5s;
    ClassState s({10.0, 5.0}, t0, policy);
    s.observe(t0, response(429), 1.0);
    REQUIRE(s.tryAcquire(t0 + 1s).probe);
    CHECK(s.tryAcquire(t0 + 5s).wait == 1s);
    CHECK(s.tryAcquire(t0 + 6s).probe);

    // A probe that failed without a response lets the next one go at once.
    s.observe(t0 + 6500ms, response(0), 0.0);
    auto next = s.tryAcquire(t0 + 6500ms);
    CHECK(next.go);
    CHECK(next.probe);
}

TEST_CASE("new limits apply at once and the announced budget still sets the pace") {
    ClassState s({2.0, 10.0}, t0);
    s.setLimits(t0, {4.0, 1.0});
    CHECK(s.status(t0).rate == doctest::Approx(4.0));
    CHECK(s.status(t0).tokens == doctest::Approx(1.0));
    s.observe(t0, withPolicy(withRateLimit(200, 1000, 100), 1000, 100), 0.0);
    s.setLimits(t0, {1.0, 1.0});
    CHECK(s.status(t0).rate == doctest::Approx(10.0));
    CHECK(s.status(t0).configuredRate == 1.0);
}

// The window rule (issue: spend the budget the Hub announces), one case per situation.

namespace {

Observation resolvers(int status, std::uint64_t r, std::uint64_t t, std::uint64_t q, std::uint64_t w) {
    return withPolicy(withRateLimit(status, r, t), q, w);
}

// Lets the first request go and answers it with `answer`, as the Limiter does for a fresh class.
void openWith(ClassState& s, TimePoint at, const Observation& answer) {
    REQUIRE(s.tryAcquire(at).probe);
    s.observe(at, answer, 0.0);
}

// How many requests go at `at` before the class holds.
int drain(ClassState& s, TimePoint at, int limit = 10'000) {
    int n = 0;
    while (n < limit && s.tryAcquire(at).go) ++n;
    return n;
}

}  // namespace

TEST_CASE(
    "window rule: with plenty left, all of it less the reserve goes at once, then it holds until the reset") {
    // The anonymous resolver budget, freshly opened by the probe.
    ClassState s({9.0, 50.0}, t0);
    openWith(s, t0, resolvers(200, 2999, 300, 3000, 300));
    CHECK(drain(s, t0) == 2699);
    // It asks again at the reset, or once the oldest request in flight stops counting if that comes
    // first; an answer that frees some of the budget wakes it before either.
    auto d = s.tryAcquire(t0);
    CHECK_FALSE(d.go);
    CHECK(d.wait == 120s);
    auto st = s.status(t0);
    CHECK(st.tokens == 0.0);
    CHECK(st.inFlight == 2699u);
    CHECK(st.reserved == 300u);
    CHECK(st.requests == 2700u);
    // Answers re-seed: each one ends a flight and says one fewer remains, so nothing new may go.
    for (std::uint64_t r = 2998; r > 2988; --r) s.observe(t0 + 1s, resolvers(200, r, 299, 3000, 300), 0.0);
    CHECK_FALSE(s.tryAcquire(t0 + 1s).go);
    CHECK(s.status(t0 + 1s).inFlight == 2689u);
    // Requests never answered stop counting as in flight after 120 s, but as spent: the Hub counted
    // them. Nothing more goes before the reset.
    auto late = s.tryAcquire(t0 + 200s);
    CHECK_FALSE(late.go);
    CHECK(late.wait == 100s);
    CHECK(s.status(t0 + 200s).inFlight == 0u);
    CHECK(s.status(t0 + 200s).remaining == 300u);
}

TEST_CASE("window rule: a window nearly spent lets only what remains above the reserve go") {
    ClassState s({9.0, 50.0}, t0);
    openWith(s, t0, resolvers(200, 305, 120, 3000, 300));
    CHECK(drain(s, t0) == 5);
    CHECK(s.tryAcquire(t0 + 1s).wait == 119s);
    // Below the reserve already (other clients spent it): nothing goes, even with no request out.
    ClassState below({9.0, 50.0}, t0);
    openWith(below, t0, resolvers(200, 250, 60, 3000, 300));
    CHECK(drain(below, t0) == 0);
    CHECK(below.status(t0).tokens == 0.0);
    // At the reset the next window opens with a probe, then q - reserve less what it said was used.
    auto probe = below.tryAcquire(t0 + 60s);
    REQUIRE(probe.go);
    CHECK(probe.probe);
    below.observe(t0 + 60s, resolvers(200, 2999, 300, 3000, 300), 0.0);
    CHECK(drain(below, t0 + 60s) == 2699);
}

TEST_CASE("window rule: the reserve is a share of the quota, rounded down, and changes at once") {
    ClassState none({9.0, 50.0}, t0);
    none.setReserve(0.0);
    openWith(none, t0, resolvers(200, 499, 300, 500, 300));
    CHECK(drain(none, t0) == 499);

    ClassState half({9.0, 50.0}, t0);
    half.setReserve(0.5);
    openWith(half, t0, resolvers(200, 499, 300, 500, 300));
    CHECK(half.status(t0).reserved == 250u);
    CHECK(drain(half, t0, 100) == 100);
    // Lowered on reload: 499 - 50 - 100 in flight.
    half.setReserve(0.1);
    CHECK(drain(half, t0) == 349);
    // Raised: what is in flight already exceeds it; the class holds.
    half.setReserve(0.9);
    CHECK(half.status(t0).reserved == 450u);
    CHECK_FALSE(half.tryAcquire(t0).go);
    // Out of range is clamped to 0..0.9.
    half.setReserve(5.0);
    CHECK(half.status(t0).reserve == doctest::Approx(0.9));
    half.setReserve(-1.0);
    CHECK(half.status(t0).reserve == 0.0);

    // A tiny quota keeps no request back rather than all of them.
    ClassState tiny({9.0, 50.0}, t0);
    openWith(tiny, t0, resolvers(200, 4, 10, 5, 10));
    CHECK(tiny.status(t0).reserved == 0u);
    CHECK(drain(tiny, t0) == 4);
}

TEST_CASE("window rule: requests in flight when the headers arrive count against what remains") {
    // A configured burst of 1 does not bound the window rule: the probe's answer opens 89 at once.
    ClassState s({1.0, 1.0}, t0);
    openWith(s, t0, resolvers(200, 99, 10, 100, 10));
    CHECK(drain(s, t0, 20) == 20);
    // The Hub counted the probe and 5 of the 20 when it answered: 94 left. 19 are still in flight
    // (one of them perhaps counted already; counting it again is the safe side).
    s.observe(t0 + 100ms, resolvers(200, 94, 10, 100, 10), 0.0);
    auto st = s.status(t0 + 100ms);
    CHECK(st.inFlight == 19u);
    CHECK(st.tokens == doctest::Approx(94.0 - 10.0 - 19.0));
    CHECK(drain(s, t0 + 100ms) == 65);
    // An answer that was counted earlier (a higher r) arrives later: the lowest count stands.
    s.observe(t0 + 200ms, resolvers(200, 97, 10, 100, 10), 0.0);
    CHECK(s.status(t0 + 200ms).remaining == 94u);
    CHECK(s.status(t0 + 200ms).tokens == doctest::Approx(94.0 - 10.0 - 83.0));
    // Requests whose answer never comes stop counting after the in-flight timeout.
    CHECK(s.status(t0 + 119s).inFlight == 83u);
    CHECK(s.status(t0 + 120s).inFlight == 65u);  // those let through at t0 + 100 ms remain
    CHECK(s.status(t0 + 120100ms).inFlight == 0u);
}

TEST_CASE("window rule: a late answer from the previous window neither re-opens nor pauses the new one") {
    ClassState s({9.0, 50.0}, t0);
    openWith(s, t0, resolvers(200, 99, 10, 100, 10));
    CHECK(drain(s, t0) == 89);
    // The window's last answers: r = 0, the class pauses until the reset.
    s.observe(t0 + 9s, resolvers(200, 0, 1, 100, 10), 0.0);
    CHECK(s.status(t0 + 9s).pausedFor > 0.0);
    // Past the reset: a probe goes while 88 are still in flight (counted against the new window
    // until their answers come: 100 - 10 - 88 leaves 2).
    auto probe = s.tryAcquire(t0 + 10s);
    REQUIRE(probe.probe);
    // A late answer of the old window arrives before the probe's: it is not the probe's answer and
    // says nothing about the new window (its r = 0 would otherwise pause it).
    s.observe(t0 + 10100ms, resolvers(200, 0, 1, 100, 10), 0.0);
    auto st = s.status(t0 + 10100ms);
    CHECK(st.probing);
    CHECK(st.pausedFor == 0.0);
    CHECK(st.remaining == 100u);
    CHECK_FALSE(s.tryAcquire(t0 + 10100ms).go);
    // The probe's answer opens the new window.
    s.observe(t0 + 10200ms, resolvers(200, 99, 10, 100, 10), 0.0);
    CHECK_FALSE(s.status(t0 + 10200ms).probing);
    CHECK(s.status(t0 + 10200ms).inFlight == 87u);
    CHECK(drain(s, t0 + 10200ms) == 2);
    // More late answers of the old window, with r above what the new one has: they free their
    // flights but neither raise the count nor pause.
    for (int i = 0; i < 20; ++i) s.observe(t0 + 10300ms, resolvers(200, 3, 1, 100, 10), 0.0);
    st = s.status(t0 + 10300ms);
    CHECK(st.remaining == 99u);
    CHECK(st.pausedFor == 0.0);
    REQUIRE(st.resetIn);
    CHECK(*st.resetIn == doctest::Approx(9.9));
    CHECK(drain(s, t0 + 10300ms) == 20);
}

TEST_CASE("window rule: a 429 still pauses the class until the reset, and a probe opens the next window") {
    ClassState s({9.0, 50.0}, t0);
    openWith(s, t0, resolvers(200, 99, 10, 100, 10));
    CHECK(drain(s, t0) == 89);
    s.observe(t0 + 2s, resolvers(429, 0, 8, 100, 10), 0.0);
    auto st = s.status(t0 + 2s);
    CHECK(st.pausedFor == doctest::Approx(8.0));
    CHECK(st.count429 == 1u);
    CHECK_FALSE(s.tryAcquire(t0 + 9s).go);
    REQUIRE(s.tryAcquire(t0 + 10s).probe);
    CHECK_FALSE(s.tryAcquire(t0 + 10s).go);
}

TEST_CASE("shared store down: a fixed window is paced, not spent at once, and keeps its reserve") {
    // One daemon of a fleet: 59 left of 60 per 3 s, the reserve is 6.
    ClassState s({9.0, 50.0}, t0);
    openWith(s, t0, resolvers(200, 59, 3, 60, 3));
    CHECK(s.status(t0).windowRule);
    // The store stops answering: the other daemons spend the same window unseen. The rate rule takes
    // over at once: 9/s, with only what exceeds that pace in what remains (59 - 6 - 9 x 3) at once,
    // where the window rule would send 53.
    s.setSharedOutage(t0, true);
    auto st = s.status(t0);
    CHECK_FALSE(st.windowRule);
    CHECK(st.rate == doctest::Approx(9.0));
    CHECK(st.tokens == doctest::Approx(26.0));
    CHECK(drain(s, t0) == 26);
    CHECK(secondsOf(s.tryAcquire(t0).wait) == doctest::Approx(1.0 / 9.0));
    // The fleet spent most of it: what remains above the reserve over the time left (14 over 2.9 s).
    s.observe(t0 + 100ms, resolvers(200, 20, 3, 60, 3), 0.0);
    CHECK(s.status(t0 + 100ms).rate == doctest::Approx(14.0 / 2.9));
    CHECK(drain(s, t0 + 100ms) == 0);
    // Down to the reserve: nothing more until the reset, which the class asks again at.
    s.observe(t0 + 200ms, resolvers(200, 6, 3, 60, 3), 0.0);
    auto held = s.tryAcquire(t0 + 1s);
    CHECK_FALSE(held.go);
    CHECK(held.wait == 2s);
    // The next window opens paced too: one request at once, no probe-then-burst, then 9/s.
    CHECK(drain(s, t0 + 3s) == 1);
    CHECK_FALSE(s.status(t0 + 3s).probing);
    CHECK(drain(s, t0 + 4s) == 9);
}

TEST_CASE(
    "shared store back mid-window: the pace goes on until the Hub's next reset, then the fresh window") {
    ClassState s({9.0, 50.0}, t0);
    // Down from the start: before any announcement the rate rule applies anyway.
    s.setSharedOutage(t0, true);
    CHECK(s.sharedOutage());
    openWith(s, t0, resolvers(200, 59, 3, 60, 3));
    CHECK_FALSE(s.status(t0).windowRule);
    CHECK(drain(s, t0) == 26);
    // The store answers again, but it never counted these 27 (the probe too), nor what the other
    // daemons sent meanwhile: its count of this window is short, and spending what remains at once
    // (59 - 6 - 26) would overspend it. The class stays paced at 9/s until the Hub's reset.
    s.setSharedOutage(t0 + 10ms, false);
    CHECK_FALSE(s.sharedOutage());
    CHECK(s.sharedResuming());
    auto st = s.status(t0 + 10ms);
    CHECK_FALSE(st.windowRule);
    CHECK(st.rate == doctest::Approx(9.0));
    CHECK(drain(s, t0 + 10ms) == 0);
    CHECK(drain(s, t0 + 1s) == 9);
    CHECK(secondsOf(s.tryAcquire(t0 + 1s).wait) == doctest::Approx(1.0 / 9.0));
    CHECK_FALSE(s.status(t0 + 2900ms).windowRule);
    // At the reset the shared rule resumes with the fresh window, which the store counts whole: one
    // probe first, and its answer lets what remains go at once, less the reserve and the 35 requests
    // of the last window still in flight.
    auto probe = s.tryAcquire(t0 + 3s);
    CHECK(probe.go);
    CHECK(probe.probe);
    CHECK_FALSE(s.sharedResuming());
    CHECK(s.status(t0 + 3s).windowRule);
    CHECK_FALSE(s.tryAcquire(t0 + 3s).go);
    s.observe(t0 + 3100ms, resolvers(200, 59, 3, 60, 3), 0.0);
    CHECK(s.status(t0 + 3100ms).windowRule);
    CHECK(drain(s, t0 + 3100ms) == 59 - 6 - 35);
}

TEST_CASE("shared store back after the window turned: paced until the reset the next answer announces") {
    ClassState s({9.0, 50.0}, t0);
    openWith(s, t0, resolvers(200, 59, 3, 60, 3));
    s.setSharedOutage(t0 + 1s, true);
    CHECK(drain(s, t0 + 1s) == 59 - 6 - 9 * 2);
    // The store answers again once the announced window is over: the window the Hub runs now is not
    // known yet, and the 35 may be in it.
    s.setSharedOutage(t0 + 4s, false);
    CHECK(s.sharedResuming());
    CHECK_FALSE(s.status(t0 + 4s).windowRule);
    CHECK(s.tryAcquire(t0 + 4s).go);
    // The next answer announces that window and its reset: paced until then, the window rule after.
    s.observe(t0 + 4100ms, resolvers(200, 30, 2, 60, 3), 0.0);
    CHECK_FALSE(s.status(t0 + 4100ms).windowRule);
    CHECK(s.status(t0 + 4100ms).rate <= doctest::Approx(9.0));
    CHECK(s.tryAcquire(t0 + 6100ms).probe);
    CHECK_FALSE(s.sharedResuming());
    CHECK(s.status(t0 + 6100ms).windowRule);
}

TEST_CASE("shared store back when nothing went during the outage: the window rule at once") {
    ClassState s({9.0, 50.0}, t0);
    openWith(s, t0, resolvers(200, 59, 3, 60, 3));
    s.setSharedOutage(t0 + 1s, true);
    CHECK_FALSE(s.status(t0 + 1s).windowRule);
    // The store counted every request this class sent in the window: its count is whole.
    s.setSharedOutage(t0 + 2s, false);
    CHECK_FALSE(s.sharedResuming());
    CHECK(s.status(t0 + 2s).windowRule);
    CHECK(drain(s, t0 + 2s) == 59 - 6);
}

TEST_CASE("shared store down after the window turned: the next window starts paced") {
    ClassState s({30.0, 50.0}, t0);
    openWith(s, t0, resolvers(200, 59, 3, 60, 3));
    CHECK(drain(s, t0 + 4s) == 1);  // past the reset: the window rule's probe
    // Until an answer says more: q/w, below the configured 30/s, and the full bucket cut to one.
    s.setSharedOutage(t0 + 4s, true);
    CHECK(s.status(t0 + 4s).rate == doctest::Approx(20.0));
    CHECK(s.status(t0 + 4s).tokens == doctest::Approx(1.0));
    // The probe's answer opens the window: what remains above the reserve over the time left (53 over
    // 3 s), nothing at once.
    s.observe(t0 + 4100ms, resolvers(200, 59, 3, 60, 3), 0.0);
    CHECK(s.status(t0 + 4100ms).rate == doctest::Approx(53.0 / 3.0));
    CHECK(drain(s, t0 + 4100ms) == 0);
    CHECK(drain(s, t0 + 5100ms) == 17);
}

TEST_CASE("a request let go by the window rule can be withdrawn when it will not be sent") {
    ClassState s({9.0, 50.0}, t0);
    // The probe, withdrawn: the next request probes instead.
    REQUIRE(s.tryAcquire(t0).probe);
    CHECK_FALSE(s.tryAcquire(t0).go);
    s.withdraw(t0);
    CHECK(s.status(t0).requests == 0u);
    CHECK(s.status(t0).inFlight == 0u);
    openWith(s, t0, resolvers(200, 59, 3, 60, 3));
    // Five let go under the window rule, then the store fails before they were counted in it: they
    // queue again under the pace, and no longer count as sent.
    CHECK(drain(s, t0, 5) == 5);
    s.setSharedOutage(t0, true);
    for (int i = 0; i < 5; ++i) s.withdraw(t0);
    auto st = s.status(t0);
    CHECK(st.requests == 1u);
    CHECK(st.inFlight == 0u);
    CHECK(drain(s, t0) == 26);
}

TEST_CASE("a policy without w is ignored: the configured rate and burst apply") {
    auto now = utc(2026, 1, 1, 0, 0, 0);
    auto o = makeObservation(RequestClass::Resolvers, 200, "\"resolvers\";r=99;t=10",
                             "\"fixed window\";\"resolvers\";q=100", "", now);
    CHECK_FALSE(o.policy);
    REQUIRE(o.rateLimit);
    ClassState s({2.0, 3.0}, t0);
    openWith(s, t0, o);
    auto st = s.status(t0);
    CHECK_FALSE(st.windowRule);
    CHECK(st.rate == doctest::Approx(2.0));
    CHECK(drain(s, t0) == 2);  // the burst of 3, less the probe
    CHECK(secondsOf(s.tryAcquire(t0).wait) == doctest::Approx(0.5));
}

TEST_CASE("a sliding-window policy keeps the configured rate and burst, within q/w and what remains") {
    auto now = utc(2026, 1, 1, 0, 0, 0);
    auto o = makeObservation(RequestClass::Resolvers, 200, "\"resolvers\";r=90;t=9",
                             "\"sliding window\";\"resolvers\";q=100;w=10", "", now);
    REQUIRE(o.policy);
    CHECK(o.policy->kind == "sliding window");
    ClassState s({5.0, 4.0}, t0);
    openWith(s, t0, o);
    auto st = s.status(t0);
    CHECK_FALSE(st.windowRule);
    CHECK(st.rate == doctest::Approx(5.0));
    CHECK(drain(s, t0) == 3);
    // Little left: the rate falls to what remains over the time left (6 over 6 s), the burst to 0.
    s.observe(t0 + 3s,
              makeObservation(RequestClass::Resolvers, 200, "\"resolvers\";r=6;t=6",
                              "\"sliding window\";\"resolvers\";q=100;w=10", "", now),
              0.0);
    st = s.status(t0 + 3s);
    CHECK(st.rate == doctest::Approx(1.0));
    CHECK(st.tokens == doctest::Approx(0.0));
}

TEST_CASE("a response from a cache is recognised by Age or a cache-status header") {
    CHECK(servedFromCache("12", "", ""));
    CHECK(servedFromCache(" 1 ", "", ""));
    CHECK_FALSE(servedFromCache("0", "", ""));
    CHECK_FALSE(servedFromCache("-3", "", ""));
    CHECK_FALSE(servedFromCache("soon", "", ""));
    CHECK(servedFromCache("", "HIT", ""));
    CHECK(servedFromCache("", "hit", ""));
    CHECK_FALSE(servedFromCache("", "MISS", ""));
    CHECK_FALSE(servedFromCache("", "EXPIRED", ""));
    CHECK(servedFromCache("", "", "HIT from squid.example"));
    CHECK(servedFromCache("", "", "HIT, MISS"));
    CHECK_FALSE(servedFromCache("", "", "MISS from squid.example"));
    CHECK_FALSE(servedFromCache("", "", "HITS"));
    CHECK_FALSE(servedFromCache("", "", ""));
}

TEST_CASE("cache hits cost no budget: their stale headers neither re-seed nor pause, and they are counted") {
    ClassState s({9.0, 50.0}, t0);
    openWith(s, t0, resolvers(200, 99, 10, 100, 10));
    CHECK(drain(s, t0, 10) == 10);
    // Ten answers from a cache replaying r = 0 from an earlier fetch.
    for (int i = 0; i < 10; ++i) {
        Observation hit = resolvers(200, 0, 3, 100, 10);
        hit.cacheHit = true;
        s.observe(t0 + 1s, hit, 0.0);
    }
    auto st = s.status(t0 + 1s);
    CHECK(st.cacheHits == 10u);
    CHECK(st.remaining == 99u);
    CHECK(st.pausedFor == 0.0);
    CHECK(st.inFlight == 0u);
    CHECK(drain(s, t0 + 1s) == 89);

    // Under the rate rule a hit gives its token back, and a first answer from a cache opens the
    // class (the probe learnt the way works) without announcing anything.
    ClassState rate({1.0, 2.0}, t0);
    REQUIRE(rate.tryAcquire(t0).probe);
    Observation hit = resolvers(200, 0, 300, 100, 300);
    hit.cacheHit = true;
    rate.observe(t0, hit, 0.0);
    auto rs = rate.status(t0);
    CHECK_FALSE(rs.probing);
    CHECK_FALSE(rs.windowRule);
    CHECK_FALSE(rs.quota);
    CHECK(rs.tokens == doctest::Approx(2.0));
    for (int i = 0; i < 5; ++i) {
        REQUIRE(rate.tryAcquire(t0).go);
        rate.observe(t0, hit, 0.0);
    }
    CHECK(rate.status(t0).cacheHits == 6u);
    CHECK(rate.status(t0).tokens == doctest::Approx(2.0));
}

TEST_CASE("backoff ceilings double up to the cap and draws stay within them") {
    Backoff b{100ms, 1000ms, 4};
    CHECK(b.ceiling(0) == 100ms);
    CHECK(b.ceiling(1) == 200ms);
    CHECK(b.ceiling(3) == 800ms);
    CHECK(b.ceiling(4) == 1000ms);
    CHECK(b.ceiling(4000000000u) == 1000ms);
    CHECK(b.allows(3));
    CHECK_FALSE(b.allows(4));
    std::mt19937_64 rng(42);
    std::chrono::milliseconds lowest{1000}, highest{0};
    for (int i = 0; i < 2000; ++i) {
        auto d = b.delay(5, rng);
        CHECK(d >= 0ms);
        CHECK(d <= 1000ms);
        lowest = std::min(lowest, d);
        highest = std::max(highest, d);
    }
    // Full jitter spreads over the whole range.
    CHECK(lowest < 100ms);
    CHECK(highest > 900ms);
    for (int i = 0; i < 100; ++i) CHECK(b.delay(0, rng) <= 100ms);
}

namespace {

// A clock that moves only when the test says: the limiter's waits then depend on no wall clock.
class ManualClock final : public LimiterClock {
  public:
    TimePoint now() const override { return now_; }
    TimePoint wakeAt(TimePoint at) const override { return at <= now_ ? TimePoint::min() : TimePoint::max(); }
    void onAdvance(std::function<void()> advanced) override { advanced_ = std::move(advanced); }
    void advance(Duration d) {
        now_ += d;
        if (advanced_) advanced_();
    }

  private:
    TimePoint now_ = t0;
    std::function<void()> advanced_;
};

// Runs what is ready until nothing is; the io_context may have run out of work before.
void settle(net::io_context& io) {
    io.restart();
    io.poll();
}

auto rethrowFailure = [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
};

}  // namespace

TEST_CASE("the limiter serves waiters in FIFO order and a cancelled waiter leaves the queue") {
    auto clock = std::make_shared<ManualClock>();
    net::io_context io;
    LimiterConfig config;
    config.api = {500.0, 1.0};  // one request every 2 ms
    Limiter limiter(io.get_executor(), config, {}, clock);
    std::vector<int> order;
    auto waiter = [&](int id) -> net::awaitable<void> {
        co_await limiter.acquire("HUB.test", RequestClass::Api);
        order.push_back(id);
    };
    bool probed = false;
    net::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
            co_await limiter.acquire("hub.test", RequestClass::Api);  // the first probe spends the burst
            probed = true;
        },
        rethrowFailure);
    settle(io);
    REQUIRE(probed);
    limiter.observe("hub.test", RequestClass::Api, 200, "", "", "");
    net::co_spawn(io, waiter(1), rethrowFailure);
    net::cancellation_signal giveUp;
    std::exception_ptr impatient;
    net::co_spawn(io, limiter.acquire("hub.test", RequestClass::Api),
                  net::bind_cancellation_slot(giveUp.slot(), [&](std::exception_ptr e) { impatient = e; }));
    for (int id = 2; id <= 5; ++id) net::co_spawn(io, waiter(id), rethrowFailure);
    settle(io);
    CHECK(limiter.snapshot().classes.at(0).waiting == 6);
    giveUp.emit(net::cancellation_type::terminal);
    settle(io);
    REQUIRE(impatient);
    CHECK_THROWS_AS(std::rethrow_exception(impatient), boost::system::system_error);
    CHECK(limiter.snapshot().classes.at(0).waiting == 5);

    // Requests to another host or of class Other never wait behind these.
    bool others = false;
    net::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
            co_await limiter.acquire("cdn.test", RequestClass::Api);
            co_await limiter.acquire("hub.test", RequestClass::Other);
            others = true;
        },
        rethrowFailure);
    settle(io);
    CHECK(others);
    CHECK(order.empty());

    // One every 2 ms, in the order they came.
    for (int step = 1; step <= 5; ++step) {
        clock->advance(2ms);
        settle(io);
        CHECK(order.size() == static_cast<std::size_t>(step));
    }
    CHECK(order == std::vector<int>{1, 2, 3, 4, 5});
    auto status = limiter.snapshot();
    REQUIRE(status.classes.size() == 2);
    CHECK(status.classes[1].host == "hub.test");
    CHECK(status.classes[1].waiting == 0);
    CHECK(status.classes[1].state.requests == 6);
    auto j = limiter.status();
    CHECK(j["classes"][1]["requests"] == 6);
    CHECK(j["classes"][1]["remaining"].is_null());
}

TEST_CASE("after a 429 the limiter holds every waiter, lets one probe through, and opens on its answer") {
    auto clock = std::make_shared<ManualClock>();
    net::io_context io;
    LimiterConfig config;
    config.resolvers = {1000.0, 10.0};
    ClassPolicy policy;
    policy.backoffBase = 4ms;
    policy.minPause = 1ms;
    Limiter limiter(io.get_executor(), config, policy, clock);
    int done = 0;
    limiter.observe("hub.test", RequestClass::Resolvers, 429, "", "", "");
    CHECK(limiter.snapshot().classes.at(0).state.count429 == 1);
    for (int id = 1; id <= 3; ++id) {
        net::co_spawn(
            io,
            [&]() -> net::awaitable<void> {
                co_await limiter.acquire("hub.test", RequestClass::Resolvers);
                ++done;
            },
            rethrowFailure);
    }
    settle(io);
    CHECK(done == 0);    // paused
    clock->advance(1s);  // well past the pause
    settle(io);
    // Only the probe went: the others wait for its answer, not for a time.
    CHECK(done == 1);
    CHECK(limiter.snapshot().classes.at(0).waiting == 2);
    clock->advance(1s);
    settle(io);
    CHECK(done == 1);
    limiter.observe("hub.test", RequestClass::Resolvers, 200, "", "", "");
    settle(io);
    CHECK(done == 3);
    CHECK(limiter.snapshot().classes.at(0).state.count429 == 1);
}

TEST_CASE("the bandwidth cap serves transfers in order and can be lifted while they wait") {
    auto clock = std::make_shared<ManualClock>();
    net::io_context io;
    LimiterConfig config;
    config.bandwidth = 1'000'000;  // bursts of 200 kB
    Limiter limiter(io.get_executor(), config, {}, clock);
    std::vector<int> order;
    for (int id = 1; id <= 3; ++id) {
        net::co_spawn(
            io,
            [&, id]() -> net::awaitable<void> {
                co_await limiter.acquireBytes(150'000);
                order.push_back(id);
            },
            rethrowFailure);
    }
    // 450 kB at 1 MB/s with a 200 kB burst: the second at 0.1 s, the third at 0.25 s.
    settle(io);
    CHECK(order == std::vector<int>{1});
    clock->advance(90ms);
    settle(io);
    CHECK(order == std::vector<int>{1});
    clock->advance(20ms);
    settle(io);
    CHECK(order == std::vector<int>{1, 2});
    clock->advance(130ms);
    settle(io);
    CHECK(order == std::vector<int>{1, 2});
    clock->advance(20ms);
    settle(io);
    CHECK(order == std::vector<int>{1, 2, 3});
    auto status = limiter.snapshot();
    CHECK(status.bandwidth.bytes == 450'000);
    CHECK(status.bandwidth.waiting == 0);
    auto text = toPrometheus(status);
    CHECK(text.find("hfwarm_bandwidth_bytes_total 450000\n") != std::string::npos);
    CHECK(text.find("hfwarm_bandwidth_limit_bytes_per_second 1000000\n") != std::string::npos);

    // 10 MB would take 10 s; lifting the cap releases the waiter at once.
    bool lifted = false;
    net::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
            co_await limiter.acquireBytes(10'000'000);
            co_await limiter.acquireBytes(10'000'000);
            lifted = true;
        },
        rethrowFailure);
    settle(io);
    CHECK(limiter.snapshot().bandwidth.waiting == 1);
    auto unlimited = config;
    unlimited.bandwidth = 0;
    limiter.setLimits(unlimited);
    settle(io);
    CHECK(lifted);
}

// RESP2 encoding and decoding for the shared budget's Redis client (DESIGN.md section 7).

TEST_CASE("a Redis command is encoded as an array of binary-safe bulk strings") {
    CHECK(resp::encodeCommand({"SELECT", "2"}) == "*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n");
    CHECK(resp::encodeCommand({"SET", "k", std::string("a\r\n\0b", 5), ""}) ==
          std::string("*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na\r\n\0b\r\n$0\r\n\r\n", 37));
}

TEST_CASE("every RESP2 reply type is decoded with the bytes it took") {
    auto one = [](std::string_view in) {
        auto d = resp::decode(in);
        REQUIRE(d.has_value());
        REQUIRE(*d);
        return **d;
    };
    auto ok = one("+OK\r\n:7\r\n");
    CHECK(ok.value.type == resp::Value::Type::Simple);
    CHECK(ok.value.text == "OK");
    CHECK(ok.consumed == 5);
    auto err = one("-NOSCRIPT No matching script\r\n");
    CHECK(err.value.type == resp::Value::Type::Error);
    CHECK(err.value.text == "NOSCRIPT No matching script");
    auto n = one(":-1234\r\n");
    CHECK(n.value.type == resp::Value::Type::Integer);
    CHECK(n.value.integer == -1234);
    auto bulk = one("$4\r\na\r\nb\r\n");
    CHECK(bulk.value.type == resp::Value::Type::Bulk);
    CHECK(bulk.value.text == "a\r\nb");
    CHECK(bulk.consumed == 10);
    CHECK(one("$-1\r\n").value.type == resp::Value::Type::Null);
    CHECK(one("*-1\r\n").value.type == resp::Value::Type::Null);
    auto array = one("*3\r\n:1\r\n$0\r\n\r\n*1\r\n+x\r\n");
    REQUIRE(array.value.type == resp::Value::Type::Array);
    REQUIRE(array.value.elements.size() == 3);
    CHECK(array.value.elements[0].integer == 1);
    CHECK(array.value.elements[1].text.empty());
    CHECK(array.value.elements[2].elements.at(0).text == "x");
    CHECK(array.consumed == 22);
}

TEST_CASE("a RESP2 reply cut anywhere asks for more bytes instead of failing") {
    const std::string whole = "*2\r\n$5\r\nhello\r\n:42\r\n";
    for (std::size_t cut = 0; cut < whole.size(); ++cut) {
        auto d = resp::decode(std::string_view(whole).substr(0, cut));
        REQUIRE_MESSAGE(d.has_value(), "cut at " << cut);
        CHECK_MESSAGE(!*d, "cut at " << cut);
    }
    auto d = resp::decode(whole);
    REQUIRE(d.has_value());
    REQUIRE(*d);
    CHECK((*d)->consumed == whole.size());
}

TEST_CASE("bytes that are not RESP2 are an error, not a reply") {
    for (std::string_view bad : {"?x\r\n", ":12a\r\n", ":\r\n", "$-2\r\n", "$3\r\nabcd\r\n", "*-5\r\n",
                                 "$99999999999\r\n", "*999999999\r\n"}) {
        CAPTURE(bad);
        CHECK_FALSE(resp::decode(bad).has_value());
    }
    std::string deep;
    for (int i = 0; i < 20; ++i) deep += "*1\r\n";
    CHECK_FALSE(resp::decode(deep + ":1\r\n").has_value());
}

TEST_CASE("the redis URL gives host, port, credentials and database, and refuses TLS") {
    auto plain = resp::parseUrl("redis://cache.internal");
    REQUIRE(plain.has_value());
    CHECK(plain->host == "cache.internal");
    CHECK(plain->port == 6379);
    CHECK(plain->password.empty());
    CHECK(plain->db == 0);
    auto full = resp::parseUrl("redis://fleet:s3cret@10.0.0.5:6380/3");
    REQUIRE(full.has_value());
    CHECK(full->host == "10.0.0.5");
    CHECK(full->port == 6380);
    CHECK(full->user == "fleet");
    CHECK(full->password == "s3cret");
    CHECK(full->db == 3);
    CHECK(full->display() == "redis://10.0.0.5:6380/3");
    auto passwordOnly = resp::parseUrl("redis://:pw@[::1]:7000/");
    REQUIRE(passwordOnly.has_value());
    CHECK(passwordOnly->host == "::1");
    CHECK(passwordOnly->user.empty());
    CHECK(passwordOnly->password == "pw");
    CHECK(passwordOnly->display() == "redis://[::1]:7000/0");

    auto tls = resp::parseUrl("rediss://user:pw@cache:6380/0");
    REQUIRE_FALSE(tls.has_value());
    CHECK(tls.error().message.find("rediss:// (TLS)") != std::string::npos);
    CHECK(tls.error().message.find("pw") == std::string::npos);
    for (std::string_view bad : {"http://cache:6379", "redis://", "redis://cache:0", "redis://cache/x",
                                 "redis://cache/1/2", "redis://cache/99999", "redis://cache/0?x=1"}) {
        CAPTURE(bad);
        CHECK_FALSE(resp::parseUrl(bad).has_value());
    }
}

TEST_CASE("the shared window outlasts the Hub's by a tenth, at most a second, under one key per class") {
    CHECK(sharedWindow(300s) == 301s);
    CHECK(sharedWindow(3s) == 3300ms);
    CHECK(sharedKey("HF.co", RequestClass::Resolvers) == "hfwarm:hf.co:resolvers");
    CHECK(sharedKey("127.0.0.1:8443", RequestClass::Api) == "hfwarm:127.0.0.1:8443:api");
}
