// The Hub token, found where huggingface_hub looks for it (hub-protocol.md section 2.4).
#pragma once

#include "hfwarm/config/config.hpp"

#include <optional>
#include <string>

namespace hfwarm::config {

// HF_TOKEN, else the legacy HUGGING_FACE_HUB_TOKEN, else the file HF_TOKEN_PATH, else
// $HF_HOME/token (HF_HOME defaulting to $XDG_CACHE_HOME/huggingface, then ~/.cache/huggingface).
// A file's content has "\r" and "\n" removed and surrounding whitespace trimmed; an empty result
// means no token. HF_HUB_DISABLE_IMPLICIT_TOKEN does not apply: the daemon is configured for it.
std::optional<std::string> findToken(const Environment& env);

// With a token found and a plain http:// endpoint, the token is not sent (unless token_over_http),
// and gated repos then fail: the one warning to print at startup, naming HF_TOKEN, the endpoint
// and the way out. nullopt when there is nothing to say.
std::optional<std::string> plainHttpTokenWarning(const Config& config, bool tokenFound);

}  // namespace hfwarm::config
