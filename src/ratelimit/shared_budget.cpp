#include "hfwarm/ratelimit/shared_budget.hpp"

#include "hfwarm/util/log.hpp"

#include <algorithm>
#include <cctype>

namespace hfwarm::ratelimit {
namespace {

// KEYS[1]: the window, a hash: `n`, the requests counted; `opened`, the time of its first take on the
// Redis server's clock in ms; `quota`, the announced quota less the reserve; `aligned`, set once its
// end follows the Hub's announced reset. One key, so that what is known of a window expires with its
// count. ARGV[1]: the quota; ARGV[2]: the window in ms; ARGV[3]: 1 when the quota is the Hub's
// announced one, 0 for a guess; ARGV[4]: ms until the Hub's announced reset, 0 when unknown; ARGV[5]: 1
// when the caller is paced after an outage of Redis. Counts the request and answers 0 (go) or the ms
// until the window ends. One script, so that no other daemon's take can come between the count and
// the check. Refused takes count too, as on the Hub; they only keep the count above the quota until
// the window ends.
// - A window opens at its first take and lasts the Hub's window plus a margin (a first guess of 300 s
//   is shortened to that once the Hub has announced its window).
// - The first take that knows the Hub's reset moves the end there, later takes only bring it closer:
//   the Hub's window opens when a request arrives, which a stall can put well after the take that
//   opened the shared one, and the Hub's reset, rounded up to whole seconds, is never early. A reset
//   less than half a window after the window opened is the previous window's, and is ignored.
// - With no window open, a take that knows the Hub's window still runs waits for its reset rather
//   than opening one: the window that counted for it ended first. A take paced after an outage opens
//   one ending at that reset instead: Redis lost or never had the count, and the caller's pace, not
//   the count, bounds what it sends until the reset.
// - A daemon that has not heard the Hub's policy yet (its first request) is held to the quota the
//   others announced, not to its own guess.
constexpr std::string_view kScript = R"lua(local quota = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local resetIn = tonumber(ARGV[4])
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 and resetIn > 0 and ARGV[5] ~= '1' then return resetIn end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
if n == 1 then
  redis.call('HSET', KEYS[1], 'opened', now)
  ttl = -1
end
if ttl < 0 or ttl > window then
  redis.call('PEXPIRE', KEYS[1], window)
  ttl = window
end
local opened = tonumber(redis.call('HGET', KEYS[1], 'opened') or now)
if resetIn > 0 and (n == 1 or now + resetIn >= opened + window / 2) and
    (resetIn < ttl or redis.call('HEXISTS', KEYS[1], 'aligned') == 0) then
  redis.call('PEXPIRE', KEYS[1], resetIn)
  redis.call('HSET', KEYS[1], 'aligned', 1)
  ttl = resetIn
end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'quota', quota)
else
  local known = redis.call('HGET', KEYS[1], 'quota')
  if known then quota = tonumber(known) end
end
if n <= quota then return 0 end
return math.max(ttl, 1)
)lua";

}  // namespace

std::string sharedKey(std::string_view host, RequestClass cls) {
    std::string key = "hfwarm:";
    for (char c : host) key.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    key += ':';
    key += className(cls);
    return key;
}

std::chrono::milliseconds sharedWindow(std::chrono::milliseconds hubWindow) {
    return hubWindow + std::min<std::chrono::milliseconds>(hubWindow / 10, std::chrono::seconds(1));
}

SharedBudget::SharedBudget(net::any_io_executor executor, resp::Endpoint endpoint, RedisOptions options)
    : client_(std::move(executor), std::move(endpoint), options) {}

net::awaitable<Result<resp::Value>> SharedBudget::run(const std::string& key, const SharedTake& take) {
    // Named vectors: GCC 12 rejects a braced list of strings inside co_await ("array used as
    // initializer").
    std::vector<std::string> keysAndArgs{"1",
                                         key,
                                         std::to_string(take.quota),
                                         std::to_string(sharedWindow(take.window).count()),
                                         take.announced ? "1" : "0",
                                         std::to_string(std::max<std::int64_t>(0, take.resetIn.count())),
                                         take.paced ? "1" : "0"};
    if (sha_.empty()) {
        std::vector<std::string> load{"SCRIPT", "LOAD", std::string(kScript)};
        auto loaded = co_await client_.command(load);
        if (!loaded) co_return loaded;
        if (loaded->type != resp::Value::Type::Bulk) co_return loaded;
        sha_ = loaded->text;
    }
    std::vector<std::string> evalsha{"EVALSHA", sha_};
    evalsha.insert(evalsha.end(), keysAndArgs.begin(), keysAndArgs.end());
    auto reply = co_await client_.command(evalsha);
    // The server forgot the script (SCRIPT FLUSH, a restart): EVAL sends it again and caches it.
    if (reply && reply->type == resp::Value::Type::Error && reply->text.starts_with("NOSCRIPT")) {
        std::vector<std::string> eval{"EVAL", std::string(kScript)};
        eval.insert(eval.end(), keysAndArgs.begin(), keysAndArgs.end());
        reply = co_await client_.command(eval);
    }
    co_return reply;
}

net::awaitable<std::optional<std::chrono::milliseconds>> SharedBudget::take(std::string host,
                                                                            RequestClass cls,
                                                                            SharedTake request) {
    auto reply = co_await run(sharedKey(host, cls), request);
    // A transport failure was logged by the client; the caller goes on its local budget.
    if (!reply) co_return std::nullopt;
    if (reply->type != resp::Value::Type::Integer) {
        if (!scriptFailing_) {
            scriptFailing_ = true;
            util::logger("ratelimit")
                ->warn("redis refused the shared budget script, using local rate limits only url={} reply={}",
                       client_.endpoint().display(),
                       reply->type == resp::Value::Type::Error ? reply->text : "not an integer");
        }
        co_return std::nullopt;
    }
    scriptFailing_ = false;
    co_return std::chrono::milliseconds(std::max<std::int64_t>(0, reply->integer));
}

}  // namespace hfwarm::ratelimit
