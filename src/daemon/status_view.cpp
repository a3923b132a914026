#include "hfwarm/daemon/status_view.hpp"

#include "hfwarm/cache/scan.hpp"

namespace hfwarm::daemon {

protocol::EntryState protocolState(transfer::EntryState state, bool paused) {
    switch (state) {
        case transfer::EntryState::Queued:
            return paused ? protocol::EntryState::Paused : protocol::EntryState::Queued;
        case transfer::EntryState::Resolving:
            return paused ? protocol::EntryState::Paused : protocol::EntryState::Resolving;
        case transfer::EntryState::Downloading:
            return paused ? protocol::EntryState::Paused : protocol::EntryState::Downloading;
        case transfer::EntryState::Ready:
            return protocol::EntryState::Ready;
        case transfer::EntryState::Failed:
            return protocol::EntryState::Failed;
    }
    return protocol::EntryState::Unknown;
}

protocol::EntryStatus statusOf(const transfer::EntryProgress& p, bool paused, double speed) {
    protocol::EntryStatus s;
    s.repo = p.entry.repo.id;
    s.type = std::string(manifest::typeName(p.entry.repo.type));
    s.revision = p.entry.repo.revision;
    s.commit = p.commit;
    s.state = protocolState(p.state, paused);
    s.optional = p.entry.optional();
    s.filesDone = p.filesDone;
    s.filesTotal = p.filesTotal;
    s.bytesDone = p.bytesDone;
    s.bytesTotal = p.bytesTotal;
    if (!p.error.empty()) s.error = p.error;
    s.speed = speed;
    if (p.lastChecked) s.lastChecked = protocol::formatTimestamp(*p.lastChecked);
    s.currentFiles = p.currentFiles;
    s.notes = p.notes;
    return s;
}

protocol::EntryStatus offlineStatusOf(const manifest::Entry& entry, const std::filesystem::path& root) {
    auto scan = cache::scanEntry(root, entry);
    protocol::EntryStatus s;
    s.repo = entry.repo.id;
    s.type = std::string(manifest::typeName(entry.repo.type));
    s.revision = entry.repo.revision;
    s.commit = scan.commit;
    s.state =
        scan.state == cache::EntryState::Ready ? protocol::EntryState::Ready : protocol::EntryState::Missing;
    s.optional = entry.optional();
    s.filesDone = scan.filesPresent;
    s.filesTotal = scan.filesExpected;
    s.bytesDone = scan.bytesPresent;
    s.bytesTotal = scan.bytesExpected.value_or(scan.bytesPresent);
    if (scan.state == cache::EntryState::Ready) return s;
    std::string why = "not in the cache";
    if (!scan.knownAbsent.empty())
        why = "absent on the Hub: " + scan.knownAbsent.front();
    else if (!scan.missingFiles.empty())
        why = "missing: " + scan.missingFiles.front();
    else if (!scan.problems.empty())
        why = scan.problems.front().message;
    s.error = why + "; run hfwarmd without --offline to download it";
    return s;
}

}  // namespace hfwarm::daemon
