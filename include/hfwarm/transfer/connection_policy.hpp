// How many connections a parallel download uses, how it cuts its pieces, and which ranges it asks
// for: pure decisions from measured rates and injected times, so that they are tested without a
// network.
//
// A CDN that caps each connection (about 40 MB/s at the Hub's) makes parallel ranges the lever on
// wall time; a link, disk or CPU that is the limit (loopback, a slow line) makes every extra
// connection a cost. The policy tells them apart from each connection's first bytes: a connection
// slower than kCappedRate, while the event loop has CPU time to spare, is capped, and the download opens its
// whole share of the host at once instead of doubling step by step, so that a 64 MiB file is on its full
// count within a second. An added batch that does not bring speed to the host is stopped again
// (keepAdded).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>

namespace hfwarm::transfer {

// A parallel download starts on this many connections, and stays there where nothing is capped.
constexpr std::size_t kMinConnections = 2;
// A connection is judged after it received kProbeBytes and kProbeTime passed since its first byte.
constexpr std::uint64_t kProbeBytes = 256ull << 10;
constexpr std::chrono::milliseconds kProbeTime{50};
// Slower than this, a connection is capped by the server: loopback and an uncapped CDN give one
// TLS connection hundreds of MB/s; the Hub's CDN about 40 MB/s.
constexpr double kCappedRate = 64.0 * (1 << 20);
// The event loop is the limit when it was busy (loopBusy) at least this share of the time lately:
// more connections would only share it (loopback, a debug build, a slow CPU).
constexpr double kBusyShare = 0.75;
// A batch of added connections is kept when the rate of all downloads together grew at least
// this much: less, and the link or the CPU, not the server, is the limit (a capped CDN gives
// 1.6x to 4x, a full link 1.0x, measurement noise +-10%).
constexpr double kMinGain = 1.25;
// Pieces of a parallel download are kMinPiece to kMaxPiece, and no request asks for more than
// kMaxRequest: the Hub's Xet bridge refuses range-less GETs of very large files.
constexpr std::uint64_t kMinPiece = 4ull << 20;
// Once a download runs on more connections because each is capped, its last pieces shrink to
// kTailPiece: a 4 MiB piece takes 200 ms at 20 MiB/s, and the file waits for its slowest piece.
constexpr std::uint64_t kTailPiece = 1ull << 20;
constexpr std::uint64_t kMaxPiece = 64ull << 20;
constexpr std::uint64_t kMaxRequest = 64ull << 20;

// What one connection of a download has received since its first byte.
struct ConnectionSample {
    std::uint64_t bytes = 0;              // bytes since its first byte (that one excluded)
    std::chrono::nanoseconds elapsed{0};  // time since its first byte; 0: none yet
};

// What a thread did over some time: it ran, it waited for a CPU to run on, and the rest it slept
// (the event loop waiting for the network).
struct LoopTimes {
    std::chrono::nanoseconds ran{0};
    std::chrono::nanoseconds waited{0};
};

// The share of the time the event loop could run in which it ran: `ran` / (`elapsed` - `waited`),
// 1 when it never got the CPU. Time spent waiting for a CPU does not count either way: on a machine
// busy with other work a loop that has little to do still sleeps most of its turns (a capped
// CDN: open more connections), and one with too much to do runs all of them (loopback: do not).
double loopBusy(LoopTimes times, std::chrono::nanoseconds elapsed);

// The bytes per second of a judged connection; nothing while it is too young to judge.
std::optional<double> judgedRate(const ConnectionSample& sample);

// How many connections the download should have now, given `current` and its samples: its
// `share` of the host when the judged connections are capped, else `current`. Capped means that
// even the fastest judged connection is slower than kCappedRate while the event loop, `busy` of
// the time on the CPU since the first byte, had time to spare. Waits (returns `current`) until at
// least one connection can be judged.
std::size_t wantedConnections(std::span<const ConnectionSample> samples, std::size_t current,
                              std::size_t share, double busy);

// Whether a batch of added connections paid for itself: the rate of all downloads together went
// from `rateBefore` to `rateAfter` bytes per second. Judged over all files, not the one that
// added them: files that add connections at the same moment share the link, so each one's own
// rate says little about its batch.
bool keepAdded(double rateBefore, double rateAfter);

// The bytes per second of a growing count (the bytes all downloads received), from samples
// taken at injected times: over the last `span`, or over what there is of it.
class RateWindow {
  public:
    explicit RateWindow(std::chrono::nanoseconds span) : span_(span) {}
    void add(std::chrono::steady_clock::time_point at, std::uint64_t total);
    // Nothing until the samples cover at least kProbeTime.
    std::optional<double> rate() const;

  private:
    struct Sample {
        std::chrono::steady_clock::time_point at;
        std::uint64_t total = 0;
    };
    std::chrono::nanoseconds span_;
    std::deque<Sample> samples_;
};

// One file's share of a host's connection budget, when `files` parallel downloads go to it: an
// even split, at least kMinConnections, at most `segments` (the per-file cap), and no more than
// the file has pieces for (`size` / kMinPiece, at least 1).
std::size_t hostShare(std::size_t hostBudget, std::size_t files, std::size_t segments, std::uint64_t size);

// Whether a file of `size` bytes is fetched as parallel pieces: it must hold two pieces and reach
// `segmentMinSize`, and the configuration must allow more than one connection.
bool useSegments(std::uint64_t size, std::uint64_t segmentMinSize, std::size_t segments);

// The length of the next piece cut from the front of what nobody has taken yet, as OpenMP's
// guided schedule cuts loops: 1 / (2 x connections) of `untaken`, within [minPiece, kMaxPiece];
// the whole `available` stretch when less than half a piece would be left over.
std::uint64_t pieceLength(std::uint64_t available, std::uint64_t untaken, std::size_t connections,
                          std::uint64_t minPiece = kMinPiece);

// The bytes [first, last] of the next request for a transfer at `pos` that needs the bytes up to
// `end` of a file of `size`; nothing when a plain GET (no Range) does: from byte 0 to the end of a
// file of at most kMaxRequest. A request never asks for more than kMaxRequest bytes.
struct ByteRange {
    std::uint64_t first = 0;
    std::uint64_t last = 0;  // inclusive, as in the Range header
};
std::optional<ByteRange> requestRange(std::uint64_t pos, std::uint64_t end, std::uint64_t size);

}  // namespace hfwarm::transfer
