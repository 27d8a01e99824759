#pragma once
// idp::Fatal: startup and config failures that end the process. Thrown by `idp serve`
// setup; caught only in cli::run, which prints "idp: error: <msg>" and exits 1.

#include <stdexcept>
#include <string>

namespace idp {

class Fatal : public std::runtime_error {
public:
  explicit Fatal(const std::string& msg) : std::runtime_error(msg) {}
};

} // namespace idp
