// imfctl's human-readable rendering of command results (--json prints them raw instead).
#pragma once

#include <string>

#include "proto/json.h"

namespace imf::ctl {

// The text printed on stdout for a successful `cmd` (a protocol command name such as
// "rules.load"). Ends with a newline unless empty. Pure.
std::string format_result(const std::string& cmd, const json::Value& result);

// "2026-01-02T03:04:05Z" for Unix milliseconds.
std::string format_time(int64_t unix_ms);

}  // namespace imf::ctl
