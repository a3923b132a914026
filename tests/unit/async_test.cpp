// The async primitives of util/async.hpp, driven by events only: each test runs the io_context
// until it has nothing left to do, and no test waits for a duration.
#include "hfwarm/util/async.hpp"

#include <doctest/doctest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <exception>
#include <memory>
#include <string>
#include <vector>

using namespace hfwarm::util;
namespace net = hfwarm::net;

namespace {

using Events = std::vector<std::string>;

auto rethrow = [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
};

// Records how a task ended: "done", "aborted" (operation_aborted) or the exception's text.
struct Ending {
    std::string* into;
    void operator()(std::exception_ptr e) const {
        if (!e) {
            *into = "done";
            return;
        }
        try {
            std::rethrow_exception(e);
        } catch (const boost::system::system_error& error) {
            *into = error.code() == net::error::operation_aborted ? "aborted" : error.what();
        } catch (const std::exception& error) {
            *into = error.what();
        }
    }
};

// Coroutines are free functions with their arguments in the frame: a lambda called in place would
// leave its captures behind when the temporary ends.
net::awaitable<void> waitFor(Event* event) {
    co_await event->wait();
}

net::awaitable<void> waitAndRecord(Event* event, Events* events, std::string name) {
    try {
        co_await event->wait();
    } catch (const boost::system::system_error&) {
        events->push_back(name + " cancelled");
        throw;
    }
}

net::awaitable<void> parkForever() {
    net::steady_timer timer(co_await net::this_coro::executor, net::steady_timer::time_point::max());
    co_await timer.async_wait(net::use_awaitable);
}

}  // namespace

TEST_CASE(
    "an event wakes every waiter when set, lets later waiters through, and holds them again after reset") {
    net::io_context io;
    Event event(io.get_executor());
    Events events;
    for (std::string name : {"a", "b"})
        net::co_spawn(
            io,
            [&, name]() -> net::awaitable<void> {
                co_await event.wait();
                events.push_back(name + " woke");
            },
            rethrow);
    io.poll();
    CHECK(events.empty());
    event.set();
    io.run();
    CHECK(events == Events{"a woke", "b woke"});

    io.restart();
    net::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
            co_await event.wait();  // already set: passes at once
            events.push_back("late passed");
            event.reset();
            const bool set = co_await event.waitUntil(Event::Clock::time_point::min());
            events.push_back(set ? "set" : "deadline passed");
        },
        rethrow);
    io.run();
    CHECK(events == Events{"a woke", "b woke", "late passed", "deadline passed"});
    CHECK_FALSE(event.isSet());
}

TEST_CASE("a waiter cancelled while it waits for an event throws operation_aborted and is not woken later") {
    net::io_context io;
    Event event(io.get_executor());
    net::cancellation_signal signal;
    std::string ending;
    bool resumed = false;
    net::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
            co_await event.wait();
            resumed = true;
        },
        net::bind_cancellation_slot(signal.slot(), Ending{&ending}));
    io.poll();
    signal.emit(net::cancellation_type::terminal);
    io.run();
    CHECK(ending == "aborted");
    event.set();  // the cancelled waiter left the list: nothing to wake
    io.restart();
    CHECK(io.run() == 0);
    CHECK_FALSE(resumed);
}

TEST_CASE("a closed gate holds its waiters until it opens; a cancelled waiter leaves") {
    net::io_context io;
    Gate gate(io.get_executor());
    Events events;
    gate.close();
    CHECK(gate.closed());
    net::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
            co_await gate.pass();
            events.push_back("passed");
        },
        rethrow);
    net::cancellation_signal signal;
    std::string ending;
    net::co_spawn(io, gate.pass(), net::bind_cancellation_slot(signal.slot(), Ending{&ending}));
    io.poll();
    CHECK(events.empty());
    signal.emit(net::cancellation_type::terminal);
    io.poll();
    CHECK(ending == "aborted");
    CHECK(events.empty());
    gate.open();
    io.run();
    CHECK(events == Events{"passed"});
    CHECK_FALSE(gate.closed());
}

TEST_CASE("slots are handed out in FIFO order, one per release") {
    net::io_context io;
    Slots slots(io.get_executor(), 1);
    Events events;
    for (std::string name : {"a", "b", "c"})
        net::co_spawn(
            io,
            [&, name]() -> net::awaitable<void> {
                co_await slots.acquire();
                events.push_back(name + " holds");
            },
            rethrow);
    io.poll();
    CHECK(events == Events{"a holds"});  // b and c wait: a never released
    slots.release();
    io.poll();
    CHECK(events == Events{"a holds", "b holds"});
    slots.release();
    CHECK(io.run() > 0);  // nothing is left waiting
    CHECK(events == Events{"a holds", "b holds", "c holds"});
}

TEST_CASE(
    "a wait group's wait returns once every task is done, and a cancelled waiter still waits for them") {
    net::io_context io;
    WaitGroup group(io.get_executor());
    Event go(io.get_executor());
    Events events;
    for (std::string name : {"a", "b"}) {
        group.add();
        net::co_spawn(
            io,
            [&, name]() -> net::awaitable<void> {
                co_await go.wait();
                events.push_back(name + " done");
                group.done();
            },
            rethrow);
    }
    net::cancellation_signal signal;
    std::string ending;
    net::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
            co_await group.wait();
            events.push_back("waited");
        },
        net::bind_cancellation_slot(signal.slot(), Ending{&ending}));
    io.poll();
    signal.emit(net::cancellation_type::terminal);
    io.poll();
    CHECK(ending.empty());  // still waiting for a and b
    CHECK(group.pending() == 2);
    go.set();
    io.run();
    CHECK(events == Events{"a done", "b done"});
    CHECK(ending == "aborted");
    CHECK(group.pending() == 0);
}

TEST_CASE("a task group cancels each running child, and empties as they end") {
    net::io_context io;
    TaskGroup group(io.get_executor());
    Event never(io.get_executor());
    Event go(io.get_executor());
    std::vector<std::string> endings(3);
    group.spawn(waitFor(&never), Ending{&endings[0]});
    group.spawn(waitFor(&never), Ending{&endings[1]});
    group.spawn(waitFor(&go), Ending{&endings[2]});
    io.poll();
    CHECK(group.size() == 3);
    go.set();
    io.poll();
    CHECK(endings[2] == "done");
    CHECK(group.size() == 2);

    bool emptied = false;
    net::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
            emptied = co_await group.waitUntil(Event::Clock::time_point::max());
        },
        rethrow);
    io.poll();
    CHECK_FALSE(emptied);
    group.cancel();
    io.run();
    CHECK(endings[0] == "aborted");
    CHECK(endings[1] == "aborted");
    CHECK(group.size() == 0);
    CHECK(emptied);
}

TEST_CASE("joining a task group passes the joiner's cancellation on to the children and waits for them") {
    net::io_context io;
    Event never(io.get_executor());
    Events events;
    net::cancellation_signal signal;
    std::string ending;
    net::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
            TaskGroup children(co_await net::this_coro::executor);
            for (std::string name : {"a", "b"})
                children.spawn(waitAndRecord(&never, &events, name), [](std::exception_ptr) {});
            co_await children.join();
            events.push_back("joined");
        },
        net::bind_cancellation_slot(signal.slot(), Ending{&ending}));
    io.poll();
    CHECK(events.empty());
    signal.emit(net::cancellation_type::terminal);
    io.run();
    CHECK(events == Events{"a cancelled", "b cancelled"});
    CHECK(ending == "aborted");
}

TEST_CASE(
    "a child whose coroutine is destroyed unfinished, as when the io_context shuts down, leaves its group") {
    auto io = std::make_unique<net::io_context>();
    TaskGroup group(io->get_executor());
    group.spawn(parkForever(), [](std::exception_ptr) {});
    io->poll();
    CHECK(group.size() == 1);
    io.reset();  // destroys the suspended child without running its handler
    CHECK(group.size() == 0);
}
