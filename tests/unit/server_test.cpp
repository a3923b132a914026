// The server on a real Unix socket in a temp folder, with its io_context on a second thread and
// plain blocking clients on the test's thread (the one unit test allowed to use sockets).
#include "hfwarm/server/server.hpp"
#include "hfwarm/server/activation.hpp"

#include "hfwarm/protocol/messages.hpp"

#include <doctest/doctest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include "temp_dir.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace hfwarm;
using protocol::json;
using namespace std::chrono_literals;

namespace {

using testing::TempDir;

// Answers status with a fixed result, "fail" with an exception, "shutdown" by stopping the server
// after a short pause (so the reply is due while the server stops).
class TestHandler : public server::Handler {
  public:
    net::awaitable<protocol::Response> handle(protocol::Request request) override {
        ++calls;
        if (request.method == protocol::method::status) {
            protocol::StatusResult status;
            status.entries.resize(1);
            status.entries[0].repo = "org/name";
            co_return protocol::makeResult(nullptr, json(status));
        }
        if (request.method == protocol::method::shutdown) {
            net::steady_timer pause(co_await net::this_coro::executor, 50ms);
            server->stop();
            co_await pause.async_wait(net::use_awaitable);
            co_return protocol::makeResult(nullptr, json(protocol::AckResult{"stopping"}));
        }
        if (request.method == protocol::method::sync) throw std::runtime_error("engine exploded");
        co_return protocol::makeError(nullptr, protocol::ErrorCode::Unavailable, "not in this test");
    }

    server::Server* server = nullptr;
    std::atomic<int> calls{0};
};

class RunningServer {
  public:
    explicit RunningServer(server::Options options) {
        options.version = "9.9.9";
        server_ = std::make_unique<server::Server>(io_.get_executor(), options, handler_);
        handler_.server = server_.get();
        auto listening = server_->listen();
        if (!listening) FAIL(listening.error().message);
        server_->start();
        thread_ = std::thread([this] {
            io_.run();
            finished_ = true;
        });
    }

    ~RunningServer() { shutdown(); }

    // Stops the server and checks that every coroutine it ran ends by itself.
    void shutdown() {
        if (!thread_.joinable()) return;
        net::post(io_, [this] { server_->stop(); });
        auto deadline = std::chrono::steady_clock::now() + 5s;
        while (!finished_ && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
        CHECK_MESSAGE(finished_.load(), "the server's coroutines did not end after stop()");
        io_.stop();
        thread_.join();
    }

    // Runs `f` on the server's thread and returns its value.
    template <class F>
    auto onLoop(F f) {
        std::promise<decltype(f())> promise;
        net::post(io_, [&] { promise.set_value(f()); });
        return promise.get_future().get();
    }

    server::Server& server() { return *server_; }
    TestHandler& handler() { return handler_; }

  private:
    net::io_context io_;
    TestHandler handler_;
    std::unique_ptr<server::Server> server_;
    std::thread thread_;
    std::atomic<bool> finished_{false};
};

// A blocking client with a receive timeout, so that a broken server fails the test instead of
// hanging it.
class TestClient {
  public:
    explicit TestClient(const std::filesystem::path& path) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
        timeval timeout{5, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
        connected_ = ::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
    }
    ~TestClient() {
        if (fd_ >= 0) ::close(fd_);
    }
    TestClient(const TestClient&) = delete;
    TestClient& operator=(const TestClient&) = delete;

    bool connected() const { return connected_; }

    // False when the server has closed the connection.
    bool send(const std::string& data) {
        std::size_t sent = 0;
        while (sent < data.size()) {
            ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) return false;
            sent += static_cast<std::size_t>(n);
        }
        return true;
    }

    // The next line without its newline; nullopt on EOF, error or timeout.
    std::optional<std::string> readLine() {
        for (;;) {
            if (auto newline = buffer_.find('\n'); newline != std::string::npos) {
                std::string line = buffer_.substr(0, newline);
                buffer_.erase(0, newline + 1);
                return line;
            }
            char chunk[4096];
            ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
            if (n <= 0) return std::nullopt;
            buffer_.append(chunk, static_cast<std::size_t>(n));
        }
    }

    json readJson() {
        auto line = readLine();
        REQUIRE(line.has_value());
        auto parsed = json::parse(*line, nullptr, false);
        REQUIRE_FALSE(parsed.is_discarded());
        return parsed;
    }

    json call(const std::string& method, json id = 1, json params = json::object()) {
        json request = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}};
        REQUIRE(send(request.dump() + "\n"));
        return readJson();
    }

    // True when the server closes the connection within the receive timeout.
    bool closedByServer() {
        char byte;
        for (;;) {
            ssize_t n = ::recv(fd_, &byte, 1, 0);
            if (n == 0) return true;
            if (n < 0) return errno == ECONNRESET;
        }
    }

  private:
    int fd_ = -1;
    bool connected_ = false;
    std::string buffer_;
};

server::Options optionsIn(const TempDir& dir) {
    server::Options options;
    options.socketPath = dir.path() / "run" / "hfwarmd.sock";
    return options;
}

// Leaves a socket file that nobody listens on, as a killed daemon does.
void makeStaleSocket(const std::filesystem::path& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0);
    REQUIRE(::listen(fd, 1) == 0);
    ::close(fd);
}

}  // namespace

TEST_CASE("a request gets its response with the same id") {
    TempDir dir;
    RunningServer running(optionsIn(dir));
    TestClient client(running.server().socketPath());
    REQUIRE(client.connected());

    auto version = client.call("version", "v-1");
    CHECK(version["jsonrpc"] == "2.0");
    CHECK(version["id"] == "v-1");
    CHECK(version["result"] == json{{"version", "9.9.9"}, {"protocol", 1}});

    auto status = client.call("status", 42);
    CHECK(status["id"] == 42);
    CHECK(status["result"]["entries"][0]["repo"] == "org/name");
    CHECK(running.handler().calls == 1);
}

TEST_CASE("pipelined requests on one connection are answered in order") {
    TempDir dir;
    RunningServer running(optionsIn(dir));
    TestClient client(running.server().socketPath());
    std::string batch;
    for (int i = 0; i < 50; ++i) {
        batch += json{{"jsonrpc", "2.0"}, {"id", i}, {"method", i % 2 ? "status" : "version"}}.dump() + "\n";
    }
    REQUIRE(client.send(batch));
    for (int i = 0; i < 50; ++i) CHECK(client.readJson()["id"] == i);
}

TEST_CASE("malformed input gets JSON-RPC errors and the next request on the connection still works") {
    TempDir dir;
    RunningServer running(optionsIn(dir));
    TestClient client(running.server().socketPath());

    REQUIRE(client.send("this is not json\n"));
    auto parseError = client.readJson();
    CHECK(parseError["error"]["code"] == -32700);
    CHECK(parseError["id"].is_null());

    REQUIRE(client.send("{\"jsonrpc\":\"2.0\",\"id\":5}\n"));
    auto invalid = client.readJson();
    CHECK(invalid["error"]["code"] == -32600);
    CHECK(invalid["id"] == 5);

    auto unknown = client.call("frobnicate", 6);
    CHECK(unknown["error"]["code"] == -32601);
    CHECK(unknown["error"]["message"].get<std::string>().find("frobnicate") != std::string::npos);

    auto handlerError = client.call("lookup", 7);
    CHECK(handlerError["error"]["code"] == -32003);
    CHECK(handlerError["id"] == 7);

    CHECK(client.call("version", 8)["result"]["protocol"] == 1);
}

TEST_CASE("an exception in the handler becomes an internal error and the server carries on") {
    TempDir dir;
    RunningServer running(optionsIn(dir));
    TestClient client(running.server().socketPath());
    auto failed = client.call("sync", 1);
    CHECK(failed["error"]["code"] == -32603);
    CHECK(failed["error"]["message"].get<std::string>().find("engine exploded") != std::string::npos);
    CHECK(client.call("status", 2)["result"].contains("entries"));
}

TEST_CASE("a notification without id is executed and not answered") {
    TempDir dir;
    RunningServer running(optionsIn(dir));
    TestClient client(running.server().socketPath());
    REQUIRE(client.send("{\"jsonrpc\":\"2.0\",\"method\":\"status\"}\n"));
    CHECK(client.call("version", 2)["id"] == 2);
    CHECK(running.handler().calls == 1);
}

TEST_CASE("a 1 MiB line is refused and closes that connection while other clients are served") {
    TempDir dir;
    RunningServer running(optionsIn(dir));
    TestClient bystander(running.server().socketPath());
    CHECK(bystander.call("version", 1)["id"] == 1);

    TestClient flooder(running.server().socketPath());
    std::string huge =
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\",\"x\":\"" + std::string(1 << 20, 'a') + "\"}\n";
    // The server closes while the rest is still being sent; the send then fails, which is expected.
    std::thread sender([&] { flooder.send(huge); });
    auto refusal = flooder.readJson();
    sender.join();
    CHECK(refusal["error"]["code"] == -32001);
    CHECK(refusal["error"]["message"].get<std::string>().find("65536") != std::string::npos);
    CHECK(flooder.closedByServer());

    CHECK(bystander.call("status", 2)["id"] == 2);
    TestClient newcomer(running.server().socketPath());
    CHECK(newcomer.call("version", 3)["id"] == 3);
}

TEST_CASE("half a line and then a close does not disturb the server") {
    TempDir dir;
    RunningServer running(optionsIn(dir));
    {
        TestClient quitter(running.server().socketPath());
        REQUIRE(quitter.send("{\"jsonrpc\":\"2.0\",\"id\":1,\"meth"));
    }
    TestClient client(running.server().socketPath());
    CHECK(client.call("version", 1)["id"] == 1);
}

TEST_CASE("200 concurrent clients each get their answer") {
    TempDir dir;
    RunningServer running(optionsIn(dir));
    std::vector<std::unique_ptr<TestClient>> clients;
    for (int i = 0; i < 200; ++i) {
        clients.push_back(std::make_unique<TestClient>(running.server().socketPath()));
        REQUIRE(clients.back()->connected());
    }
    for (int i = 0; i < 200; ++i) {
        json request = {{"jsonrpc", "2.0"}, {"id", i}, {"method", i % 2 ? "status" : "version"}};
        REQUIRE(clients[static_cast<std::size_t>(i)]->send(request.dump() + "\n"));
    }
    for (int i = 0; i < 200; ++i) {
        auto reply = clients[static_cast<std::size_t>(i)]->readJson();
        CHECK(reply["id"] == i);
        CHECK(reply.contains("result"));
    }
    CHECK(running.onLoop([&] { return running.server().clientCount(); }) == 200);
}

TEST_CASE("clients beyond the limit get an error line and are closed") {
    TempDir dir;
    auto options = optionsIn(dir);
    options.maxClients = 2;
    RunningServer running(options);
    TestClient first(running.server().socketPath());
    TestClient second(running.server().socketPath());
    CHECK(first.call("version", 1)["id"] == 1);
    CHECK(second.call("version", 1)["id"] == 1);

    TestClient third(running.server().socketPath());
    auto refusal = third.readJson();
    CHECK(refusal["error"]["code"] == -32000);
    CHECK(refusal["error"]["message"].get<std::string>().find("at most 2") != std::string::npos);
    CHECK(third.closedByServer());
    CHECK(first.call("status", 2)["id"] == 2);
}

TEST_CASE("an idle client is closed and a subscriber is not") {
    TempDir dir;
    auto options = optionsIn(dir);
    options.idleTimeout = 200ms;
    RunningServer running(options);
    TestClient subscriber(running.server().socketPath());
    CHECK(subscriber.call("subscribe", 1)["result"]["subscribed"] == true);
    TestClient idle(running.server().socketPath());
    CHECK(idle.call("version", 1)["id"] == 1);

    CHECK(idle.closedByServer());
    std::this_thread::sleep_for(300ms);
    running.onLoop([&] {
        running.server().broadcast(protocol::Notification{"entry", json{{"repo", "org/name"}}});
        return 0;
    });
    auto notification = subscriber.readJson();
    CHECK(notification["method"] == "entry");
    CHECK(notification["params"]["repo"] == "org/name");
    CHECK_FALSE(notification.contains("id"));
    CHECK(running.onLoop([&] { return running.server().subscriberCount(); }) == 1);
}

TEST_CASE("a burst of notifications past the reply bound reaches a subscriber that reads") {
    TempDir dir;
    RunningServer running(optionsIn(dir));
    TestClient subscriber(running.server().socketPath());
    CHECK(subscriber.call("subscribe", 1)["id"] == 1);
    // 100 KiB at once, as a status change of a large manifest sends: far over the 4 KiB of replies
    // a client may leave unread, within what a subscriber may fall behind.
    running.onLoop([&] {
        for (int i = 0; i < 100; ++i)
            running.server().broadcast(
                protocol::Notification{"entry", json{{"n", i}, {"pad", std::string(1000, 'x')}}});
        return 0;
    });
    for (int i = 0; i < 100; ++i) REQUIRE(subscriber.readJson()["params"]["n"] == i);
    CHECK(running.onLoop([&] { return running.server().subscriberCount(); }) == 1);
}

TEST_CASE("a subscriber that does not read is dropped instead of holding the daemon") {
    TempDir dir;
    auto options = optionsIn(dir);
    options.maxQueuedNotificationBytes = 64 * 1024;
    RunningServer running(options);
    TestClient reader(running.server().socketPath());
    CHECK(reader.call("subscribe", 1)["id"] == 1);
    TestClient stuck(running.server().socketPath());
    CHECK(stuck.call("subscribe", 1)["id"] == 1);

    protocol::Notification big{"entry", json{{"padding", std::string(32 * 1024, 'x')}}};
    // Enough to fill the stuck client's socket buffer and then its queue.
    for (int round = 0;
         round < 200 && running.onLoop([&] { return running.server().subscriberCount(); }) == 2; ++round) {
        running.onLoop([&] {
            running.server().broadcast(big);
            return 0;
        });
        CHECK(reader.readJson()["method"] == "entry");
    }
    CHECK(running.onLoop([&] { return running.server().subscriberCount(); }) == 1);
    CHECK(reader.call("version", 2)["id"] == 2);
}

TEST_CASE("a client that pipelines without reading is paused, not dropped, and others are answered") {
    TempDir dir;
    auto options = optionsIn(dir);
    options.maxQueuedBytes = 4 * 1024;
    RunningServer running(options);
    TestClient greedy(running.server().socketPath());
    // 3000 requests (about 180 KiB) in one go, within the kernel's socket buffers: the server answers
    // until 4 KiB of replies wait, then stops reading this client.
    std::string burst;
    for (int i = 0; i < 3000; ++i)
        burst += json{{"jsonrpc", "2.0"}, {"id", i}, {"method", "version"}}.dump() + "\n";
    REQUIRE(greedy.send(burst));

    TestClient polite(running.server().socketPath());
    CHECK(polite.call("version", 7)["id"] == 7);

    // Once it reads, every reply arrives, in order.
    for (int i = 0; i < 3000; ++i) {
        auto reply = greedy.readJson();
        REQUIRE(reply["id"] == i);
    }
    CHECK(greedy.call("version", 3000)["id"] == 3000);
}

TEST_CASE("subscribers are capped so that request/response clients keep their slots") {
    TempDir dir;
    auto options = optionsIn(dir);
    options.maxClients = 4;
    RunningServer running(options);
    TestClient first(running.server().socketPath());
    TestClient second(running.server().socketPath());
    TestClient third(running.server().socketPath());
    CHECK(first.call("subscribe", 1)["result"]["subscribed"] == true);
    CHECK(second.call("subscribe", 1)["result"]["subscribed"] == true);
    auto refused = third.call("subscribe", 1);
    CHECK(refused["error"]["code"] == -32000);
    CHECK(refused["error"]["message"].get<std::string>().find("too many subscribers") != std::string::npos);
    CHECK(third.call("version", 2)["id"] == 2);
    TestClient fourth(running.server().socketPath());
    CHECK(fourth.call("version", 1)["id"] == 1);
    CHECK(running.onLoop([&] { return running.server().subscriberCount(); }) == 2);

    options = optionsIn(dir);
    options.socketPath = dir.path() / "capped.sock";
    options.maxSubscribers = 1;
    RunningServer capped(options);
    TestClient a(capped.server().socketPath());
    TestClient b(capped.server().socketPath());
    CHECK(a.call("subscribe", 1)["result"]["subscribed"] == true);
    CHECK(b.call("subscribe", 1)["error"]["code"] == -32000);
}

TEST_CASE("a socket directory others can write or that belongs to someone else is refused") {
    TempDir dir;
    TestHandler handler;
    net::io_context io;
    auto options = optionsIn(dir);
    std::filesystem::create_directories(options.socketPath.parent_path());

    ::chmod(options.socketPath.parent_path().c_str(), 0777);
    {
        server::Server server(io.get_executor(), options, handler);
        auto result = server.listen();
        REQUIRE_FALSE(result.has_value());
        CHECK(result.error().message ==
              "refusing the socket directory " + options.socketPath.parent_path().string() +
                  ": its mode 0777 lets other users replace the socket; run chmod go-w " +
                  options.socketPath.parent_path().string() + " or choose another --socket");
        CHECK_FALSE(std::filesystem::exists(options.socketPath));
    }
    ::chmod(options.socketPath.parent_path().c_str(), 0770);
    CHECK_FALSE(server::checkSocketDir(options.socketPath.parent_path()).has_value());
    ::chmod(options.socketPath.parent_path().c_str(), 0755);
    CHECK(server::checkSocketDir(options.socketPath.parent_path()).has_value());

    if (::geteuid() == 0) {
        // Root can hand the folder to another user id, as a second user creating it first would.
        REQUIRE(::chown(options.socketPath.parent_path().c_str(), 4242, 4242) == 0);
        ::chmod(options.socketPath.parent_path().c_str(), 0700);
        server::Server server(io.get_executor(), options, handler);
        auto result = server.listen();
        REQUIRE_FALSE(result.has_value());
        CHECK(result.error().message.find("belongs to user 4242, not to you (0)") != std::string::npos);
    }

    // A directory the server creates itself is 0700 (plus search bits the socket mode needs).
    options.socketPath = dir.path() / "fresh" / "private.sock";
    options.mode = 0600;
    {
        server::Server server(io.get_executor(), options, handler);
        REQUIRE(server.listen().has_value());
        struct stat info {};
        REQUIRE(::stat(options.socketPath.parent_path().c_str(), &info) == 0);
        CHECK((info.st_mode & 07777) == 0700);
        server.stop();
    }
}

TEST_CASE("the socket file gets mode 0660 by default and the configured mode otherwise") {
    TempDir dir;
    {
        RunningServer running(optionsIn(dir));
        struct stat info {};
        REQUIRE(::stat(running.server().socketPath().c_str(), &info) == 0);
        CHECK(S_ISSOCK(info.st_mode));
        CHECK((info.st_mode & 07777) == 0660);
        struct stat parent {};
        REQUIRE(::stat(running.server().socketPath().parent_path().c_str(), &parent) == 0);
        CHECK((parent.st_mode & 07777) == 0710);
    }
    auto options = optionsIn(dir);
    options.socketPath = dir.path() / "private.sock";
    options.mode = 0600;
    RunningServer running(options);
    struct stat info {};
    REQUIRE(::stat(options.socketPath.c_str(), &info) == 0);
    CHECK((info.st_mode & 07777) == 0600);
}

TEST_CASE("a stale socket file is replaced") {
    TempDir dir;
    auto options = optionsIn(dir);
    std::filesystem::create_directories(options.socketPath.parent_path());
    makeStaleSocket(options.socketPath);
    RunningServer running(options);
    TestClient client(options.socketPath);
    CHECK(client.call("version", 1)["result"]["version"] == "9.9.9");
}

TEST_CASE("a live socket is refused with a clear message and keeps serving") {
    TempDir dir;
    auto options = optionsIn(dir);
    RunningServer first(options);

    net::io_context io;
    TestHandler handler;
    server::Server second(io.get_executor(), options, handler);
    auto listening = second.listen();
    REQUIRE_FALSE(listening.has_value());
    CHECK(listening.error().message.find("another hfwarmd is listening on " + options.socketPath.string()) !=
          std::string::npos);

    TestClient client(options.socketPath);
    CHECK(client.call("version", 1)["id"] == 1);
}

TEST_CASE("a path that is not a socket is left alone") {
    TempDir dir;
    auto path = dir.path() / "notes.txt";
    std::ofstream(path) << "keep me";
    net::io_context io;
    TestHandler handler;
    server::Options options;
    options.socketPath = path;
    server::Server server(io.get_executor(), options, handler);
    auto listening = server.listen();
    REQUIRE_FALSE(listening.has_value());
    CHECK(listening.error().message.find("is not a socket") != std::string::npos);
    CHECK(std::filesystem::file_size(path) == 7);
}

TEST_CASE("a socket path too long for sockaddr_un is refused with its length") {
    TempDir dir;
    net::io_context io;
    TestHandler handler;
    server::Options options;
    options.socketPath = dir.path() / std::string(200, 'p');
    server::Server server(io.get_executor(), options, handler);
    auto listening = server.listen();
    REQUIRE_FALSE(listening.has_value());
    CHECK(listening.error().message.find("choose a shorter --socket") != std::string::npos);
}

TEST_CASE("shutdown from the handler still delivers its reply, removes the socket file and ends the server") {
    TempDir dir;
    auto options = optionsIn(dir);
    RunningServer running(options);
    TestClient subscriber(options.socketPath);
    CHECK(subscriber.call("subscribe", 1)["id"] == 1);
    TestClient client(options.socketPath);
    auto reply = client.call("shutdown", 9);
    CHECK(reply["id"] == 9);
    CHECK(reply["result"]["message"] == "stopping");
    CHECK(client.closedByServer());
    CHECK(subscriber.closedByServer());
    CHECK_FALSE(std::filesystem::exists(options.socketPath));
    running.shutdown();
}

TEST_CASE("a socket passed by systemd is served as is") {
    TempDir dir;
    auto path = dir.path() / "activated.sock";
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0);
    REQUIRE(::listen(fd, 16) == 0);
    ::chmod(path.c_str(), 0666);

    server::Options options;
    options.socketPath = path;
    options.activatedFd = fd;
    {
        RunningServer running(options);
        TestClient client(path);
        CHECK(client.call("version", 1)["id"] == 1);
        struct stat info {};
        REQUIRE(::stat(path.c_str(), &info) == 0);
        CHECK((info.st_mode & 07777) == 0666);
    }
    // systemd owns the file of an activated socket: stopping leaves it.
    CHECK(std::filesystem::exists(path));
}

TEST_CASE("LISTEN_FDS for this process yields descriptors from 3") {
    auto fds = server::parseListenFds("1234", "2", 1234);
    REQUIRE(fds.has_value());
    CHECK(*fds == std::vector<int>{3, 4});
    auto one = server::parseListenFds("1234", "1", 1234);
    REQUIRE(one.has_value());
    CHECK(*one == std::vector<int>{3});
}

TEST_CASE("LISTEN_FDS meant for another process or without LISTEN_PID is ignored") {
    CHECK(server::parseListenFds(std::nullopt, "1", 1234)->empty());
    CHECK(server::parseListenFds("999", "1", 1234)->empty());
    CHECK(server::parseListenFds("1234", std::nullopt, 1234)->empty());
    CHECK(server::parseListenFds("1234", "0", 1234)->empty());
}

TEST_CASE("malformed LISTEN_PID or LISTEN_FDS is an error that names the variable") {
    auto badPid = server::parseListenFds("12x", "1", 1234);
    REQUIRE_FALSE(badPid.has_value());
    CHECK(badPid.error().message.find("LISTEN_PID") != std::string::npos);
    CHECK_FALSE(server::parseListenFds("", "1", 1234).has_value());
    CHECK_FALSE(server::parseListenFds("0", "1", 1234).has_value());
    for (const char* value : {"-1", "two", "", "99999999999"}) {
        auto badFds = server::parseListenFds("1234", value, 1234);
        REQUIRE_FALSE(badFds.has_value());
        CHECK(badFds.error().message.find("LISTEN_FDS") != std::string::npos);
    }
}

TEST_CASE(
    "without socket activation for this process there is no activated socket, and the variables are gone") {
    ::setenv("LISTEN_PID", std::to_string(::getpid() + 1).c_str(), 1);
    ::setenv("LISTEN_FDS", "1", 1);
    auto none = server::takeActivatedSocket();
    REQUIRE(none.has_value());
    CHECK_FALSE(none->has_value());
    CHECK(std::getenv("LISTEN_PID") == nullptr);
    CHECK(std::getenv("LISTEN_FDS") == nullptr);

    ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
    ::setenv("LISTEN_FDS", "2", 1);
    auto two = server::takeActivatedSocket();
    REQUIRE_FALSE(two.has_value());
    CHECK(two.error().message.find("exactly one ListenStream") != std::string::npos);
}
