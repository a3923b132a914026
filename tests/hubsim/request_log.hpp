// `--log FILE`: one JSON object per request and line, flushed as it is written, so a test can read
// the file while the simulator runs.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace hfwarm::hubsim {

struct LogRecord {
    std::string method;
    std::string target;
    const char* listener = "hub";  // "hub" or "cdn"
    std::uint64_t connection = 0;  // the connection's number, counted from 1 across both listeners
    const char* requestClass = "other";
    unsigned status = 0;
    std::uint64_t bytes = 0;  // body bytes sent
    std::optional<std::string> range;
    std::optional<std::string> contentRange;  // the answer's Content-Range header
    bool auth = false;  // whether an Authorization header came; its value is never logged
    std::optional<std::string> fault;
    // The quota window the request counted in, numbered from 1 per identity and class; unset when the
    // class has no quota.
    std::optional<std::uint64_t> window;
};

class RequestLog {
  public:
    RequestLog() = default;  // logs nothing
    // Appends to `file`; throws std::runtime_error if it cannot be opened.
    explicit RequestLog(const std::filesystem::path& file);

    void write(const LogRecord& record);

  private:
    struct Closer {
        void operator()(std::FILE* f) const { std::fclose(f); }
    };
    std::unique_ptr<std::FILE, Closer> file_;
};

}  // namespace hfwarm::hubsim
