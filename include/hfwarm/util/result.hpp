// Expected failures as values: Result<T> holds a T or an Error with a message a person can act on.
#pragma once

#include <boost/system/result.hpp>

#include <stdexcept>
#include <string>

namespace hfwarm {

struct Error {
    std::string message;
};

// Thrown by Result<T>::value() when it holds an Error; the message is kept.
class ErrorException : public std::runtime_error {
  public:
    explicit ErrorException(const Error& e) : std::runtime_error(e.message) {}
};

[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

template <class T>
using Result = boost::system::result<T, Error>;

inline Error makeError(std::string message) {
    return Error{std::move(message)};
}

}  // namespace hfwarm
