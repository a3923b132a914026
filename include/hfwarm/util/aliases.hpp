// Short names for the namespaces every module uses. The module `hfwarm::http` owns the name
// `http`, so Beast's HTTP namespace is `bhttp` where it is needed (only inside src/http and the
// simulator).
#pragma once

#include <nlohmann/json_fwd.hpp>

namespace boost::asio::ssl {}
namespace boost::beast::http {}

namespace hfwarm {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using json = nlohmann::json;
}  // namespace hfwarm
