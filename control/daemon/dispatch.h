// Translates one request line of the control protocol into a call of the matching Control action
// and its result into the response line. Nothing else happens here.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>

#include "daemon/control.h"

namespace imf::control {

struct Peer {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
};

// Handles one request line (without its newline): returns the final response line ('\n'-ended);
// progress lines of long commands go to `emit` first. Any thread.
std::string handle_request(Control& control, std::string_view line, const Peer& peer,
                           const std::function<void(const std::string&)>& emit);

// The command names, for help texts and errors.
const char* command_names();

}  // namespace imf::control
