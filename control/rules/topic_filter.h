// MQTT topic filters (MQTT 3.1.1 section 4.7) as rules use them to name channels.
#pragma once

#include <string_view>

#include "common/result.h"

namespace imf::rules {

// A filter is 1-128 bytes; '+' fills a whole level; '#' is last and fills a whole level.
// Errors say what is wrong. Pure.
Status check_topic_filter(std::string_view filter);

// Whether `topic` is in `filter`: '+' matches one level, '#' this level and every level below
// ("a/#" matches "a" and "a/b/c"); a filter starting with a wildcard does not match topics
// starting with '$'. Pure, no allocation; the fast path calls it for each rule hit.
bool topic_matches(std::string_view filter, std::string_view topic);

}  // namespace imf::rules
