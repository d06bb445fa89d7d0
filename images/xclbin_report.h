// Human and machine summaries of an xclbin, behind `fpgahost xclbin inspect FILE [--json]`.
//
// XclbinToText prints what `xclbinutil --info` prints for the fields both know, with the same
// labels and layout ("   Platform VBNV:          ...", the "Memory Configuration" and
// "Scalable Clocks" blocks), plus what fpgahost reads itself: kernels and compute units from
// IP_LAYOUT, connectivity and the section table. XclbinToJson carries the same facts as
// JSON; its shape is documented by tests/unit/images/golden/*.json.
//
// Strings from the file are escaped (EscapeForDisplay in text; invalid UTF-8 becomes \xNN in
// JSON), so the output is safe for a terminal and always serialisable. Metadata sections that
// hold JSON (BUILD_METADATA, KEYVALUE_METADATA) are embedded as JSON when they parse, as text
// otherwise.
//
// Thread-safe; never fails.
#pragma once

#include <string>

#include "common/json.h"
#include "images/xclbin.h"

namespace fpgahost::images {

Json XclbinToJson(const Xclbin& xclbin);
std::string XclbinToText(const Xclbin& xclbin);

}  // namespace fpgahost::images
