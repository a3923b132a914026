// Where the Hugging Face cache lives and how a repo's folder in it is named.
//
// The root is resolved exactly as huggingface_hub's constants.py does it, so hfwarm fills the
// folder that Python (and @huggingface/hub, which uses the same precedence) reads. The environment
// is injected so tests and the daemon's config layer control it without touching the process.
#pragma once

#include "hfwarm/manifest/manifest.hpp"

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace hfwarm::cache {

// Reads one environment variable; nullopt when it is unset. A variable set to "" is set, as with
// Python's os.getenv.
using Env = std::function<std::optional<std::string>(const std::string& name)>;

// The process environment (getenv).
Env processEnv();

// A fixed set of variables; everything else is unset.
Env mapEnv(std::map<std::string, std::string> vars);

// Python's os.path.expanduser: "~" and "~/x" use HOME (else the password database), "~user/x"
// that user's home; anything else, or an unknown user, is returned unchanged.
std::string expandUser(std::string_view path, const Env& env);

// Python's os.path.expandvars (POSIX): "$NAME" and "${NAME}" are replaced by set variables;
// unset ones and a lone "$" stay as written.
std::string expandVars(std::string_view path, const Env& env);

// The hub cache root, as an absolute path (relative values are taken from the working directory):
// `cacheDirOverride` (--cache-dir; "~" expanded), else HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE,
// else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub, with
// "~" and "$VAR" expanded as huggingface_hub does.
std::filesystem::path resolveRoot(const std::optional<std::filesystem::path>& cacheDirOverride,
                                  const Env& env);

// hf-hub 0.x (Candle's Api::new()) always reads ~/.cache/huggingface/hub. When `root` is another
// folder this returns one line saying so and how a Candle program can reach `root`; else nullopt.
std::optional<std::string> candleRootNote(const std::filesystem::path& root, const Env& env);

// "models--org--name", "models--gpt2", "datasets--org--name", "spaces--org--name".
std::string repoFolderName(const manifest::RepoRef& repo);

}  // namespace hfwarm::cache
