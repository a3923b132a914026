#include "hfwarm/util/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace hfwarm::util {

namespace {

spdlog::sink_ptr sharedSink() {
    static spdlog::sink_ptr sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    return sink;
}

spdlog::level::level_enum& currentLevel() {
    static spdlog::level::level_enum level = spdlog::level::info;
    return level;
}

}  // namespace

std::shared_ptr<spdlog::logger> logger(const std::string& module) {
    if (auto existing = spdlog::get(module)) return existing;
    auto created = std::make_shared<spdlog::logger>(module, sharedSink());
    created->set_level(currentLevel());
    created->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %n: %v");
    spdlog::register_logger(created);
    return created;
}

bool setLogLevel(const std::string& level) {
    auto parsed = spdlog::level::from_str(level);
    // from_str maps unknown names to "off"; only accept "off" when it was asked for.
    if (parsed == spdlog::level::off && level != "off") return false;
    currentLevel() = parsed;
    spdlog::apply_all([parsed](const std::shared_ptr<spdlog::logger>& l) { l->set_level(parsed); });
    return true;
}

std::string exceptionText(std::exception_ptr e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        return ex.what();
    } catch (...) {
        return "unknown exception";
    }
}

std::function<void(std::exception_ptr)> logFailure(std::shared_ptr<spdlog::logger> log, std::string task,
                                                   std::function<void()> then) {
    return [log = std::move(log), task = std::move(task), then = std::move(then)](std::exception_ptr e) {
        if (e) log->error("task stopped task=\"{}\" reason=\"{}\"", task, exceptionText(e));
        if (then) then();
    };
}

}  // namespace hfwarm::util
