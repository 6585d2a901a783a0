// Helpers the control action files share (control.cpp, control_accounts.cpp).
#pragma once

#include <chrono>

#include "daemon/dataplane_link.h"
#include "proto/json.h"

namespace imf::control {

// Milliseconds since t0, to 0.1 ms.
double ms_since(std::chrono::steady_clock::time_point t0);

// The "dataplane" member of a change's result; `reply` is null when the dataplane keeps no such
// thing (nothing was sent): `none_note` says so; `resync_note` follows an error.
json::Value change_dataplane_json(const DataplaneReply* reply, const char* none_note, const char* resync_note);

}  // namespace imf::control
