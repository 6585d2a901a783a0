// Channel patterns as rules use them: MQTT topic filters (MQTT 3.1.1 section 4.7) for MQTT
// topics, globs for the channels of the other protocols (JIDs, SIP URIs, IRC channels and nicks).
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

// A glob is 1-256 printable bytes: '*' matches any run of bytes, '?' one byte, the rest itself,
// ASCII letters without regard to case (JIDs' domains, IRC channels and SIP hosts are caseless).
// Errors say what is wrong. Pure.
Status check_glob(std::string_view glob);

// Whether `text` matches `glob`. Pure, no allocation, no recursion: at worst the product of the
// lengths (both at most 256 on the fast path, which calls it for each rule hit).
bool glob_matches(std::string_view glob, std::string_view text);

}  // namespace imf::rules
