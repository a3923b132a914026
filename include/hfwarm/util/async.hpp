// Small async primitives for coroutines on one io_context thread: a gate that holds waiters while
// closed, a FIFO counting semaphore, a wait group and a sleep. Each waiter sleeps on a timer that the
// primitive cancels to wake it.
#pragma once

#include "hfwarm/util/aliases.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>

namespace hfwarm::util {

namespace detail {
constexpr auto kTuple = net::as_tuple(net::use_awaitable);
}  // namespace detail

// Holds waiters while closed: waiters sleep on one timer that open() cancels.
class Gate {
  public:
    explicit Gate(net::any_io_executor executor) : timer_(executor, net::steady_timer::time_point::max()) {}
    void close() { closed_ = true; }
    void open() {
        closed_ = false;
        timer_.cancel();
    }
    bool closed() const { return closed_; }
    net::awaitable<void> pass() {
        while (closed_) {
            timer_.expires_at(net::steady_timer::time_point::max());
            co_await timer_.async_wait(detail::kTuple);
        }
    }

  private:
    net::steady_timer timer_;
    bool closed_ = false;
};

// A counting semaphore for coroutines on one thread: waiters are woken in FIFO order by cancelling
// their timer, and the slot passes straight to the woken waiter.
class Slots {
  public:
    Slots(net::any_io_executor executor, std::size_t count) : executor_(std::move(executor)), free_(count) {}

    // Takes a slot, waiting in FIFO order. A waiter cancelled while it waits (a lost race, a
    // stopped task) leaves the queue and throws operation_aborted: it took no slot, and the next
    // release() goes to the next waiter instead of being lost.
    net::awaitable<void> acquire() {
        if (free_ > 0 && waiters_.empty()) {
            --free_;
            co_return;
        }
        auto waiter = std::make_shared<Waiter>(executor_);
        waiters_.push_back(waiter);
        co_await waiter->timer.async_wait(detail::kTuple);
        if (waiter->granted) co_return;
        std::erase(waiters_, waiter);
        throw boost::system::system_error(net::error::operation_aborted, "waiting for a slot was cancelled");
    }

    void release() {
        if (waiters_.empty()) {
            ++free_;
            return;
        }
        auto next = waiters_.front();
        waiters_.pop_front();
        next->granted = true;  // the slot passes straight to it
        next->timer.cancel();
    }

  private:
    struct Waiter {
        explicit Waiter(net::any_io_executor executor)
            : timer(executor, net::steady_timer::time_point::max()) {}
        net::steady_timer timer;
        bool granted = false;
    };

    net::any_io_executor executor_;
    std::size_t free_;
    std::deque<std::shared_ptr<Waiter>> waiters_;
};

// Waits for a set of spawned coroutines: add() before each spawn, done() when each ends.
class WaitGroup {
  public:
    explicit WaitGroup(net::any_io_executor executor)
        : timer_(executor, net::steady_timer::time_point::max()) {}
    void add() { ++pending_; }
    void done() {
        if (--pending_ == 0) timer_.cancel();
    }
    net::awaitable<void> wait() {
        while (pending_ > 0) co_await timer_.async_wait(detail::kTuple);
    }

  private:
    net::steady_timer timer_;
    std::size_t pending_ = 0;
};

// Sleeps for `duration` on the calling coroutine's executor.
inline net::awaitable<void> sleepFor(std::chrono::milliseconds duration) {
    net::steady_timer timer(co_await net::this_coro::executor, duration);
    co_await timer.async_wait(detail::kTuple);
}

}  // namespace hfwarm::util
