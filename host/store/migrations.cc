// The schema, as numbered migrations. Append only: a released migration never changes,
// since databases in the field have already applied it.
#include <array>

#include "host/store/state_store.h"

namespace fpgahost {
namespace {

constexpr std::string_view kTenantsAndTokens = R"sql(
CREATE TABLE tenants (
  name        TEXT PRIMARY KEY,
  created_at  TEXT NOT NULL
);
CREATE TABLE api_tokens (
  id          TEXT PRIMARY KEY,          -- tok-<17 hex>, safe to show
  tenant      TEXT NOT NULL REFERENCES tenants(name),
  role        TEXT NOT NULL CHECK (role IN ('customer', 'operator')),
  description TEXT NOT NULL,
  sha256      TEXT NOT NULL UNIQUE,      -- of the secret; the secret itself is never stored
  created_at  TEXT NOT NULL
);
)sql";

constexpr std::string_view kEvents = R"sql(
CREATE TABLE events (
  seq         INTEGER PRIMARY KEY AUTOINCREMENT,
  time        TEXT NOT NULL,
  kind        TEXT NOT NULL,             -- e.g. token.created, card.health
  subject     TEXT NOT NULL,             -- the id of what it is about
  detail      TEXT NOT NULL              -- JSON
);
CREATE INDEX events_by_subject ON events(subject, seq);
)sql";

constexpr std::array<Migration, 2> kMigrations{{
    {1, "tenants and API tokens", kTenantsAndTokens},
    {2, "events", kEvents},
}};

}  // namespace

std::span<const Migration> SchemaMigrations() { return kMigrations; }

}  // namespace fpgahost
