#include "hfwarm/ratelimit/backoff.hpp"

#include <algorithm>

namespace hfwarm::ratelimit {

std::chrono::milliseconds Backoff::ceiling(unsigned attempt) const {
    auto c = std::max(base, std::chrono::milliseconds{0});
    // Doubling stops at the cap, so a large attempt number cannot overflow.
    for (unsigned i = 0; i < attempt && c < cap; ++i) c *= 2;
    return std::min(c, cap);
}

}  // namespace hfwarm::ratelimit
