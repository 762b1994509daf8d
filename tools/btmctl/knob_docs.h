// Text generated from the knob table (src/config/knobs.def): the knob section
// of btmalloc.conf(5) and the example /etc/btmalloc.conf.  The checked-in
// copies are compared with these by ctest, so they cannot drift.
#pragma once

#include <string>

namespace btmctl {

// roff for the KNOBS section of man/btmalloc.conf.5 (between its BEGIN and
// END GENERATED markers).
std::string man_knob_table();

// packaging/btmalloc.conf: every knob commented out at its default.
std::string example_config();

// "on | off", "1..1024", "none or 34..64": what a knob accepts.
std::string accepted_values(unsigned id);

// The help text as a sentence: capitalised, with a final period.
std::string sentence(const char* help);

}  // namespace btmctl
