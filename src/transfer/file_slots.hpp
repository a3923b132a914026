// The engine's files-in-flight slots: a counting semaphore for coroutines on one thread whose
// waiters are served by their entry's rank: promoted entries first (the latest promoted first),
// then in manifest order, then in the order the files came. A promotion reorders waiters already
// queued, because the rank is read when a slot frees, not when the waiter queues; files already
// holding a slot are never interrupted.
#pragma once

#include "hfwarm/util/aliases.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace hfwarm::transfer {

// Where an entry's files stand in the queue for slots.
struct QueueRank {
    std::uint64_t promotion = 0;  // 0: never promoted; else higher for a later promotion
    std::size_t place = 0;        // the entry's place in the manifests
};

class FileSlots {
  public:
    FileSlots(net::any_io_executor executor, std::size_t count)
        : executor_(std::move(executor)), free_(count) {}

    // Takes a slot; `rank` is the waiting entry's, read at each release.
    // A waiter cancelled while it waits leaves the queue, takes no slot, and throws
    // operation_aborted.
    net::awaitable<void> acquire(std::shared_ptr<const QueueRank> rank) {
        if (free_ > 0 && waiters_.empty()) {
            --free_;
            co_return;
        }
        auto waiter = std::make_shared<Waiter>(executor_, std::move(rank), arrivals_++);
        waiters_.push_back(waiter);
        co_await waiter->timer.async_wait(net::as_tuple(net::use_awaitable));
        if (waiter->granted) co_return;
        std::erase(waiters_, waiter);
        throw boost::system::system_error(net::error::operation_aborted,
                                          "waiting for a file slot was cancelled");
    }

    // Frees a slot: it passes straight to the first waiter by rank, the earliest among equals.
    void release() {
        if (waiters_.empty()) {
            ++free_;
            return;
        }
        auto next = std::min_element(waiters_.begin(), waiters_.end(), [](const auto& a, const auto& b) {
            if (a->rank->promotion != b->rank->promotion) return a->rank->promotion > b->rank->promotion;
            if (a->rank->place != b->rank->place) return a->rank->place < b->rank->place;
            return a->arrival < b->arrival;
        });
        auto waiter = *next;
        waiters_.erase(next);
        waiter->granted = true;
        waiter->timer.cancel();
    }

  private:
    struct Waiter {
        Waiter(net::any_io_executor executor, std::shared_ptr<const QueueRank> rank, std::uint64_t arrival)
            : timer(executor, net::steady_timer::time_point::max()),
              rank(std::move(rank)),
              arrival(arrival) {}
        net::steady_timer timer;
        std::shared_ptr<const QueueRank> rank;
        std::uint64_t arrival;
        bool granted = false;
    };

    net::any_io_executor executor_;
    std::size_t free_;
    std::uint64_t arrivals_ = 0;
    std::vector<std::shared_ptr<Waiter>> waiters_;
};

}  // namespace hfwarm::transfer
