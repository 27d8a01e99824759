#pragma once

namespace idp::cli {
inline constexpr const char* k_version = "0.1.0";
}
