// The one-line summary of entries that `hfwarmctl status`, `hfwarmctl wait` and `hfwarmd --once`
// print, in the state names of docs/protocol.md.
#pragma once

#include "hfwarm/protocol/messages.hpp"

#include <string>
#include <vector>

namespace hfwarm::protocol {

// "15 entries: 13 ready, 2 failed; 1 optional not ready": ready and failed always, every other
// state that some entry is in (in the order of EntryState), then the optional entries not ready.
std::string summaryLine(const std::vector<EntryStatus>& entries);

}  // namespace hfwarm::protocol
