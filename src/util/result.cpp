#include "hfwarm/util/result.hpp"

namespace hfwarm {

void throw_exception_from_error(const Error& e, const boost::source_location&) {
    throw ErrorException(e);
}

}  // namespace hfwarm
