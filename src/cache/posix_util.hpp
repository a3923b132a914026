// POSIX helpers private to the cache module: errno messages, temp names, and walking folders
// under a repo folder without following symlinks.
#pragma once

#include "hfwarm/cache/safe_io.hpp"
#include "hfwarm/util/result.hpp"

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace hfwarm::cache::detail {

using cache::Fd;

// strerror text for `err`.
std::string errnoText(int err);

// "<what> <path>: <strerror>"
Error osError(std::string_view what, const std::filesystem::path& path, int err);

// `n` random lower-case hex digits for temp file names.
std::string randomHex(std::size_t n);

// Splits a validated repo path on "/".
std::vector<std::string> splitPath(std::string_view path);

// Opens `base` (which is `cacheRoot` or lies below it) and then each of `segments` below it, as
// openCacheDir does: never through a symlink, creating missing folders when `create` is set.
Result<Fd> openDirUnder(const std::filesystem::path& base, const std::vector<std::string>& segments,
                        const std::filesystem::path& cacheRoot, bool create);

// How writeFileAtomic writes. Durable: a temp file with a fresh random name (concurrent writers
// never share one), fsync of the file and of the folder. Scratch: for a file one writer at a time
// rewrites often (under its blob lock): the temp name is "<name>.tmp", whatever has that name (a
// leftover of a killed writer, or a symlink, which is never followed) is removed first, and
// nothing is flushed.
enum class Mode { Durable, Scratch };

// Writes `content` to `name` in the folder `dirFd` atomically: a temp file, then a rename over
// `name`. The temp file is made in `stagingFd` when it is given (a folder on the same file system
// that no client lists, so a kill between create and rename leaves nothing where clients look),
// else beside `name`. `shownPath` is used in messages.
Result<void> writeFileAtomic(int dirFd, const std::string& name, std::string_view content,
                             const std::filesystem::path& shownPath, Mode mode = Mode::Durable,
                             int stagingFd = -1);

// Removes leftovers of writers killed between creating a temp name ".hfwarm-*.tmp" in `dirFd` and
// renaming it, once they are older than `age` (younger ones may belong to a live writer).
void removeStaleTemps(int dirFd, std::chrono::seconds age);

}  // namespace hfwarm::cache::detail
