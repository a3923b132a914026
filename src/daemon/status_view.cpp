#include "hfwarm/daemon/status_view.hpp"

#include "hfwarm/cache/scan.hpp"

namespace hfwarm::daemon {

protocol::EntryState protocolState(transfer::EntryState state, bool paused) {
    switch (state) {
        case transfer::EntryState::Pending:
            return paused ? protocol::EntryState::Paused : protocol::EntryState::Pending;
        case transfer::EntryState::Resolving:
            return paused ? protocol::EntryState::Paused : protocol::EntryState::Resolving;
        case transfer::EntryState::Downloading:
            return paused ? protocol::EntryState::Paused : protocol::EntryState::Downloading;
        case transfer::EntryState::Ready:
            return protocol::EntryState::Ready;
        case transfer::EntryState::Failed:
            return protocol::EntryState::Failed;
        case transfer::EntryState::Paused:
            return protocol::EntryState::Paused;
        case transfer::EntryState::Offline:
            return protocol::EntryState::Offline;
    }
    return protocol::EntryState::Pending;
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
        scan.state == cache::EntryState::Ready ? protocol::EntryState::Offline : protocol::EntryState::Failed;
    s.optional = entry.optional();
    s.filesDone = scan.filesPresent;
    s.filesTotal = scan.filesExpected;
    s.bytesDone = scan.bytesPresent;
    s.bytesTotal = scan.bytesExpected.value_or(scan.bytesPresent);
    if (scan.state != cache::EntryState::Ready)
        s.error = "not in the cache and offline: " + std::string(cache::stateName(scan.state));
    return s;
}

}  // namespace hfwarm::daemon
