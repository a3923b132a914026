#include "hfwarm/protocol/jsonrpc.hpp"
#include "hfwarm/protocol/messages.hpp"
#include "hfwarm/protocol/summary.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace hfwarm::protocol;

namespace {

Request decodeOk(std::string_view line) {
    auto decoded = decodeRequest(line);
    REQUIRE(std::holds_alternative<Request>(decoded));
    return std::get<Request>(decoded);
}

Response decodeError(std::string_view line) {
    auto decoded = decodeRequest(line);
    REQUIRE(std::holds_alternative<Response>(decoded));
    auto response = std::get<Response>(decoded);
    REQUIRE(response.error.has_value());
    return response;
}

json parseLine(const std::string& line) {
    REQUIRE(!line.empty());
    CHECK(line.back() == '\n');
    CHECK(line.find('\n') == line.size() - 1);
    return json::parse(line);
}

}  // namespace

TEST_CASE("a valid request is decoded with its id, method and params") {
    auto request =
        decodeOk(R"({"jsonrpc":"2.0","id":7,"method":"lookup","params":{"repo":"gpt2","file":"a"}})");
    CHECK(request.hasId);
    CHECK(request.id == 7);
    CHECK(request.method == "lookup");
    CHECK(request.params["repo"] == "gpt2");
}

TEST_CASE("string and null ids are kept; a request without id is a notification") {
    CHECK(decodeOk(R"({"jsonrpc":"2.0","id":"abc","method":"status"})").id == "abc");
    auto nullId = decodeOk(R"({"jsonrpc":"2.0","id":null,"method":"status"})");
    CHECK(nullId.hasId);
    CHECK(nullId.id.is_null());
    auto notification = decodeOk(R"({"jsonrpc":"2.0","method":"sync"})");
    CHECK_FALSE(notification.hasId);
}

TEST_CASE("absent params decode as an empty object and a trailing CR is accepted") {
    auto request = decodeOk("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"status\"}\r");
    CHECK(request.params.is_object());
    CHECK(request.params.empty());
}

TEST_CASE("bad JSON is a parse error with a null id") {
    for (std::string_view line : {"not json", "{\"jsonrpc\":\"2.0\",", "", "{}}"}) {
        auto response = decodeError(line);
        CHECK(response.error->code == -32700);
        CHECK(response.id.is_null());
    }
}

TEST_CASE("wrong member types are invalid requests") {
    CHECK(decodeError(R"({"id":1,"method":"status"})").error->code == -32600);
    CHECK(decodeError(R"({"jsonrpc":"1.0","id":1,"method":"status"})").error->code == -32600);
    CHECK(decodeError(R"({"jsonrpc":2.0,"id":1,"method":"status"})").error->code == -32600);
    CHECK(decodeError(R"({"jsonrpc":"2.0","id":1,"method":5})").error->code == -32600);
    CHECK(decodeError(R"({"jsonrpc":"2.0","id":1})").error->code == -32600);
    CHECK(decodeError(R"({"jsonrpc":"2.0","id":1,"method":"status","params":"x"})").error->code == -32600);
    CHECK(decodeError(R"([{"jsonrpc":"2.0","id":1,"method":"status"}])").error->code == -32600);
    CHECK(decodeError(R"("status")").error->code == -32600);
}

TEST_CASE("positional params are invalid params") {
    auto response = decodeError(R"({"jsonrpc":"2.0","id":3,"method":"lookup","params":["gpt2","a"]})");
    CHECK(response.error->code == -32602);
    CHECK(response.id == 3);
}

TEST_CASE("an error keeps a readable id and drops an id of a wrong type") {
    CHECK(decodeError(R"({"jsonrpc":"1.0","id":"q","method":"status"})").id == "q");
    for (std::string_view line :
         {R"({"jsonrpc":"2.0","id":{},"method":"status"})", R"({"jsonrpc":"2.0","id":[1],"method":"status"})",
          R"({"jsonrpc":"2.0","id":true,"method":"status"})"}) {
        auto response = decodeError(line);
        CHECK(response.error->code == -32600);
        CHECK(response.id.is_null());
    }
}

TEST_CASE("a line over 64 KiB is refused before parsing, one at the limit is parsed") {
    std::string padding(kMaxLineBytes, ' ');
    std::string big = R"({"jsonrpc":"2.0","id":1,"method":"status"})" + padding;
    auto response = decodeError(big);
    CHECK(response.error->code == static_cast<int>(ErrorCode::LineTooLong));
    CHECK(response.error->message.find("65536") != std::string::npos);

    std::string request = R"({"jsonrpc":"2.0","id":1,"method":"status"})";
    std::string atLimit = request + std::string(kMaxLineBytes - request.size(), ' ');
    CHECK(decodeOk(atLimit).method == "status");
}

TEST_CASE("responses encode as one line with jsonrpc, id and result or error") {
    auto ok = parseLine(encode(makeResult(5, json{{"a", 1}})));
    CHECK(ok["jsonrpc"] == "2.0");
    CHECK(ok["id"] == 5);
    CHECK(ok["result"]["a"] == 1);
    CHECK_FALSE(ok.contains("error"));

    auto error =
        parseLine(encode(makeError("x", ErrorCode::MethodNotFound, "no such method", json{{"m", "y"}})));
    CHECK(error["id"] == "x");
    CHECK(error["error"]["code"] == -32601);
    CHECK(error["error"]["message"] == "no such method");
    CHECK(error["error"]["data"]["m"] == "y");
    CHECK_FALSE(error.contains("result"));

    auto noData = parseLine(encode(makeError(nullptr, ErrorCode::ParseError, "bad")));
    CHECK(noData["id"].is_null());
    CHECK_FALSE(noData["error"].contains("data"));
}

TEST_CASE("encoding a string that is not UTF-8 does not throw") {
    std::string bad = "file\xff\xfe.bin";
    std::string line;
    CHECK_NOTHROW(line = encode(makeResult(1, json{{"path", bad}})));
    CHECK(json::parse(line)["result"]["path"].is_string());
}

TEST_CASE("requests and notifications round-trip through the client decoder") {
    Request request;
    request.id = 9;
    request.method = "status";
    request.params = json{{"repo", "gpt2"}};
    auto decoded = decodeOk(encode(request).substr(0, encode(request).size() - 1));
    CHECK(decoded.id == 9);
    CHECK(decoded.params["repo"] == "gpt2");

    auto message = decodeMessage(encode(Notification{"entry", json{{"repo", "gpt2"}}}));
    REQUIRE(std::holds_alternative<Message>(message));
    auto& notification = std::get<Notification>(std::get<Message>(message));
    CHECK(notification.method == "entry");
    CHECK(notification.params["repo"] == "gpt2");

    auto reply = decodeMessage(encode(makeError(4, ErrorCode::UnknownRepo, "unknown repo")));
    REQUIRE(std::holds_alternative<Message>(reply));
    auto& response = std::get<Response>(std::get<Message>(reply));
    CHECK(response.id == 4);
    REQUIRE(response.error);
    CHECK(response.error->code == -32002);
    CHECK(response.error->message == "unknown repo");
}

TEST_CASE("the client decoder reports lines that are not replies") {
    CHECK(std::holds_alternative<std::string>(decodeMessage("garbage")));
    CHECK(std::holds_alternative<std::string>(decodeMessage("[1]")));
    CHECK(std::holds_alternative<std::string>(decodeMessage(R"({"jsonrpc":"2.0","id":1})")));
}

TEST_CASE("a status entry has every field DESIGN.md fixes, with their types") {
    EntryStatus entry;
    entry.repo = "org/name";
    entry.state = EntryState::Ready;
    entry.filesDone = 3;
    entry.filesTotal = 3;
    entry.bytesDone = 123;
    entry.bytesTotal = 123;
    json j = entry;
    CHECK(j["repo"] == "org/name");
    CHECK(j["type"] == "model");
    CHECK(j["revision"] == "main");
    CHECK(j["commit"].is_null());
    CHECK(j["state"] == "ready");
    CHECK(j["optional"] == false);
    CHECK(j["files_done"] == 3);
    CHECK(j["files_total"] == 3);
    CHECK(j["bytes_done"] == 123);
    CHECK(j["bytes_total"] == 123);
    CHECK(j["error"].is_null());
    CHECK(j["speed"].is_number());
    CHECK(j["last_checked"].is_null());

    entry.commit = std::string(40, 'a');
    entry.error = "HTTP 404";
    json withValues = entry;
    CHECK(withValues["commit"] == std::string(40, 'a'));
    CHECK(withValues["error"] == "HTTP 404");
}

TEST_CASE("a status result has entries, totals and limits") {
    StatusResult status;
    status.entries.resize(2);
    status.totals.entries = 2;
    status.limits = json{{"api", {{"tokens", 3}}}};
    json j = status;
    CHECK(j["entries"].is_array());
    CHECK(j["entries"].size() == 2);
    CHECK(j["totals"]["entries"] == 2);
    CHECK(j["limits"]["api"]["tokens"] == 3);

    auto back = j.get<StatusResult>();
    CHECK(back.entries.size() == 2);
    CHECK(back.limits["api"]["tokens"] == 3);
}

TEST_CASE("every entry state has a name that parses back") {
    for (auto state : {EntryState::Queued, EntryState::Resolving, EntryState::Downloading, EntryState::Ready,
                       EntryState::Failed, EntryState::Missing, EntryState::Paused}) {
        CHECK(parseState(stateName(state)) == state);
    }
    CHECK(stateName(EntryState::Queued) == "queued");
    CHECK(stateName(EntryState::Missing) == "missing");
    CHECK(parseState("hibernating") == EntryState::Unknown);
}

TEST_CASE("the names of older protocol 1 daemons read as the states that replaced them") {
    CHECK(parseState("pending") == EntryState::Queued);
    CHECK(parseState("offline") == EntryState::Ready);
}

TEST_CASE("the summary line counts entries per state and the optional ones not ready") {
    auto entry = [](EntryState state, bool optional = false) {
        EntryStatus s;
        s.state = state;
        s.optional = optional;
        return s;
    };
    CHECK(summaryLine({}) == "0 entries: 0 ready, 0 failed");
    CHECK(summaryLine({entry(EntryState::Ready)}) == "1 entry: 1 ready, 0 failed");
    std::vector<EntryStatus> cache(13, entry(EntryState::Ready));
    cache.push_back(entry(EntryState::Failed));
    cache.push_back(entry(EntryState::Failed, true));
    CHECK(summaryLine(cache) == "15 entries: 13 ready, 2 failed; 1 optional not ready");
    CHECK(summaryLine({entry(EntryState::Downloading), entry(EntryState::Queued), entry(EntryState::Queued),
                       entry(EntryState::Missing, true), entry(EntryState::Paused)}) ==
          "5 entries: 0 ready, 0 failed, 1 missing, 2 queued, 1 downloading, 1 paused; 1 optional not ready");
}

TEST_CASE("lookup and version results have the fixed shapes") {
    json cached = LookupResult{LookupState::Cached, std::string("/c/models--gpt2/snapshots/abc/config.json")};
    CHECK(cached["state"] == "cached");
    CHECK(cached["path"] == "/c/models--gpt2/snapshots/abc/config.json");
    json absent = LookupResult{LookupState::Absent, std::nullopt};
    CHECK(absent["state"] == "absent");
    CHECK(absent["path"].is_null());
    CHECK(json(LookupResult{}).at("state") == "unknown");
    CHECK(json::parse(R"({"state":"absent"})").get<LookupResult>().state == LookupState::Absent);

    json version = VersionResult{"1.2.3"};
    CHECK(version == json{{"version", "1.2.3"}, {"protocol", 1}});
}

TEST_CASE("client-side decoding tolerates missing members, wrong types and unknown states") {
    auto entry = json::parse(R"({"repo":"gpt2","state":"hibernating","files_done":"3","commit":5,"extra":1})")
                     .get<EntryStatus>();
    CHECK(entry.repo == "gpt2");
    CHECK(entry.state == EntryState::Unknown);
    CHECK(entry.filesDone == 0);
    CHECK_FALSE(entry.commit.has_value());
    CHECK(entry.revision == "main");

    auto status = json::parse(R"({"entries":[1,{"repo":"a"}],"totals":[],"limits":5})").get<StatusResult>();
    REQUIRE(status.entries.size() == 1);
    CHECK(status.entries[0].repo == "a");
    CHECK(status.limits.is_object());
}

TEST_CASE("an entry displays with its type prefix and a revision other than main") {
    EntryStatus entry;
    entry.repo = "org/data";
    entry.type = "dataset";
    entry.revision = "v1.0";
    CHECK(entry.display() == "datasets/org/data@v1.0");
    entry.type = "model";
    entry.revision = "main";
    CHECK(entry.display() == "org/data");
}

TEST_CASE("lookup params are checked strictly on the daemon side") {
    LookupParams params;
    CHECK_FALSE(checkLookupParams(json{{"repo", "gpt2"}, {"file", "config.json"}}, params).has_value());
    CHECK(params.repo == "gpt2");
    CHECK(params.file == "config.json");
    CHECK_FALSE(params.revision.has_value());

    LookupParams withRevision;
    CHECK_FALSE(checkLookupParams(json{{"repo", "gpt2"}, {"file", "a"}, {"revision", "v1"}}, withRevision));
    CHECK(withRevision.revision == "v1");

    LookupParams bad;
    auto missing = checkLookupParams(json{{"repo", "gpt2"}}, bad);
    REQUIRE(missing);
    CHECK(missing->find("\"file\"") != std::string::npos);
    auto wrongType = checkLookupParams(json{{"repo", 5}, {"file", "a"}}, bad);
    REQUIRE(wrongType);
    CHECK(wrongType->find("\"repo\" must be a string") != std::string::npos);
    CHECK(checkLookupParams(json{{"repo", ""}, {"file", "a"}}, bad));
}

TEST_CASE("prune, status and sync params are checked strictly on the daemon side") {
    PruneParams prune;
    CHECK_FALSE(checkPruneParams(json::object(), prune));
    CHECK_FALSE(prune.apply);
    CHECK_FALSE(checkPruneParams(json{{"apply", true}}, prune));
    CHECK(prune.apply);
    CHECK(checkPruneParams(json{{"apply", "yes"}}, prune));

    StatusParams status;
    CHECK_FALSE(checkStatusParams(json::object(), status));
    CHECK_FALSE(status.repo.has_value());
    CHECK(checkStatusParams(json{{"repo", 1}}, status));

    SyncParams sync;
    CHECK_FALSE(checkSyncParams(json{{"repo", "gpt2"}}, sync));
    CHECK(sync.repo == "gpt2");
}

TEST_CASE("last_checked timestamps are ISO 8601 UTC to the second") {
    CHECK(formatTimestamp(std::chrono::system_clock::from_time_t(1'700'000'000)) == "2023-11-14T22:13:20Z");
}
