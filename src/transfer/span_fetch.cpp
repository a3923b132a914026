#include "engine_impl.hpp"

#include "hfwarm/transfer/connection_policy.hpp"
#include "hfwarm/util/units.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>

namespace hfwarm::transfer {

// Writes all of [data, data + size) at `offset`; 0 or the errno of the failed write.
int writeAt(int fd, const char* data, std::size_t size, std::uint64_t offset) {
    std::size_t written = 0;
    while (written < size) {
        ssize_t n = ::pwrite(fd, data + written, size - written, static_cast<off_t>(offset + written));
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        written += static_cast<std::size_t>(n);
    }
    return 0;
}

// Hashes [from, to) of `fd` into `hasher` here and now; false when the bytes cannot be read.
bool hashFromDisk(int fd, util::Hasher& hasher, std::uint64_t from, std::uint64_t to) {
    std::array<char, 64 * 1024> buffer;
    while (from < to) {
        const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), to - from));
        const ssize_t n = ::pread(fd, buffer.data(), want, static_cast<off_t>(from));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        hasher.update(buffer.data(), static_cast<std::size_t>(n));
        from += static_cast<std::uint64_t>(n);
    }
    return true;
}

// The start offset of a `Content-Range: bytes START-END/TOTAL` value.
std::optional<std::uint64_t> contentRangeStart(std::string_view value) {
    constexpr std::string_view kPrefix = "bytes ";
    if (value.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
    value.remove_prefix(kPrefix.size());
    std::uint64_t start = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), start);
    if (ec != std::errc{} || end == value.data() + value.size() || *end != '-') return std::nullopt;
    return start;
}

// Receives the body of one resolver GET into the .incomplete file.
class Engine::Impl::BlobSink final : public http::Sink {
  public:
    BlobSink(Impl& impl, Run& run, const FileJob& job, int fd, Span& span)
        : impl_(impl), run_(run), job_(job), fd_(fd), span_(span) {}

    Result<void> onResponse(const http::Response& response) override {
        response_ = response;
        if (response.status == 206) {
            auto start = contentRangeStart(response.headers.get("Content-Range").value_or(""));
            if (!start || *start != span_.pos) {
                verdict_ = SpanOutcome::RangeIgnored;
                return makeError("the server answered a range request with another range");
            }
            return {};
        }
        if (response.status == 200) {
            if (span_.pos == 0) return {};
            if (!span_.hasher) {
                verdict_ = SpanOutcome::RangeIgnored;
                return makeError("the server ignores range requests");
            }
            // Range ignored: the body starts at byte 0.
            if (auto reset = impl_.truncate(fd_, job_); !reset) return reset;
            impl_.rewind(run_, job_, span_);
            return {};
        }
        httpStatus_ = response.status;
        return makeError("HTTP " + std::to_string(response.status));
    }

    net::awaitable<Result<void>> onData(const char* data, std::size_t size) override {
        // A reload removed the entry: stop here, the bytes so far stay for a later resume.
        if (run_.removed) {
            verdict_ = SpanOutcome::Permanent;
            co_return makeError(removedText(run_));
        }
        if (span_.pos + size > span_.end) {
            verdict_ = SpanOutcome::RangeIgnored;
            co_return makeError("the server sent more than the " + std::to_string(job_.size) +
                                " bytes the listing announced for " + job_.path);
        }
        // Bytes that are hashed go to the file and into the hash on the pool, so that the event
        // loop is left with the sockets and TLS: sha256 costs as much CPU as the decryption. The
        // others are written here: a trip to the pool and back costs two thread wake-ups.
        // A whole-file stream hashes as it goes. The piece at the front of a parallel download
        // feeds its file's hash from these buffers, once the hash has caught up with it (the bytes
        // that came while the pool hashed up to this piece are read back first: a few MiB at most);
        // meanwhile `pool` keeps the read-back of the hash loop away from the hasher.
        PrefixHash* prefix = span_.prefix;
        const bool front = prefix != nullptr && !prefix->pool && prefix->hashed >= span_.begin &&
                           prefix->hashed <= span_.pos;
        util::Hasher* hasher = span_.hasher ? span_.hasher.get() : front ? prefix->hasher.get() : nullptr;
        const std::uint64_t hashFrom = front ? prefix->hashed : span_.pos;
        if (front) prefix->pool = true;
        auto store = [fd = fd_, data, size, at = span_.pos, hasher, hashFrom]() -> Stored {
            Stored result{writeAt(fd, data, size, at), false};
            if (result.error == 0 && hasher != nullptr && hashFromDisk(fd, *hasher, hashFrom, at)) {
                hasher->update(data, size);
                result.hashed = true;
            }
            return result;
        };
        const Stored stored = hasher != nullptr ? co_await offload(impl_.hashPool, store) : store();
        if (front) {
            prefix->pool = false;
            if (stored.hashed) prefix->hashed = span_.pos + size;
        }
        if (stored.error != 0) {
            verdict_ = SpanOutcome::WriteFailed;
            const std::uint64_t missing = job_.size - span_.pos;
            co_return makeError("cannot write " + job_.incomplete.string() + " (" + errnoText(stored.error) +
                                "): " + std::to_string(missing) + " more bytes (" +
                                util::humanBytes(missing) + ") of " + job_.path +
                                " are needed there; free some space or choose another --cache-dir");
        }
        span_.pos += size;
        run_.progress.bytesDone += size;
        impl_.counters.bytesFetched += size;
        co_return Result<void>{};
    }

    const std::optional<http::Response>& response() const { return response_; }
    unsigned httpStatus() const { return httpStatus_; }
    // Set when the sink itself stopped the body: the range was not honoured, a write failed, or
    // the entry was removed.
    std::optional<SpanOutcome> verdict() const { return verdict_; }

  private:
    // What the pool did with one delivery: the errno of the write (0: written), and whether the
    // bytes went into the hash.
    struct Stored {
        int error = 0;
        bool hashed = false;
    };

    Impl& impl_;
    Run& run_;
    const FileJob& job_;
    int fd_;
    Span& span_;
    std::optional<http::Response> response_;
    unsigned httpStatus_ = 0;
    std::optional<SpanOutcome> verdict_;
};

Result<void> Engine::Impl::truncate(int fd, const FileJob& job) {
    if (::ftruncate(fd, 0) != 0)
        return makeError("cannot truncate the partial download of " + job.path + ": " + errnoText(errno));
    return {};
}

// Forgets the bytes of a whole-file span after its file was truncated.
void Engine::Impl::rewind(Run& run, const FileJob& job, Span& span) {
    run.progress.bytesDone -= std::min(run.progress.bytesDone, span.pos);
    span.pos = 0;
    span.hasher = makeHasher(job.etag, job.size);
}

std::string Engine::Impl::removedText(const Run& run) {
    return "stopped: " + run.progress.entry.repo.display() +
           " is no longer in the manifests (partial files are kept for resume)";
}

// Fetches span.pos..span.end of `job` into `fd` with resolver GETs (following the redirect to the
// CDN), resuming with Range after every interruption: backoff on network errors, timeouts and
// 5xx; at once after an expired signed URL (403 from the CDN: resolve again, keep the bytes);
// waits out 429s with the limiter. `directUrl`, when given, keeps the URL the resolver redirected
// to (a signed CDN URL): later requests go there without spending a resolver request, until it
// expires (403) and the file is resolved again.
net::awaitable<Engine::Impl::SpanResult> Engine::Impl::transferSpan(Run& run, const FileJob& job,
                                                                    const std::string& url, int fd,
                                                                    Span& span, std::string* directUrl) {
    const auto& repo = run.progress.entry.repo;
    unsigned attempts = 0;
    unsigned limited = 0;
    while (span.pos < span.end) {
        // A flaky link that moves the download forward on every attempt does not use up the
        // retry budget: only attempts in a row without a new byte count.
        const std::uint64_t startedAt = span.pos;
        http::Request request;
        const bool direct = directUrl != nullptr && !directUrl->empty();
        request.url = direct ? *directUrl : url;
        // Large files go in ranges of at most kMaxRequest, even on one connection.
        if (auto range = requestRange(span.pos, span.end, job.size))
            request.headers.set("Range",
                                "bytes=" + std::to_string(range->first) + "-" + std::to_string(range->last));
        BlobSink sink(*this, run, job, fd, span);
        auto result = co_await client.stream(request, {http::RedirectPolicy::All, {}, {}}, sink);
        if (directUrl != nullptr && !direct && sink.response() && sink.response()->crossedHost &&
            sink.response()->status == 206)
            *directUrl = sink.response()->finalUrl;
        if (result) {
            // The next range of a large file, or the rest of a segment whose body ended early
            // without an error. A whole-file body that ended early is caught by its hash.
            if (span.pos < span.end && (!span.hasher || span.pos > startedAt)) continue;
            break;
        }

        // What this attempt came to.
        SpanResult attempt{result.error().retryable() ? SpanOutcome::Retryable : SpanOutcome::Permanent,
                           result.error().message};
        if (run.removed) {
            attempt = {SpanOutcome::Permanent, removedText(run)};
        } else if (auto verdict = sink.verdict()) {
            attempt.outcome = *verdict;
        } else if (sink.httpStatus() != 0 && sink.response()) {
            const auto& response = *sink.response();
            if (response.status == 403 && (response.crossedHost || direct)) {
                attempt = {SpanOutcome::LinkExpired, "the download link expired"};
            } else if (response.status == 416) {
                attempt = {SpanOutcome::RangeIgnored, "the server refused a range of " + job.path};
            } else {
                auto error = hub::errorFromResponse(response, repo, job.path, options.tokenConfigured,
                                                    std::chrono::system_clock::now());
                attempt.message = error.message;
                if (error.kind == hub::ErrorKind::RateLimited)
                    attempt.outcome = SpanOutcome::RateLimited;
                else
                    attempt.outcome = error.retryable() ? SpanOutcome::Retryable : SpanOutcome::Permanent;
            }
        }

        // What to do about it.
        switch (attempt.outcome) {
            case SpanOutcome::Done:
            case SpanOutcome::Retryable:
                break;
            case SpanOutcome::Permanent:
            case SpanOutcome::WriteFailed:
                co_return attempt;
            case SpanOutcome::RangeIgnored:
                // A segment falls back to one stream; a whole file starts over from byte 0.
                if (!span.hasher) co_return attempt;
                if (auto reset = truncate(fd, job); !reset)
                    co_return SpanResult{SpanOutcome::WriteFailed, reset.error().message};
                rewind(run, job, span);
                break;
            case SpanOutcome::LinkExpired:
                if (directUrl != nullptr) directUrl->clear();
                break;
            case SpanOutcome::RateLimited:
                // The limiter has paused the class for every worker; wait our turn.
                if (++limited > options.rateLimitedAttempts)
                    co_return SpanResult{SpanOutcome::Permanent, attempt.message};
                counters.retries += 1;
                continue;
        }
        if (span.pos > startedAt) attempts = 0;
        if (!options.backoff.allows(attempts + 1)) {
            if (attempts > 0) attempt.message += " (after " + std::to_string(attempts + 1) + " attempts)";
            co_return SpanResult{SpanOutcome::Permanent, attempt.message};
        }
        counters.retries += 1;
        auto delay = attempt.outcome == SpanOutcome::LinkExpired ? std::chrono::milliseconds{0}
                                                                 : backoffDelay(attempts);
        ++attempts;
        log->info("retrying path={} at={} reason=\"{}\" delay_ms={}", job.path, span.pos, attempt.message,
                  delay.count());
        if (delay.count() > 0) co_await sleepFor(delay);
    }
    co_return SpanResult{};
}

}  // namespace hfwarm::transfer
