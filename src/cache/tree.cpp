#include "hfwarm/cache/tree.hpp"

#include "hfwarm/util/hash.hpp"
#include "posix_util.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace hfwarm::cache {

namespace fs = std::filesystem;

namespace {

// json.dumps' string encoding with ensure_ascii=True: everything outside printable ASCII as
// \uXXXX (lower-case hex, UTF-16 surrogate pairs above the BMP), with the short escapes for
// \" \\ \n \r \t \b \f.
void appendPythonJsonString(std::string& out, std::string_view s) {
    auto hex4 = [&](unsigned value) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", value & 0xffffu);
        out += buf;
    };
    out.push_back('"');
    for (std::size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            switch (c) {
                case '"':
                    out += "\\\"";
                    break;
                case '\\':
                    out += "\\\\";
                    break;
                case '\n':
                    out += "\\n";
                    break;
                case '\r':
                    out += "\\r";
                    break;
                case '\t':
                    out += "\\t";
                    break;
                case '\b':
                    out += "\\b";
                    break;
                case '\f':
                    out += "\\f";
                    break;
                default:
                    if (c < 0x20 || c == 0x7f)
                        hex4(c);
                    else
                        out.push_back(static_cast<char>(c));
            }
            ++i;
            continue;
        }
        // Paths are validated UTF-8 before they get here; decode without re-checking.
        std::size_t length = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 4;
        unsigned value = c & (length == 2 ? 0x1fu : length == 3 ? 0x0fu : 0x07u);
        for (std::size_t k = 1; k < length && i + k < s.size(); ++k)
            value = (value << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3fu);
        if (value >= 0x10000) {
            value -= 0x10000;
            hex4(0xd800 + (value >> 10));
            hex4(0xdc00 + (value & 0x3ff));
        } else {
            hex4(value);
        }
        i += length;
    }
    out.push_back('"');
}

}  // namespace

std::string treeJson(std::vector<TreeFile> files) {
    // A listing is a dict keyed by path in huggingface_hub: a repeated path keeps its last entry.
    std::stable_sort(files.begin(), files.end(),
                     [](const TreeFile& a, const TreeFile& b) { return a.path < b.path; });
    std::vector<TreeFile> unique;
    for (auto& file : files) {
        if (!unique.empty() && unique.back().path == file.path)
            unique.back() = std::move(file);
        else
            unique.push_back(std::move(file));
    }

    std::string out = "{\n \"format_version\": 1,\n \"files\": {";
    if (unique.empty()) {
        out += "}\n}";
        return out;
    }
    bool first = true;
    for (const TreeFile& file : unique) {
        out += first ? "\n  " : ",\n  ";
        first = false;
        appendPythonJsonString(out, file.path);
        out += ": {\n   \"size\": " + std::to_string(file.size) + ",\n   \"blob_id\": ";
        appendPythonJsonString(out, file.blobId);
        if (file.lfsSha256) {
            out += ",\n   \"lfs_sha256\": ";
            appendPythonJsonString(out, *file.lfsSha256);
            out +=
                ",\n   \"lfs_size\": " + (file.lfsSize ? std::to_string(*file.lfsSize) : std::string("null"));
        }
        if (file.xetHash) {
            out += ",\n   \"xet_hash\": ";
            appendPythonJsonString(out, *file.xetHash);
        }
        out += "\n  }";
    }
    out += "\n }\n}";
    return out;
}

Result<void> writeTree(const RepoLayout& layout, std::string_view commit,
                       const std::vector<TreeFile>& files) {
    auto treePath = layout.tree(commit);
    if (!treePath) return treePath.error();
    for (const TreeFile& file : files) {
        if (auto ok = validateRepoPath(file.path); !ok)
            return makeError("not writing " + treePath->string() + ": " + ok.error().message);
        if (file.xetHash && !util::isHex(*file.xetHash, 64))
            return makeError("not writing " + treePath->string() + ": the xet hash of " +
                             quoteName(file.path) +
                             " is not 64 hex digits, and huggingface_hub would ignore the whole listing");
    }
    auto dir = detail::openDirUnder(layout.repoDir(), {"trees"}, layout.root(), true);
    if (!dir) return dir.error();
    return detail::writeFileAtomic(dir->get(), std::string(commit) + ".json", treeJson(files), *treePath);
}

Result<std::optional<std::vector<TreeFile>>> readTree(const RepoLayout& layout, std::string_view commit) {
    auto treePath = layout.tree(commit);
    if (!treePath) return treePath.error();
    std::ifstream in(*treePath, std::ios::binary);
    if (!in) {
        std::error_code ec;
        if (!fs::exists(*treePath, ec) && !ec) return std::optional<std::vector<TreeFile>>();
        return makeError("cannot read " + treePath->string());
    }
    std::stringstream text;
    text << in.rdbuf();
    auto invalid = [&](const std::string& why) -> Error {
        return makeError(treePath->string() + " is not a valid tree listing: " + why);
    };
    auto doc = nlohmann::json::parse(text.str(), nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) return invalid("not a JSON object");
    auto version = doc.find("format_version");
    if (version == doc.end() || !version->is_number_integer() || version->get<long long>() != 1)
        return invalid("format_version is not 1");
    auto filesIt = doc.find("files");
    if (filesIt == doc.end() || !filesIt->is_object()) return invalid("\"files\" is not an object");

    std::vector<TreeFile> files;
    for (auto it = filesIt->begin(); it != filesIt->end(); ++it) {
        const std::string& path = it.key();
        const auto& info = it.value();
        if (auto ok = validateRepoPath(path); !ok) return invalid(ok.error().message);
        if (!info.is_object()) return invalid("the entry of " + quoteName(path) + " is not an object");
        TreeFile file;
        file.path = path;
        auto size = info.find("size");
        auto blobId = info.find("blob_id");
        if (size == info.end() || !size->is_number_unsigned())
            return invalid("the size of " + quoteName(path) + " is not a non-negative integer");
        if (blobId == info.end() || !blobId->is_string())
            return invalid("the blob_id of " + quoteName(path) + " is not a string");
        file.size = size->get<std::uint64_t>();
        file.blobId = blobId->get<std::string>();
        if (auto lfs = info.find("lfs_sha256"); lfs != info.end() && !lfs->is_null()) {
            if (!lfs->is_string())
                return invalid("the lfs_sha256 of " + quoteName(path) + " is not a string");
            file.lfsSha256 = lfs->get<std::string>();
        }
        if (auto lfsSize = info.find("lfs_size"); lfsSize != info.end() && !lfsSize->is_null()) {
            if (!lfsSize->is_number_unsigned())
                return invalid("the lfs_size of " + quoteName(path) + " is not a non-negative integer");
            file.lfsSize = lfsSize->get<std::uint64_t>();
        }
        if (auto xet = info.find("xet_hash"); xet != info.end() && !xet->is_null()) {
            if (!xet->is_string() || !util::isHex(xet->get<std::string>(), 64))
                return invalid("the xet_hash of " + quoteName(path) + " is not 64 hex digits");
            file.xetHash = xet->get<std::string>();
        }
        files.push_back(std::move(file));
    }
    return std::optional<std::vector<TreeFile>>(std::move(files));
}

}  // namespace hfwarm::cache
