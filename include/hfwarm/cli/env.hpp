// `hfwarmctl env`: the environment a test step needs to read hfwarm's cache with no network.
//
// The cache root comes from the running daemon (its status), or, with --cache-dir / --config, from
// the resolution hfwarmd itself uses (config file, environment, flag). Printed as shell exports
// (for `eval "$(hfwarmctl env)"`), as lines for GitHub Actions' $GITHUB_ENV, or as JSON.
#pragma once

#include "hfwarm/cli/cli.hpp"

#include <CLI/CLI.hpp>

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hfwarm::cli {

enum class EnvFormat { Sh, Github, Json };

// What `env` prints: the variables in order, and one-line notes (hf-hub 0.x reading another root, a
// '$' in the root that huggingface_hub would expand).
struct EnvReport {
    std::vector<std::pair<std::string, std::string>> variables;
    std::vector<std::string> notes;
};

// HF_HUB_CACHE=root, then the offline switches huggingface_hub (HF_HUB_OFFLINE=1) and older
// projects (HF_OFFLINE=true, CI_OFFLINE_MODE=true) read.
std::vector<std::pair<std::string, std::string>> offlineVariables(const std::filesystem::path& root);

// `text` as one POSIX shell word: single-quoted, each ' written as '\''.
std::string shellQuote(std::string_view text);

// sh: `export NAME='value'` lines and a `# note` line per note. github: `NAME=value` lines (a
// value with a line break uses the NAME<<DELIMITER form) and no notes: $GITHUB_ENV has no comment
// syntax, run() prints them on stderr as ::notice:: commands. json: {"env": {...}, "notes": [...]}.
std::string formatEnv(const EnvReport& report, EnvFormat format);

// The options of `env`, filled by the parser that addEnvCommand() sets up.
struct EnvOptions {
    std::string format;  // "sh", "github", "json"; empty: sh, or json with hfwarmctl --json
    std::string cacheDir;
    std::string configFile;
};

// Adds the `env` subcommand and its options to hfwarmctl's parser.
CLI::App* addEnvCommand(CLI::App& app, EnvOptions& options);

// Runs `env`; returns 0, 2 (bad config), or 3 (no --cache-dir/--config and no daemon at socketPath).
int runEnv(const EnvOptions& options, Context& context, const std::string& socketPath, bool jsonOutput);

}  // namespace hfwarm::cli
