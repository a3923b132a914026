// Signed, expiring CDN URLs: `?expires=<unix seconds>&sig=<hex HMAC-SHA256 of "<object>\n<expires>">`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace hfwarm::hubsim {

class UrlSigner {
  public:
    UrlSigner();  // a random key per process

    std::string sign(std::string_view object, std::uint64_t expires) const;
    bool valid(std::string_view object, std::uint64_t expires, std::string_view signature) const;

  private:
    std::string key_;
};

}  // namespace hfwarm::hubsim
