// `hfwarmctl env`: the three output formats, shell quoting, and where the cache root comes from
// without a daemon (--cache-dir, --config, the environment). The daemon case and `eval` in a real
// shell are in tests/integration/env_test.py.
#include "hfwarm/cli/env.hpp"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include "temp_dir.hpp"

#include <sstream>
#include <string>
#include <vector>

using namespace hfwarm;
using testing::TempDir;

namespace {

struct Outcome {
    int code = -1;
    std::string out;
    std::string err;
};

Outcome runCli(const std::vector<std::string>& args, std::map<std::string, std::string, std::less<>> env) {
    std::ostringstream out;
    std::ostringstream err;
    cli::Context context{out, err, std::move(env), 1000};
    Outcome outcome;
    outcome.code = cli::run(args, context);
    outcome.out = out.str();
    outcome.err = err.str();
    return outcome;
}

cli::EnvReport reportFor(const std::string& root, std::vector<std::string> notes = {}) {
    return cli::EnvReport{cli::offlineVariables(root), std::move(notes)};
}

}  // namespace

TEST_CASE("shellQuote makes one shell word of any text") {
    CHECK(cli::shellQuote("/home/ci/.cache/huggingface/hub") == "'/home/ci/.cache/huggingface/hub'");
    CHECK(cli::shellQuote("") == "''");
    CHECK(cli::shellQuote("/tmp/a b") == "'/tmp/a b'");
    CHECK(cli::shellQuote("it's") == "'it'\\''s'");
    CHECK(cli::shellQuote("$HOME `id` \"x\" \\") == "'$HOME `id` \"x\" \\'");
}

TEST_CASE("the sh format exports the cache root and the three offline switches, then the notes") {
    auto text =
        cli::formatEnv(reportFor("/srv/hf cache/it's", {"hf-hub 0.x reads\nelsewhere"}), cli::EnvFormat::Sh);
    CHECK(text ==
          "export HF_HUB_CACHE='/srv/hf cache/it'\\''s'\n"
          "export HF_HUB_OFFLINE='1'\n"
          "export HF_OFFLINE='true'\n"
          "export CI_OFFLINE_MODE='true'\n"
          "# hf-hub 0.x reads elsewhere\n");
}

TEST_CASE("the github format writes NAME=value lines and no note, since $GITHUB_ENV has no comments") {
    auto text = cli::formatEnv(reportFor("/srv/hf cache/it's", {"a note"}), cli::EnvFormat::Github);
    CHECK(text ==
          "HF_HUB_CACHE=/srv/hf cache/it's\n"
          "HF_HUB_OFFLINE=1\n"
          "HF_OFFLINE=true\n"
          "CI_OFFLINE_MODE=true\n");
}

TEST_CASE("the github format writes a value with a line break as a heredoc whose delimiter it lacks") {
    auto text = cli::formatEnv(reportFor("/tmp/a\nHFWARM_EOF"), cli::EnvFormat::Github);
    CHECK(text.rfind("HF_HUB_CACHE<<HFWARM_EOF_1\n/tmp/a\nHFWARM_EOF\nHFWARM_EOF_1\nHF_HUB_OFFLINE=1\n", 0) ==
          0);
}

TEST_CASE("the json format holds the variables and the notes") {
    auto doc = nlohmann::json::parse(cli::formatEnv(reportFor("/c", {"n"}), cli::EnvFormat::Json));
    CHECK(doc["env"] == nlohmann::json{{"HF_HUB_CACHE", "/c"},
                                       {"HF_HUB_OFFLINE", "1"},
                                       {"HF_OFFLINE", "true"},
                                       {"CI_OFFLINE_MODE", "true"}});
    CHECK(doc["notes"] == nlohmann::json{"n"});
}

TEST_CASE("env --cache-dir prints that root, with no note when it is hf-hub's own") {
    TempDir dir;
    auto root = dir.path() / ".cache" / "huggingface" / "hub";
    auto outcome = runCli({"env", "--cache-dir", root.string()}, {{"HOME", dir.path().string()}});
    CHECK(outcome.code == 0);
    CHECK(outcome.err == "");
    CHECK(outcome.out ==
          "export HF_HUB_CACHE=" + cli::shellQuote(root.string()) +
              "\nexport HF_HUB_OFFLINE='1'\nexport HF_OFFLINE='true'\nexport CI_OFFLINE_MODE='true'\n");
}

TEST_CASE("env adds one comment line when hf-hub 0.x reads another root") {
    TempDir dir;
    auto outcome =
        runCli({"env", "--cache-dir", (dir.path() / "models").string()}, {{"HOME", dir.path().string()}});
    CHECK(outcome.code == 0);
    auto last = outcome.out.substr(outcome.out.rfind("\n#") + 1);
    CHECK(last.rfind("# hf-hub 0.x (Candle's Api::new()) always reads " + dir.path().string() +
                         "/.cache/huggingface/hub",
                     0) == 0);
    CHECK(std::count(outcome.out.begin(), outcome.out.end(), '#') == 1);
}

TEST_CASE("env --format github prints the note on stderr as a workflow notice") {
    TempDir dir;
    auto outcome = runCli({"env", "--format", "github", "--cache-dir", (dir.path() / "m").string()},
                          {{"HOME", dir.path().string()}});
    CHECK(outcome.code == 0);
    CHECK(outcome.out.find('#') == std::string::npos);
    CHECK(outcome.err.rfind("::notice::hf-hub 0.x", 0) == 0);
}

TEST_CASE("env --config takes cache_dir from the file, relative to the file's folder") {
    TempDir dir;
    auto config = dir.write("hfwarmd.json", R"({"cache_dir": "shared/hub"})");
    auto outcome = runCli({"--json", "env", "--config", config.string()},
                          {{"HOME", dir.path().string()}, {"HF_HUB_CACHE", "/x"}});
    CHECK(outcome.code == 0);
    auto doc = nlohmann::json::parse(outcome.out);
    CHECK(doc["env"]["HF_HUB_CACHE"] == (dir.path() / "shared" / "hub").string());
}

TEST_CASE("env --config without cache_dir resolves the root from the environment as hfwarmd does") {
    TempDir dir;
    auto config = dir.write("hfwarmd.json", "{}");
    auto outcome = runCli({"env", "--format", "json", "--config", config.string()},
                          {{"HOME", dir.path().string()}, {"HF_HOME", (dir.path() / "hf").string()}});
    CHECK(outcome.code == 0);
    CHECK(nlohmann::json::parse(outcome.out)["env"]["HF_HUB_CACHE"] == (dir.path() / "hf" / "hub").string());
}

TEST_CASE("env with a bad config exits 2 and names the key") {
    TempDir dir;
    auto config = dir.write("hfwarmd.json", R"({"cache_dri": "x"})");
    auto outcome = runCli({"env", "--config", config.string()}, {{"HOME", dir.path().string()}});
    CHECK(outcome.code == 2);
    CHECK(outcome.out == "");
    CHECK(outcome.err.find("cache_dri") != std::string::npos);
}

TEST_CASE("env with no daemon and no --cache-dir exits 3 and says how to do without one") {
    TempDir dir;
    auto outcome = runCli({"env"}, {{"HFWARM_SOCKET", (dir.path() / "none.sock").string()}});
    CHECK(outcome.code == 3);
    CHECK(outcome.out == "");
    CHECK(outcome.err.find("none.sock") != std::string::npos);
    CHECK(outcome.err.find("--cache-dir DIR") != std::string::npos);
}

TEST_CASE("env --format with an unknown format is a usage error") {
    auto outcome = runCli({"env", "--format", "yaml", "--cache-dir", "/c"}, {});
    CHECK(outcome.code == 2);
    CHECK(outcome.out == "");
    CHECK(outcome.err.find("yaml") != std::string::npos);
}

TEST_CASE("env notes a cache root with a '$', which huggingface_hub would expand") {
    TempDir dir;
    auto root = dir.path() / ".cache" / "huggingface" / "hub";
    auto outcome = runCli({"env", "--format", "json", "--cache-dir", (dir.path() / "a$HOME").string()},
                          {{"HOME", dir.path().string()}});
    CHECK(outcome.code == 0);
    auto notes = nlohmann::json::parse(outcome.out)["notes"];
    REQUIRE(notes.size() == 2);
    CHECK(notes[1].get<std::string>().find("contains '$', which huggingface_hub expands") !=
          std::string::npos);
    auto plain =
        runCli({"env", "--format", "json", "--cache-dir", root.string()}, {{"HOME", dir.path().string()}});
    CHECK(nlohmann::json::parse(plain.out)["notes"].empty());
}
