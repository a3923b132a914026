// Short names for the namespaces every module uses.
#pragma once

#include <nlohmann/json_fwd.hpp>

namespace boost::asio {}
namespace boost::beast {}
namespace boost::beast::http {}
namespace boost::asio::ssl {}

namespace hfwarm {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using json = nlohmann::json;
}  // namespace hfwarm
