#include "hfwarm/ratelimit/headers.hpp"

#include <array>
#include <cstddef>
#include <utility>

namespace hfwarm::ratelimit {
namespace {

// Structured-field integers have at most 15 digits (RFC 8941 3.3.1); anything longer is malformed,
// which also keeps every value far from overflowing a 64-bit count of nanoseconds once converted.
constexpr std::size_t kMaxDigits = 15;

bool isDigit(char c) {
    return c >= '0' && c <= '9';
}

bool isLcAlpha(char c) {
    return c >= 'a' && c <= 'z';
}

// Parses 1 to 15 digits; nullopt for anything else (a sign, a decimal point, too many digits).
std::optional<std::uint64_t> parseDigits(std::string_view s) {
    if (s.empty() || s.size() > kMaxDigits) return std::nullopt;
    std::uint64_t value = 0;
    for (char c : s) {
        if (!isDigit(c)) return std::nullopt;
        value = value * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return value;
}

// A parameter value: a non-negative integer when it is one, else only known to be well formed.
struct Value {
    std::optional<std::uint64_t> integer;
};

struct Param {
    std::string key;
    Value value;
};

// An item as the Hub writes it: one or more quoted strings, then `;key=value` parameters.
struct RawItem {
    std::vector<std::string> strings;
    std::vector<Param> params;

    // Structured fields let a later duplicate key win.
    const Param* find(std::string_view key) const {
        const Param* found = nullptr;
        for (const auto& p : params)
            if (p.key == key) found = &p;
        return found;
    }
};

class Cursor {
  public:
    explicit Cursor(std::string_view text) : text_(text) {}

    bool done() const { return pos_ >= text_.size(); }
    char peek() const { return done() ? '\0' : text_[pos_]; }
    void skipSpace() {
        while (!done() && (text_[pos_] == ' ' || text_[pos_] == '\t')) ++pos_;
    }
    bool eat(char c) {
        if (peek() != c) return false;
        ++pos_;
        return true;
    }

    // sf-string: printable ASCII between double quotes, with \" and \\ escapes.
    std::optional<std::string> quoted() {
        if (!eat('"')) return std::nullopt;
        std::string out;
        while (!done()) {
            char c = text_[pos_++];
            if (c == '"') return out;
            if (c == '\\') {
                if (done()) return std::nullopt;
                c = text_[pos_++];
                if (c != '"' && c != '\\') return std::nullopt;
            } else if (c < 0x20 || c > 0x7e) {
                return std::nullopt;
            }
            out.push_back(c);
        }
        return std::nullopt;
    }

    // sf-key: lcalpha or '*', then lcalpha, digits, '_', '-', '.', '*'.
    std::optional<std::string> key() {
        std::size_t start = pos_;
        if (!isLcAlpha(peek()) && peek() != '*') return std::nullopt;
        while (!done()) {
            char c = text_[pos_];
            if (!isLcAlpha(c) && !isDigit(c) && c != '_' && c != '-' && c != '.' && c != '*') break;
            ++pos_;
        }
        return std::string(text_.substr(start, pos_ - start));
    }

    // A bare item: a quoted string, or a run of visible characters up to whitespace, ';' or ','
    // (integer, decimal, token, byte sequence, boolean). Only integers are interpreted.
    std::optional<Value> value() {
        if (peek() == '"') {
            if (!quoted()) return std::nullopt;
            return Value{};
        }
        std::size_t start = pos_;
        while (!done()) {
            char c = text_[pos_];
            if (c == ' ' || c == '\t' || c == ';' || c == ',') break;
            if (c < 0x21 || c > 0x7e || c == '"') return std::nullopt;
            ++pos_;
        }
        std::string_view run = text_.substr(start, pos_ - start);
        if (run.empty()) return std::nullopt;
        bool numeric = isDigit(run.front()) || (run.front() == '-' && run.size() > 1 && isDigit(run[1]));
        if (!numeric) return Value{};
        if (run.front() == '-') {
            // A negative integer is well formed but no count the Hub means; callers reject it
            // where a count is required. Overlong or non-integer numbers are malformed.
            if (!parseDigits(run.substr(1))) return std::nullopt;
            return Value{};
        }
        auto digits = parseDigits(run);
        if (!digits) return std::nullopt;
        return Value{digits};
    }

  private:
    std::string_view text_;
    std::size_t pos_ = 0;
};

std::optional<RawItem> parseItem(Cursor& in) {
    RawItem item;
    for (;;) {
        in.skipSpace();
        if (in.peek() == '"') {
            if (!item.params.empty()) return std::nullopt;
            auto s = in.quoted();
            if (!s) return std::nullopt;
            item.strings.push_back(std::move(*s));
        } else {
            auto k = in.key();
            if (!k) return std::nullopt;
            in.skipSpace();
            Value v;
            if (in.eat('=')) {
                in.skipSpace();
                auto parsed = in.value();
                if (!parsed) return std::nullopt;
                v = *parsed;
            }
            item.params.push_back(Param{std::move(*k), v});
        }
        in.skipSpace();
        if (!in.eat(';')) break;
    }
    if (item.strings.empty()) return std::nullopt;
    return item;
}

std::optional<std::vector<RawItem>> parseList(std::string_view header) {
    Cursor in(header);
    std::vector<RawItem> items;
    for (;;) {
        auto item = parseItem(in);
        if (!item) return std::nullopt;
        items.push_back(std::move(*item));
        in.skipSpace();
        if (in.done()) return items;
        if (!in.eat(',')) return std::nullopt;
    }
}

std::optional<std::uint64_t> requiredCount(const RawItem& item, std::string_view key) {
    const Param* p = item.find(key);
    if (!p) return std::nullopt;
    return p->value.integer;
}

}  // namespace

std::optional<std::vector<RateLimitItem>> parseRateLimit(std::string_view header) {
    auto raw = parseList(header);
    if (!raw) return std::nullopt;
    std::vector<RateLimitItem> out;
    for (const auto& item : *raw) {
        auto r = requiredCount(item, "r");
        auto t = requiredCount(item, "t");
        if (!r || !t || item.strings.back().empty()) return std::nullopt;
        out.push_back(RateLimitItem{item.strings.back(), *r, *t});
    }
    return out;
}

std::optional<std::vector<RateLimitPolicyItem>> parseRateLimitPolicy(std::string_view header) {
    auto raw = parseList(header);
    if (!raw) return std::nullopt;
    std::vector<RateLimitPolicyItem> out;
    for (const auto& item : *raw) {
        auto q = requiredCount(item, "q");
        auto w = requiredCount(item, "w");
        if (!q || !w || *w == 0 || item.strings.back().empty() || item.strings.size() > 2)
            return std::nullopt;
        std::string kind = item.strings.size() == 2 ? item.strings.front() : std::string();
        out.push_back(RateLimitPolicyItem{std::move(kind), item.strings.back(), *q, *w});
    }
    return out;
}

namespace {

// IMF-fixdate (RFC 9110 5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`, exactly 29 characters.
std::optional<std::chrono::sys_seconds> parseImfFixdate(std::string_view s) {
    using namespace std::chrono;
    static constexpr std::array<std::string_view, 7> kDays{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    static constexpr std::array<std::string_view, 12> kMonths{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    if (s.size() != 29) return std::nullopt;
    bool dayKnown = false;
    for (auto d : kDays) dayKnown = dayKnown || s.substr(0, 3) == d;
    if (!dayKnown || s.substr(3, 2) != ", " || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[19] != ':' ||
        s[22] != ':' || s.substr(25) != " GMT")
        return std::nullopt;
    unsigned monthIndex = 0;
    while (monthIndex < kMonths.size() && s.substr(8, 3) != kMonths[monthIndex]) ++monthIndex;
    if (monthIndex == kMonths.size()) return std::nullopt;
    auto day = parseDigits(s.substr(5, 2));
    auto yearDigits = parseDigits(s.substr(12, 4));
    auto hour = parseDigits(s.substr(17, 2));
    auto minute = parseDigits(s.substr(20, 2));
    auto second = parseDigits(s.substr(23, 2));
    if (!day || !yearDigits || !hour || !minute || !second) return std::nullopt;
    // RFC 9110 allows second 60 (a leap second).
    if (*hour > 23 || *minute > 59 || *second > 60) return std::nullopt;
    year_month_day date{year{static_cast<int>(*yearDigits)}, month{monthIndex + 1},
                        std::chrono::day{static_cast<unsigned>(*day)}};
    if (!date.ok()) return std::nullopt;
    return sys_days{date} + hours{*hour} + minutes{*minute} + seconds{*second};
}

}  // namespace

std::optional<std::chrono::seconds> parseRetryAfter(std::string_view header,
                                                    std::chrono::system_clock::time_point now) {
    while (!header.empty() && (header.front() == ' ' || header.front() == '\t')) header.remove_prefix(1);
    while (!header.empty() && (header.back() == ' ' || header.back() == '\t')) header.remove_suffix(1);
    if (header.empty()) return std::nullopt;
    if (isDigit(header.front())) {
        auto delta = parseDigits(header);
        if (!delta) return std::nullopt;
        return std::chrono::seconds{static_cast<std::chrono::seconds::rep>(*delta)};
    }
    auto date = parseImfFixdate(header);
    if (!date) return std::nullopt;
    auto nowSeconds = std::chrono::time_point_cast<std::chrono::seconds>(now);
    if (*date <= nowSeconds) return std::chrono::seconds{0};
    return *date - nowSeconds;
}

}  // namespace hfwarm::ratelimit
