// Row limits of the tables the control process keeps and the dataplane holds: one definition
// both sides use, so a row the control process accepts is never refused by imfd for its size.
#pragma once

#include <cstdint>

namespace imf {

inline constexpr uint32_t kTableMaxKey = 96;     // an MQTT account as the dataplane keeps it
inline constexpr uint32_t kTableMaxValue = 256;  // markers and state, encoded by the control process

}  // namespace imf
