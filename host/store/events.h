// The event log in the state store: every change an operator may want to audit
// (token created, card health changed, ...). Append-only. Thread-safe.
#pragma once

#include <string_view>

#include "common/clock.h"
#include "common/json.h"
#include "host/store/sqlite.h"

namespace fpgahost {

// Appends one event; call inside the transaction that makes the change it records.
Status AppendEvent(SqliteDb& db, const Clock& clock, std::string_view kind,
                   std::string_view subject, const Json& detail);

}  // namespace fpgahost
