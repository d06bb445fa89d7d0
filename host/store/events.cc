#include "host/store/events.h"

namespace fpgahost {

Status AppendEvent(SqliteDb& db, const Clock& clock, std::string_view kind,
                   std::string_view subject, const Json& detail) {
  ASSIGN_OR_RETURN(Statement insert, db.Prepare("INSERT INTO events (time, kind, subject, detail) "
                                                "VALUES (?1, ?2, ?3, ?4)"));
  insert.Bind(1, FormatRfc3339(clock.Now())).Bind(2, kind).Bind(3, subject).Bind(4, detail.dump());
  return insert.Run();
}

}  // namespace fpgahost
