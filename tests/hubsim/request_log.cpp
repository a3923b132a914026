#include "request_log.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace hfwarm::hubsim {
namespace {

std::string utcNow() {
    const auto now = std::chrono::system_clock::now();
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    const std::time_t t = std::chrono::system_clock::to_time_t(now);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
    return fmt::format("{}.{:03}Z", text, ms);
}

}  // namespace

RequestLog::RequestLog(const std::filesystem::path& file) : file_(std::fopen(file.c_str(), "a")) {
    if (!file_)
        throw std::runtime_error(
            fmt::format("cannot open log file {}: {}", file.string(), std::strerror(errno)));
}

void RequestLog::write(const LogRecord& record) {
    if (!file_) return;
    nlohmann::json line = {
        {"time", utcNow()},
        {"method", record.method},
        {"target", record.target},
        {"listener", record.listener},
        {"connection", record.connection},
        {"class", record.requestClass},
        {"status", record.status},
        {"bytes", record.bytes},
        {"range", record.range ? nlohmann::json(*record.range) : nlohmann::json(nullptr)},
        {"content_range",
         record.contentRange ? nlohmann::json(*record.contentRange) : nlohmann::json(nullptr)},
        {"auth", record.auth},
    };
    if (record.fault) line["fault"] = *record.fault;
    if (record.window) line["window"] = *record.window;
    // Targets may hold any byte a client sent: replace invalid UTF-8 rather than throw.
    const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::fwrite(text.data(), 1, text.size(), file_.get());
    std::fflush(file_.get());
}

}  // namespace hfwarm::hubsim
