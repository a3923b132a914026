#include "hfwarm/ratelimit/shared_budget.hpp"

#include "hfwarm/util/log.hpp"

#include <algorithm>
#include <cctype>

namespace hfwarm::ratelimit {
namespace {

// KEYS[1]: the window's counter; ARGV[1]: the quota; ARGV[2]: the window in ms. Counts the request,
// opens the window on the first one (or shortens a longer one a first guess opened), and answers 0
// (go) or the ms until the window ends. One script, so that no other daemon's take can come between
// the count and the check. Refused takes count too, as on the Hub; they only keep the count above the
// quota until the window ends.
constexpr std::string_view kScript = R"lua(local n = redis.call('INCR', KEYS[1])
local window = tonumber(ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 or ttl > window then
  redis.call('PEXPIRE', KEYS[1], window)
  ttl = window
end
if n <= tonumber(ARGV[1]) then return 0 end
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

net::awaitable<Result<resp::Value>> SharedBudget::run(const std::string& key, std::uint64_t quota,
                                                      std::chrono::milliseconds window) {
    // Named vectors: GCC 12 rejects a braced list of strings inside co_await ("array used as
    // initializer").
    std::vector<std::string> keysAndArgs{"1", key, std::to_string(quota), std::to_string(window.count())};
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

net::awaitable<std::optional<std::chrono::milliseconds>> SharedBudget::take(
    std::string host, RequestClass cls, std::uint64_t quota, std::chrono::milliseconds window) {
    auto reply = co_await run(sharedKey(host, cls), quota, sharedWindow(window));
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
