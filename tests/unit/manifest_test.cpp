#include "hfwarm/manifest/manifest.hpp"

#include "hfwarm/util/hash.hpp"

#include <doctest/doctest.h>

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <vector>

using namespace hfwarm::manifest;

namespace {

ParseResult parseText(std::string_view text) {
    return parse(text, "m.txt");
}

// The single diagnostic of a one-error text, formatted as a user sees it.
std::string onlyError(std::string_view text) {
    const ParseResult r = parseText(text);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.manifest.entries.empty());
    return r.errors[0].format();
}

Entry onlyEntry(std::string_view text) {
    ParseResult r = parseText(text);
    std::string errors;
    for (const auto& e : r.errors) errors += e.format() + "\n";
    INFO(errors);
    REQUIRE(r.ok());
    REQUIRE(r.manifest.entries.size() == 1);
    return r.manifest.entries[0];
}

std::string keyOf(std::string_view text) {
    const ParseResult r = parseText(text);
    REQUIRE(r.ok());
    return cacheKey(r.manifest);
}

Entry entryWith(std::vector<std::string> files, std::vector<std::string> includes,
                std::vector<std::string> excludes) {
    Selection s;
    s.files = std::move(files);
    s.includes = std::move(includes);
    s.excludes = std::move(excludes);
    return Entry{RepoRef{RepoType::Model, "org/name", "main"}, {std::move(s)}};
}

const std::string kSpecs = "file:PATH, gguf:PATH, include:GLOB, exclude:GLOB, revision:REV, optional";
const std::string kRepoExpected =
    "expected [models/|datasets/|spaces/]owner/name[@revision], or a single legacy name such as gpt2";
const std::string kRevExpected = "expected a branch, a tag or a 40-hex commit";
const std::string kPathExpected = "expected a relative path inside the repo such as onnx/model.onnx";

// A temporary folder removed at the end of the test.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "manifest-test-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    std::filesystem::path write(const std::string& name, const std::string& text) const {
        std::ofstream(path / name, std::ios::binary) << text;
        return path / name;
    }
};

}  // namespace

TEST_CASE("the seed format of existing test/model_manifest.txt files parses") {
    const ParseResult r = parseText(
        "# comment; blank lines ignored\n"
        "\n"
        "Babelscape/wikineural-multilingual-ner\n"
        "gpt2                                   # legacy ids without an owner are valid\n"
        "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF gguf:tinyllama-1.1b-chat-v1.0.Q3_K_S.gguf\n"
        "microsoft/phi-2@main include:*.json include:*.safetensors exclude:*.bin\n"
        "datasets/org/name@v1.0 file:data/train.parquet\n"
        "dslim/bert-base-NER optional\n");
    REQUIRE(r.ok());
    const auto& e = r.manifest.entries;
    REQUIRE(e.size() == 6);
    CHECK(e[0].repo.id == "Babelscape/wikineural-multilingual-ner");
    CHECK(e[0].repo.type == RepoType::Model);
    CHECK(e[0].repo.revision == "main");
    CHECK(e[0].selections[0].line == 3);
    CHECK(e[0].selections[0].source == "m.txt");
    CHECK(e[1].repo.id == "gpt2");
    CHECK(e[2].selections[0].files == std::vector<std::string>{"tinyllama-1.1b-chat-v1.0.Q3_K_S.gguf"});
    CHECK(e[3].selections[0].includes == std::vector<std::string>{"*.json", "*.safetensors"});
    CHECK(e[3].selections[0].excludes == std::vector<std::string>{"*.bin"});
    CHECK(e[4].repo.type == RepoType::Dataset);
    CHECK(e[4].repo.id == "org/name");
    CHECK(e[4].repo.revision == "v1.0");
    CHECK(e[4].selections[0].files == std::vector<std::string>{"data/train.parquet"});
    CHECK(e[5].optional());
    CHECK_FALSE(e[4].optional());
}

TEST_CASE("repo references take a type prefix, a legacy single name and a revision") {
    CHECK(onlyEntry("gpt2").repo == RepoRef{RepoType::Model, "gpt2", "main"});
    CHECK(onlyEntry("models/org/name").repo == RepoRef{RepoType::Model, "org/name", "main"});
    CHECK(onlyEntry("datasets/squad").repo == RepoRef{RepoType::Dataset, "squad", "main"});
    CHECK(onlyEntry("spaces/org/app@v2").repo == RepoRef{RepoType::Space, "org/app", "v2"});
    CHECK(onlyEntry("org/name@refs/pr/1").repo.revision == "refs/pr/1");
    const std::string sha = "0123456789abcdef0123456789abcdef01234567";
    CHECK(onlyEntry("org/name@" + sha).repo.revision == sha);
    CHECK(onlyEntry("Org_1/Na.me-2").repo.id == "Org_1/Na.me-2");
    CHECK(onlyEntry(std::string(96, 'a') + "/" + std::string(96, 'b')).repo.id.size() == 193);
    // A bare "datasets" without a slash is a legacy model name, not a prefix.
    CHECK(onlyEntry("datasets").repo == RepoRef{RepoType::Model, "datasets", "main"});
}

TEST_CASE("display names the type only when it is not a model and the revision only when not main") {
    CHECK(RepoRef{RepoType::Model, "org/name", "main"}.display() == "org/name");
    CHECK(RepoRef{RepoType::Model, "gpt2", "v1"}.display() == "gpt2@v1");
    CHECK(RepoRef{RepoType::Dataset, "org/d", "v1.0"}.display() == "datasets/org/d@v1.0");
    CHECK(RepoRef{RepoType::Space, "org/s", "main"}.display() == "spaces/org/s");
    CHECK(typeName(RepoType::Model) == "model");
    CHECK(typeName(RepoType::Dataset) == "dataset");
    CHECK(typeName(RepoType::Space) == "space");
}

TEST_CASE("comments, blank lines, tabs and CRLF line ends are ignored") {
    const ParseResult r = parseText(
        "# full-line comment\r\n"
        "   # indented comment\r\n"
        "\r\n"
        " \t \r\n"
        "\tgpt2\t# trailing comment after a tab\r\n"
        "org/name   file:x   #trailing\r\n"
        "org/other file:a#b\r\n"
        "org/last#notcomment\n");
    REQUIRE(r.errors.size() == 1);
    // '#' inside a token is part of it, so this repo id holds a '#'.
    CHECK(r.errors[0].format() ==
          "m.txt:8:1: invalid repo id 'org/last#notcomment': '#' is not allowed (letters, digits, '-', '_' "
          "and '.' only); " +
              kRepoExpected);
    const auto& e = r.manifest.entries;
    REQUIRE(e.size() == 3);
    CHECK(e[0].repo.id == "gpt2");
    CHECK(e[0].selections[0].line == 5);
    CHECK(e[1].selections[0].files == std::vector<std::string>{"x"});
    CHECK(e[2].selections[0].files == std::vector<std::string>{"a#b"});
}

TEST_CASE("a UTF-8 byte order mark at the start is skipped") {
    CHECK(onlyEntry("\xEF\xBB\xBFgpt2\n").repo.id == "gpt2");
}

TEST_CASE("specs come in any order; gguf: is file:; duplicates within an entry are dropped") {
    const Entry e =
        onlyEntry("org/name optional exclude:*.bin gguf:b.gguf include:*.json file:a file:b.gguf");
    CHECK(e.selections[0].files == std::vector<std::string>{"b.gguf", "a"});
    CHECK(e.selections[0].includes == std::vector<std::string>{"*.json"});
    CHECK(e.selections[0].excludes == std::vector<std::string>{"*.bin"});
    CHECK(e.optional());
    CHECK(onlyEntry("org/name file:1_Pooling/config.json").selections[0].files ==
          std::vector<std::string>{"1_Pooling/config.json"});
    // huggingface_hub reads '\' in a pattern as '/'.
    CHECK(onlyEntry("org/name include:onnx\\*").selections[0].includes == std::vector<std::string>{"onnx/*"});
}

TEST_CASE("revision: sets the revision and must agree with @REV") {
    CHECK(onlyEntry("org/name revision:v1").repo.revision == "v1");
    CHECK(onlyEntry("org/name@v1 revision:v1").repo.revision == "v1");
    CHECK(onlyEntry("org/name revision:refs/pr/3 revision:refs/pr/3").repo.revision == "refs/pr/3");
    CHECK(onlyError("org/name@v1 revision:v2") ==
          "m.txt:1:13: 'revision:v2' conflicts with '@v1' at column 1; give the revision once");
    CHECK(onlyError("org/name revision:a revision:b") ==
          "m.txt:1:21: 'revision:b' conflicts with 'revision:a' at column 10; give the revision once");
    CHECK(onlyError("org/name revision:") ==
          "m.txt:1:10: expected a revision after 'revision:'; " + kRevExpected);
    CHECK(onlyError("org/name revision:a..b") ==
          "m.txt:1:10: invalid revision 'a..b': '..' is not allowed; " + kRevExpected);
}

TEST_CASE("invalid repo ids are reported with the column of the token and what was expected") {
    CHECK(onlyError("a/b/c") ==
          "m.txt:1:1: invalid repo id 'a/b/c': 3 parts separated by '/'; " + kRepoExpected);
    CHECK(onlyError("   a/b/c") ==
          "m.txt:1:4: invalid repo id 'a/b/c': 3 parts separated by '/'; " + kRepoExpected);
    CHECK(onlyError("org/na!me") ==
          "m.txt:1:1: invalid repo id 'org/na!me': '!' is not allowed (letters, digits, '-', '_' and '.' "
          "only); " +
              kRepoExpected);
    CHECK(onlyError("org--x/name") ==
          "m.txt:1:1: invalid repo id 'org--x/name': '--' is not allowed; " + kRepoExpected);
    CHECK(onlyError("org/na..me") ==
          "m.txt:1:1: invalid repo id 'org/na..me': '..' is not allowed; " + kRepoExpected);
    CHECK(onlyError("-org/name") ==
          "m.txt:1:1: invalid repo id '-org/name': '-org' starts or ends with '-' or '.'; " + kRepoExpected);
    CHECK(onlyError("org/name.") ==
          "m.txt:1:1: invalid repo id 'org/name.': 'name.' starts or ends with '-' or '.'; " + kRepoExpected);
    CHECK(onlyError(".gpt2") ==
          "m.txt:1:1: invalid repo id '.gpt2': '.gpt2' starts or ends with '-' or '.'; " + kRepoExpected);
    CHECK(onlyError("org/") == "m.txt:1:1: invalid repo id 'org/': an empty name; " + kRepoExpected);
    CHECK(onlyError("/name") == "m.txt:1:1: invalid repo id '/name': an empty name; " + kRepoExpected);
    CHECK(onlyError("datasets/") ==
          "m.txt:1:1: invalid repo id 'datasets/': an empty name; " + kRepoExpected);
    const std::string longName(97, 'n');
    CHECK(onlyError("org/" + longName) == "m.txt:1:1: invalid repo id 'org/" + longName + "': '" + longName +
                                              "' is 97 characters long (at most 96); " + kRepoExpected);
    CHECK(onlyError("org/na\x01me") ==
          "m.txt:1:1: invalid repo id 'org/na\\x01me': '\\x01' is not allowed (letters, digits, '-', '_' and "
          "'.' only); " +
              kRepoExpected);
    CHECK(onlyError("file:model.gguf") ==
          "m.txt:1:1: a line must start with a repo id, found the spec 'file:model.gguf'; " + kRepoExpected);
}

TEST_CASE("invalid revisions after @ are reported with what was expected") {
    CHECK(onlyError("org/name@") == "m.txt:1:1: empty revision after '@' in 'org/name@'; " + kRevExpected);
    CHECK(onlyError("org/name@v1..2") ==
          "m.txt:1:1: invalid revision 'v1..2': '..' is not allowed; " + kRevExpected);
    CHECK(onlyError("org/name@a\x7f") ==
          "m.txt:1:1: invalid revision 'a\\x7f': control characters are not allowed; " + kRevExpected);
    CHECK(onlyError("org/name@a\\b") ==
          "m.txt:1:1: invalid revision 'a\\b': '\\' is not allowed; " + kRevExpected);
    CHECK(onlyError("org/name@refs//pr") ==
          "m.txt:1:1: invalid revision 'refs//pr': it has an empty '/'-separated segment; " + kRevExpected);
    CHECK(onlyError("org/name@/main") ==
          "m.txt:1:1: invalid revision '/main': it has an empty '/'-separated segment; " + kRevExpected);
}

TEST_CASE("file paths are relative paths inside the repo") {
    CHECK(onlyError("org/name file:/etc/passwd") ==
          "m.txt:1:10: invalid path in 'file:/etc/passwd': it is absolute; " + kPathExpected);
    CHECK(onlyError("org/name gguf:a/../../b") ==
          "m.txt:1:10: invalid path in 'gguf:a/../../b': '..' is not allowed; " + kPathExpected);
    CHECK(onlyError("org/name file:./a") ==
          "m.txt:1:10: invalid path in 'file:./a': '.' segments are not allowed; " + kPathExpected);
    CHECK(onlyError("org/name file:a//b") ==
          "m.txt:1:10: invalid path in 'file:a//b': it has an empty segment; " + kPathExpected);
    CHECK(onlyError("org/name file:onnx/") ==
          "m.txt:1:10: invalid path in 'file:onnx/': it ends with '/' (use include:DIR/ for a folder); " +
              kPathExpected);
    CHECK(onlyError("org/name file:a\\b") ==
          "m.txt:1:10: invalid path in 'file:a\\b': '\\' is not allowed, use '/'; " + kPathExpected);
    CHECK(onlyError(std::string("org/name file:a\0b", 17)) ==
          "m.txt:1:10: invalid path in 'file:a\\x00b': control characters are not allowed; " + kPathExpected);
    CHECK(onlyError("org/name file:") == "m.txt:1:10: expected a path after 'file:'");
    CHECK(onlyError("org/name gguf:") == "m.txt:1:10: expected a path after 'gguf:'");
    // Dots inside a name are fine; only whole '..' segments escape.
    CHECK(onlyEntry("org/name file:model..v2.bin").selections[0].files ==
          std::vector<std::string>{"model..v2.bin"});
}

TEST_CASE("globs must not be empty or hold control characters") {
    CHECK(onlyError("org/name include:") == "m.txt:1:10: expected a glob after 'include:'");
    CHECK(onlyError("org/name exclude:") == "m.txt:1:10: expected a glob after 'exclude:'");
    CHECK(onlyError("org/name include:a\x1b") ==
          "m.txt:1:10: invalid glob in 'include:a\\x1b': control characters are not allowed; expected a "
          "pattern such as *.safetensors or onnx/");
}

TEST_CASE("unknown specs and bare words name the column and list the valid specs") {
    CHECK(onlyError("org/name foo:bar") == "m.txt:1:10: unknown spec 'foo:bar'; expected one of " + kSpecs);
    CHECK(onlyError("org/name File:a") == "m.txt:1:10: unknown spec 'File:a'; expected one of " + kSpecs);
    CHECK(onlyError("org/name opional") == "m.txt:1:10: unexpected 'opional'; expected a spec: " + kSpecs);
    CHECK(onlyError("org/name bad!word") == "m.txt:1:10: unexpected 'bad!word'; expected a spec: " + kSpecs);
    CHECK(onlyError("org/name other/repo") ==
          "m.txt:1:10: unexpected 'other/repo'; expected a spec: " + kSpecs + " (one repo per line)");
    CHECK(onlyError("org/name optional:yes") ==
          "m.txt:1:10: unexpected 'optional:yes': 'optional' takes no value; expected 'optional'");
}

TEST_CASE("every error of a file is reported at once and good lines still parse") {
    const ParseResult r = parseText(
        "gpt2\n"
        "bad!id file:/abs\n"
        "# fine\n"
        "org/name foo:bar  exclude:\n"
        "org/ok@v1 revision:v2\n"
        "org/good file:x\n");
    REQUIRE(r.errors.size() == 5);
    CHECK(r.errors[0].format().starts_with("m.txt:2:1: invalid repo id 'bad!id'"));
    CHECK(r.errors[1].format().starts_with("m.txt:2:8: invalid path in 'file:/abs': it is absolute"));
    CHECK(r.errors[2].format().starts_with("m.txt:4:10: unknown spec 'foo:bar'"));
    CHECK(r.errors[3].format() == "m.txt:4:19: expected a glob after 'exclude:'");
    CHECK(r.errors[4].format().starts_with("m.txt:5:11: 'revision:v2' conflicts with '@v1'"));
    CHECK_FALSE(r.ok());
    REQUIRE(r.manifest.entries.size() == 2);
    CHECK(r.manifest.entries[0].repo.id == "gpt2");
    CHECK(r.manifest.entries[1].repo.id == "org/good");
}

TEST_CASE("columns count characters, not bytes") {
    const ParseResult r = parseText("org/name file:\xC3\xA9t\xC3\xA9.txt bad:1");
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].line == 1);
    CHECK(r.errors[0].column == 23);
}

TEST_CASE("lines of one repo and revision are one entry with a selection per line, in order") {
    const ParseResult r = parseText(
        "org/a file:x optional\n"
        "org/b optional\n"
        "org/a@dev\n"
        "models/org/a@main file:y include:*.json\n"
        "org/b optional\n"
        "org/a revision:main file:x exclude:*.bin\n"
        "datasets/org/a\n");
    REQUIRE(r.ok());
    const auto& e = r.manifest.entries;
    REQUIRE(e.size() == 4);
    CHECK(e[0].repo == RepoRef{RepoType::Model, "org/a", "main"});
    REQUIRE(e[0].selections.size() == 3);
    CHECK(e[0].selections[0].files == std::vector<std::string>{"x"});
    CHECK(e[0].selections[0].optional);
    CHECK(e[0].selections[0].where() == "m.txt:1");
    CHECK(e[0].selections[1].files == std::vector<std::string>{"y"});
    CHECK(e[0].selections[1].includes == std::vector<std::string>{"*.json"});
    CHECK(e[0].selections[1].where() == "m.txt:4");
    CHECK(e[0].selections[2].excludes == std::vector<std::string>{"*.bin"});
    CHECK(e[0].selections[2].line == 6);
    CHECK_FALSE(e[0].optional());  // optional only when every line is
    CHECK(e[1].repo.id == "org/b");
    CHECK(e[1].selections.size() == 1);  // an identical line adds nothing
    CHECK(e[1].optional());
    CHECK(e[2].repo == RepoRef{RepoType::Model, "org/a", "dev"});
    CHECK(e[2].selections[0].line == 3);
    CHECK(e[3].repo == RepoRef{RepoType::Dataset, "org/a", "main"});
}

TEST_CASE("a revision given as @main, revision:main or not at all is one key") {
    const ParseResult r = parseText(
        "org/a@main file:x\n"
        "org/a revision:main file:y\n"
        "org/a include:*.json\n"
        "org/a@v1\n");
    REQUIRE(r.ok());
    REQUIRE(r.manifest.entries.size() == 2);
    CHECK(r.manifest.entries[0].selections.size() == 3);
    CHECK(r.manifest.entries[0].namedFiles() == std::vector<std::string>{"x", "y"});
    CHECK(r.manifest.entries[1].repo.revision == "v1");
}

TEST_CASE("100,000 lines merge into their entries by key") {
    std::string text;
    for (int i = 0; i < 50000; ++i) text += "org/repo-" + std::to_string(i % 1000) + "\n";
    for (int i = 0; i < 50000; ++i)
        text += "org/repo-" + std::to_string(i % 1000) + " file:f" + std::to_string(i) + "\n";
    const ParseResult r = parseText(text);
    REQUIRE(r.ok());
    REQUIRE(r.manifest.entries.size() == 1000);
    std::size_t selections = 0;
    for (const auto& e : r.manifest.entries) selections += e.selections.size();
    // 1,000 whole-repo lines once each, and 50,000 distinct file: lines.
    CHECK(selections == 51000);
    CHECK(r.manifest.entries[7].repo.id == "org/repo-7");
    CHECK(r.manifest.entries[7].selections[1].line == 50008);
}

TEST_CASE("loadAll merges several files and keeps each line's source") {
    TempDir dir;
    const auto a = dir.write("a.txt", "org/x file:a\ngpt2 optional\n");
    const auto b = dir.write("b.txt", "org/x file:b\r\ngpt2\r\norg/y\r\n");
    const ParseResult r = loadAll({a, b});
    REQUIRE(r.ok());
    const auto& e = r.manifest.entries;
    REQUIRE(e.size() == 3);
    CHECK(e[0].namedFiles() == std::vector<std::string>{"a", "b"});
    CHECK(e[0].selections[0].source == a.string());
    CHECK(e[0].selections[1].source == b.string());
    CHECK_FALSE(e[1].optional());
    CHECK(e[2].selections[0].source == b.string());
    CHECK(e[2].selections[0].line == 3);
    CHECK(cacheKey(r.manifest) == keyOf("org/y\ngpt2\norg/x file:b file:a\n"));
}

TEST_CASE("errors from a file carry its name; an unreadable file says why") {
    TempDir dir;
    const auto bad = dir.write("bad.txt", "gpt2\nfoo bar\n");
    ParseResult r = load(bad);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].format().starts_with(bad.string() + ":2:5: unexpected 'bar'"));

    const auto missing = dir.path / "missing.txt";
    r = load(missing);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].line == 0);
    CHECK(r.errors[0].format() ==
          missing.string() + ": cannot read the manifest: No such file or directory; check the path");

    r = load(dir.path);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].format() ==
          dir.path.string() + ": cannot read the manifest: Is a directory; check the path");

    r = loadAll({bad, missing});
    CHECK(r.errors.size() == 2);
    CHECK(r.manifest.entries.size() == 1);
}

TEST_CASE("a manifest that is not a regular file or is over 16 MiB is refused without reading it") {
    TempDir dir;
    ParseResult r = load("/dev/zero");
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].format() ==
          "/dev/zero: cannot read the manifest: it is not a regular file (a FIFO, socket or "
          "device); give the path of a manifest file");

    // Opening a FIFO for reading blocks until a writer comes; load must answer at once.
    const auto fifo = dir.path / "fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    r = load(fifo);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].message.find("not a regular file") != std::string::npos);

    const auto big = dir.path / "big.txt";
    {
        std::ofstream out(big);
        out << std::string(kMaxManifestBytes, '#') << "\n";
    }
    r = load(big);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].message ==
          "the manifest is 16777217 bytes, more than the limit of 16777216 (16 MiB); split "
          "it into several manifests or remove entries");

    const auto limit = dir.write("limit.txt", "gpt2\n" + std::string(kMaxManifestBytes - 5, '#'));
    r = load(limit);
    CHECK(r.ok());
    CHECK(r.manifest.entries.size() == 1);
}

TEST_CASE("diagnostics format as file:line:column: message") {
    CHECK(Diagnostic{"f", 3, 7, "msg"}.format() == "f:3:7: msg");
    CHECK(Diagnostic{"f", 3, 0, "msg"}.format() == "f:3: msg");
    CHECK(Diagnostic{"f", 0, 0, "msg"}.format() == "f: msg");
}

TEST_CASE("parseRepoRef applies the manifest's rules to one reference") {
    auto ok = parseRepoRef("datasets/org/d@v1");
    REQUIRE(ok.has_value());
    CHECK(*ok == RepoRef{RepoType::Dataset, "org/d", "v1"});
    auto bad = parseRepoRef("a/b/c");
    REQUIRE(bad.has_error());
    CHECK(bad.error().message == "invalid repo id 'a/b/c': 3 parts separated by '/'; " + kRepoExpected);
}

TEST_CASE("with no spec every file is selected") {
    const Entry e = entryWith({}, {}, {});
    CHECK(e.selects("config.json"));
    CHECK(e.selects("1_Pooling/config.json"));
    CHECK(e.selects(".gitattributes"));
}

TEST_CASE("file: and gguf: select exactly those files, plus include matches") {
    const Entry e = onlyEntry("org/name gguf:model.Q4.gguf file:sub/config.json");
    CHECK(e.selects("model.Q4.gguf"));
    CHECK(e.selects("sub/config.json"));
    CHECK_FALSE(e.selects("config.json"));
    CHECK_FALSE(e.selects("sub/model.Q4.gguf"));
    CHECK_FALSE(e.selects("MODEL.Q4.gguf"));
    const Entry withInclude = entryWith({"a.gguf"}, {"*.json"}, {});
    CHECK(withInclude.selects("a.gguf"));
    CHECK(withInclude.selects("tokenizer.json"));
    CHECK_FALSE(withInclude.selects("b.gguf"));
}

TEST_CASE("include: selects files matching one glob; '*' matches '/' and matching is case-sensitive") {
    const Entry e = entryWith({}, {"*.json", "onnx/*.onnx"}, {});
    CHECK(e.selects("config.json"));
    CHECK(e.selects("1_Pooling/config.json"));
    CHECK(e.selects("onnx/model.onnx"));
    CHECK(e.selects("onnx/sub/model.onnx"));
    CHECK_FALSE(e.selects("model.safetensors"));
    CHECK_FALSE(e.selects("CONFIG.JSON"));
    CHECK_FALSE(e.selects("model.onnx"));
    const Entry classes = entryWith({}, {"model-0000?.bin", "[ab].txt", "[!ab].md"}, {});
    CHECK(classes.selects("model-00001.bin"));
    CHECK_FALSE(classes.selects("model-000010.bin"));
    CHECK(classes.selects("a.txt"));
    CHECK_FALSE(classes.selects("c.txt"));
    CHECK(classes.selects("c.md"));
    CHECK_FALSE(classes.selects("a.md"));
    // fnmatch has no special leading dot unless asked: '*' matches hidden files as in Python.
    CHECK(entryWith({}, {"*"}, {}).selects(".gitattributes"));
}

TEST_CASE("a glob ending in '/' means everything under that folder") {
    const Entry e = entryWith({}, {"onnx/"}, {});
    CHECK(e.selects("onnx/model.onnx"));
    CHECK(e.selects("onnx/a/b.bin"));
    CHECK_FALSE(e.selects("onnx"));
    CHECK_FALSE(e.selects("onnxruntime/model.onnx"));
    const Entry ex = entryWith({}, {}, {"onnx/"});
    CHECK_FALSE(ex.selects("onnx/model.onnx"));
    CHECK(ex.selects("model.safetensors"));
}

TEST_CASE("exclude: removes files, including ones named by file:") {
    const Entry e = entryWith({"a.bin", "b.json"}, {"*.txt"}, {"*.bin", "skip.txt"});
    CHECK_FALSE(e.selects("a.bin"));
    CHECK(e.selects("b.json"));
    CHECK(e.selects("notes.txt"));
    CHECK_FALSE(e.selects("skip.txt"));
    const Entry all = onlyEntry("org/name exclude:*.bin exclude:*.h5");
    CHECK(all.selects("model.safetensors"));
    CHECK(all.selects("pytorch_model.BIN"));
    CHECK_FALSE(all.selects("pytorch_model.bin"));
    CHECK_FALSE(all.selects("sub/tf_model.h5"));
}

TEST_CASE("selection reads '\\' in a path as '/' and never selects a path holding NUL") {
    const Entry e = entryWith({}, {"onnx/*"}, {});
    CHECK(e.selects("onnx\\model.onnx"));
    CHECK_FALSE(entryWith({}, {}, {}).selects(std::string_view("a\0b", 3)));
}

TEST_CASE("normalize gives one canonical sorted line per entry with the revision explicit") {
    const ParseResult r = parseText(
        "gpt2\n"
        "datasets/org/d@v1 optional file:b gguf:a include:*.json exclude:x/ file:a\n"
        "spaces/org/s\n");
    REQUIRE(r.ok());
    CHECK(normalize(r.manifest) ==
          "datasets/org/d@v1 exclude:x/ file:a file:b include:*.json optional\n"
          "models/gpt2@main\n"
          "spaces/org/s@main\n");
    CHECK(normalize(Manifest{}).empty());
    // The normalized text is itself a manifest with the same key.
    const ParseResult again = parseText(normalize(r.manifest));
    REQUIRE(again.ok());
    CHECK(normalize(again.manifest) == normalize(r.manifest));
    CHECK(cacheKey(r.manifest) == hfwarm::util::sha256Hex(normalize(r.manifest)));
}

TEST_CASE("the cache key ignores cosmetic edits") {
    const std::string base = keyOf(
        "# demo\n"
        "org/a file:x include:*.json\n"
        "gpt2\n"
        "datasets/org/d@v1 optional\n");
    CHECK(base.size() == 64);
    CHECK(hfwarm::util::isHex(base, 64));
    // reordered lines and specs, comments, blank lines, spacing, tabs, CRLF
    CHECK(
        keyOf(
            "\n\ngpt2   # legacy\r\n\tdatasets/org/d@v1\toptional\r\n# x\norg/a include:*.json   file:x\n") ==
        base);
    // explicit default revision, models/ prefix, gguf: for file:, revision:, duplicates and split lines
    CHECK(keyOf("models/org/a@main gguf:x\norg/a revision:main include:*.json file:x\ngpt2@main\n"
                "datasets/org/d revision:v1 optional\ngpt2\n") == base);
}

TEST_CASE("the cache key changes only when the union of an entry's lines can change") {
    const std::string base = keyOf("org/a file:x file:y include:*.json\ngpt2\n");
    // split lines, and lines that add nothing to the union
    CHECK(keyOf("org/a file:x\norg/a include:*.json file:y\ngpt2\n") == base);
    CHECK(keyOf("org/a file:y\ngpt2\norg/a file:x include:*.json\ngpt2 optional\n") == base);
    CHECK(keyOf("org/a file:x file:y include:*.json\ngpt2 include:*\n") == base);
    // a whole repo keeps the file: paths of the other lines (absent ones are recorded)
    CHECK(keyOf("gpt2\ngpt2 file:x\n") == keyOf("gpt2 file:x include:*\n"));
    CHECK(keyOf("gpt2\ngpt2 file:x\n") != keyOf("gpt2\n"));
    // lines with their own exclude: stay apart
    CHECK(keyOf("gpt2\ngpt2 exclude:*.bin\n") != keyOf("gpt2\n"));
    CHECK(keyOf("org/a file:x exclude:*.bin\norg/a include:*.json\n") !=
          keyOf("org/a file:x include:*.json exclude:*.bin\n"));
    // an optional line beyond the required ones
    CHECK(keyOf("gpt2 file:x\ngpt2 file:y optional\n") != keyOf("gpt2 file:x\n"));
}

TEST_CASE("the cache key changes with any entry, revision, spec or the optional flag") {
    const std::string text = "org/a file:x include:*.json\ngpt2\ndatasets/org/d@v1 optional\n";
    const std::vector<std::string> variants = {
        "org/b file:x include:*.json\ngpt2\ndatasets/org/d@v1 optional\n",
        "org/a file:x include:*.json\ngpt2@dev\ndatasets/org/d@v1 optional\n",
        "org/a file:x include:*.json\ngpt2\ndatasets/org/d@v2 optional\n",
        "org/a file:x include:*.json\ngpt2\nspaces/org/d@v1 optional\n",
        "org/a file:y include:*.json\ngpt2\ndatasets/org/d@v1 optional\n",
        "org/a file:x include:*.txt\ngpt2\ndatasets/org/d@v1 optional\n",
        "org/a file:x include:*.json exclude:*.bin\ngpt2\ndatasets/org/d@v1 optional\n",
        "org/a file:x include:*.json\ngpt2\ndatasets/org/d@v1\n",
        "org/a file:x include:*.json\ngpt2 optional\ndatasets/org/d@v1 optional\n",
        "org/a file:x include:*.json\ngpt2\ndatasets/org/d@v1 optional\nbert-base-uncased\n",
        "org/a file:x include:*.json\ndatasets/org/d@v1 optional\n",
        "org/a file:x exclude:*.json\ngpt2\ndatasets/org/d@v1 optional\n",
        "Org/a file:x include:*.json\ngpt2\ndatasets/org/d@v1 optional\n",
    };
    std::set<std::string> keys = {keyOf(text)};
    for (const auto& v : variants) {
        INFO(v);
        CHECK(keys.insert(keyOf(v)).second);
    }
}
