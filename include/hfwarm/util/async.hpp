// Async primitives for coroutines on one io_context thread: an event, a gate, a FIFO counting
// semaphore, a wait group, a task group with per-child cancellation, and a sleep. Every waiter sleeps
// on its own timer that the primitive cancels to wake it, and knows whether it was woken or
// cancelled.
#pragma once

#include "hfwarm/util/aliases.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <list>
#include <memory>
#include <utility>

namespace hfwarm::util {

namespace detail {
constexpr auto kTuple = net::as_tuple(net::use_awaitable);

inline boost::system::system_error cancelled(const char* what) {
    return boost::system::system_error(net::error::operation_aborted, what);
}
}  // namespace detail

// A flag that coroutines wait for: set() wakes every waiter, reset() lowers it again.
class Event {
  public:
    using Clock = net::steady_timer::clock_type;

    explicit Event(net::any_io_executor executor) : executor_(std::move(executor)) {}

    void set() {
        set_ = true;
        for (auto& waiter : waiters_) {
            waiter->woken = true;
            waiter->timer.cancel();
        }
        waiters_.clear();
    }
    void reset() { set_ = false; }
    bool isSet() const { return set_; }

    // Waits until the event is set or `deadline` passes; returns whether it was set. A waiter
    // cancelled while it waits leaves the list and throws operation_aborted.
    net::awaitable<bool> waitUntil(Clock::time_point deadline) {
        if (set_) co_return true;
        auto waiter = std::make_shared<Waiter>(executor_, deadline);
        waiters_.push_back(waiter);
        // The waiter leaves the list however the wait ends, also when its coroutine is destroyed.
        Leave leave{this, waiter};
        auto [ec] = co_await waiter->timer.async_wait(detail::kTuple);
        if (waiter->woken) co_return true;
        if (ec == net::error::operation_aborted)
            throw detail::cancelled("waiting for an event was cancelled");
        co_return false;
    }

    net::awaitable<void> wait() { co_await waitUntil(Clock::time_point::max()); }

  private:
    struct Waiter {
        Waiter(net::any_io_executor executor, Clock::time_point deadline) : timer(executor, deadline) {}
        net::steady_timer timer;
        bool woken = false;
    };
    struct Leave {
        Event* event;
        std::shared_ptr<Waiter> waiter;
        ~Leave() { std::erase(event->waiters_, waiter); }
    };

    net::any_io_executor executor_;
    bool set_ = false;
    std::list<std::shared_ptr<Waiter>> waiters_;
};

namespace detail {
// The wait of a group of tasks (WaitGroup::wait, TaskGroup::join): until `idle` is set. A caller
// cancelled meanwhile still waits, since the tasks refer to the group and may refer to the caller:
// each cancellation calls `onCancel` and the wait goes on; once the group is idle the caller gets
// operation_aborted. `idle` belongs to the group, which outlives this wait.
inline net::awaitable<void> waitForGroup(Event* idle, std::function<void()> onCancel) {
    bool wasCancelled = false;
    while (!idle->isSet()) {
        bool aborted = false;
        try {
            co_await idle->wait();
        } catch (const boost::system::system_error&) {
            aborted = true;
        }
        if (aborted) {
            wasCancelled = true;
            if (onCancel) onCancel();
            co_await net::this_coro::reset_cancellation_state();
        }
    }
    if (wasCancelled) throw cancelled("the wait for a group of tasks was cancelled");
}
}  // namespace detail

// Holds waiters while closed.
class Gate {
  public:
    explicit Gate(net::any_io_executor executor) : opened_(std::move(executor)) { opened_.set(); }
    void close() { opened_.reset(); }
    void open() { opened_.set(); }
    bool closed() const { return !opened_.isSet(); }
    // Returns at once while open; a waiter cancelled while closed throws operation_aborted.
    net::awaitable<void> pass() { co_await opened_.wait(); }

  private:
    Event opened_;
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
        // A waiter that did not get the slot leaves the queue however its wait ends (cancelled,
        // or already cancelled when it began).
        Leave leave{this, waiter};
        co_await waiter->timer.async_wait(detail::kTuple);
        if (waiter->granted) co_return;
        throw detail::cancelled("waiting for a slot was cancelled");
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
    struct Leave {
        Slots* slots;
        std::shared_ptr<Waiter> waiter;
        ~Leave() {
            if (!waiter->granted) std::erase(slots->waiters_, waiter);
        }
    };

    net::any_io_executor executor_;
    std::size_t free_;
    std::deque<std::shared_ptr<Waiter>> waiters_;
};

// Waits for a set of spawned coroutines: add() before each spawn, done() when each ends.
class WaitGroup {
  public:
    explicit WaitGroup(net::any_io_executor executor) : idle_(std::move(executor)) { idle_.set(); }
    void add() {
        ++pending_;
        idle_.reset();
    }
    void done() {
        if (--pending_ == 0) idle_.set();
    }
    std::size_t pending() const { return pending_; }

    // Returns once every added coroutine is done. A caller cancelled meanwhile still waits for them
    // (they refer to the group, so it must not leave before they end), then throws operation_aborted.
    net::awaitable<void> wait() { co_await detail::waitForGroup(&idle_, {}); }

  private:
    Event idle_;
    std::size_t pending_ = 0;
};

// Coroutines spawned together that can be cancelled together, each through its own cancellation
// slot (as in Beast's advanced server): cancel() emits to every running child, and waitUntil()
// waits for the group to empty. Each child's completion goes to `onDone` (util::logFailure).
class TaskGroup {
  public:
    using Clock = Event::Clock;
    using Completion = std::function<void(std::exception_ptr)>;

    explicit TaskGroup(net::any_io_executor executor) : executor_(executor), idle_(executor) { idle_.set(); }
    TaskGroup(const TaskGroup&) = delete;
    TaskGroup& operator=(const TaskGroup&) = delete;

    void spawn(net::awaitable<void> task, Completion onDone) {
        auto signal = signals_.emplace(signals_.end());
        idle_.reset();
        net::co_spawn(executor_, std::move(task),
                      net::bind_cancellation_slot(signal->slot(), Child{this, signal, std::move(onDone)}));
    }

    // Asks every running child to stop: its pending operation completes with operation_aborted.
    void cancel(net::cancellation_type type = net::cancellation_type::terminal) {
        for (auto& signal : signals_) signal.emit(type);
    }

    std::size_t size() const { return signals_.size(); }

    // Waits until no child runs or `deadline` passes; returns whether the group emptied.
    net::awaitable<bool> waitUntil(Clock::time_point deadline) {
        const bool idle = co_await idle_.waitUntil(deadline);
        co_return idle;
    }

    // Waits until no child runs. A caller cancelled meanwhile passes the cancellation on to every
    // child and still waits for them to end (they may refer to the caller), then throws
    // operation_aborted.
    net::awaitable<void> join() {
        co_await detail::waitForGroup(&idle_, [this] { cancel(); });
    }

  private:
    using Signals = std::list<net::cancellation_signal>;

    // The completion handler: the child leaves the group when it completes, and also when the
    // handler is destroyed without running (the io_context shut down first).
    struct Child {
        TaskGroup* group;
        Signals::iterator signal;
        Completion onDone;

        Child(TaskGroup* g, Signals::iterator s, Completion d) : group(g), signal(s), onDone(std::move(d)) {}
        Child(Child&& other) noexcept
            : group(std::exchange(other.group, nullptr)),
              signal(other.signal),
              onDone(std::move(other.onDone)) {}
        Child(const Child&) = delete;
        Child& operator=(const Child&) = delete;
        Child& operator=(Child&&) = delete;
        ~Child() { leave(); }

        void operator()(std::exception_ptr e) {
            leave();
            if (onDone) onDone(e);
        }
        void leave() {
            if (auto* g = std::exchange(group, nullptr)) g->remove(signal);
        }
    };

    void remove(Signals::iterator signal) {
        signals_.erase(signal);
        if (signals_.empty()) idle_.set();
    }

    net::any_io_executor executor_;
    Signals signals_;
    Event idle_;
};

// Sleeps for `duration` on the calling coroutine's executor.
inline net::awaitable<void> sleepFor(std::chrono::milliseconds duration) {
    net::steady_timer timer(co_await net::this_coro::executor, duration);
    co_await timer.async_wait(detail::kTuple);
}

}  // namespace hfwarm::util
