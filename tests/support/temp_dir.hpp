// A folder of one test case, removed with its content when the case ends. Under /tmp with a short
// name, so that Unix socket paths inside it stay well within sockaddr_un's 108 bytes.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace hfwarm::testing {

class TempDir {
  public:
    TempDir() {
        char pattern[] = "/tmp/hfwarm-XXXXXX";
        REQUIRE(::mkdtemp(pattern) != nullptr);
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return path_; }

    // Writes `text` to `name` inside the folder and returns its path.
    std::filesystem::path write(const std::string& name, const std::string& text) const {
        auto file = path_ / name;
        std::ofstream(file, std::ios::binary) << text;
        return file;
    }

  private:
    std::filesystem::path path_;
};

}  // namespace hfwarm::testing
