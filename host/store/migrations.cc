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

constexpr std::string_view kImages = R"sql(
CREATE TABLE images (
  id            TEXT PRIMARY KEY,        -- img-<17 hex>
  name          TEXT NOT NULL,
  description   TEXT NOT NULL,
  owner         TEXT NOT NULL REFERENCES tenants(name),
  state         TEXT NOT NULL CHECK (state IN ('pending', 'available', 'failed', 'deleted')),
  error_code    TEXT NOT NULL DEFAULT '',
  error_message TEXT NOT NULL DEFAULT '',
  sha256        TEXT NOT NULL,           -- names the blob in the image store
  size          INTEGER NOT NULL,
  details       TEXT NOT NULL DEFAULT '{}',  -- JSON: what validation found
  public        INTEGER NOT NULL DEFAULT 0,
  created_at    TEXT NOT NULL,
  updated_at    TEXT NOT NULL
);
CREATE INDEX images_by_owner ON images(owner);
CREATE INDEX images_by_sha256 ON images(sha256);
CREATE TABLE image_permissions (
  image_id  TEXT NOT NULL REFERENCES images(id),
  tenant    TEXT NOT NULL,
  PRIMARY KEY (image_id, tenant)
);
CREATE INDEX image_permissions_by_tenant ON image_permissions(tenant);
)sql";

// One row per card ever seen on this host (a card that disappears is kept, present = 0).
constexpr std::string_view kCards = R"sql(
CREATE TABLE cards (
  id                  TEXT PRIMARY KEY,  -- card-<mgmt bdf>
  mgmt_bdf            TEXT NOT NULL,
  user_bdf            TEXT NOT NULL,
  present             INTEGER NOT NULL,
  admin_state         TEXT NOT NULL CHECK (admin_state IN ('active', 'draining', 'drained')),
  assignment          TEXT NOT NULL,     -- free | instance:<id> | functions
  operation           TEXT NOT NULL,     -- idle | loading | clearing | resetting | validating
  image_state         TEXT NOT NULL,     -- cleared | loading | loaded | load_failed | clearing
  image_id            TEXT NOT NULL DEFAULT '',
  xclbin_uuid         TEXT NOT NULL DEFAULT '',
  image_error_code    TEXT NOT NULL DEFAULT '',
  image_error_message TEXT NOT NULL DEFAULT '',
  needs_reset         INTEGER NOT NULL DEFAULT 0,
  health              TEXT NOT NULL,     -- healthy | degraded | unhealthy
  health_reasons      TEXT NOT NULL DEFAULT '[]',  -- JSON
  validation          TEXT NOT NULL DEFAULT '{}',  -- JSON: the last validate run
  first_seen          TEXT NOT NULL,
  last_seen           TEXT NOT NULL,
  updated_at          TEXT NOT NULL
);
)sql";

// VFIO binding journal (vfio/binding_journal.h): one row per PCI function being moved to or
// held by vfio-pci.
constexpr std::string_view kVfioBindings = R"sql(
CREATE TABLE vfio_bindings (
  bdf             TEXT PRIMARY KEY,
  operation       TEXT NOT NULL CHECK (operation IN ('bind', 'release')),
  original_driver TEXT NOT NULL,         -- what the device returns to; '' when it was unbound
  iommu_group     TEXT NOT NULL,
  complete        INTEGER NOT NULL,
  updated_at      TEXT NOT NULL
);
)sql";

// Instances (host/instances/instance_manager.h): one row per VM, kept after termination.
// `slots` is a JSON array [{index, card_id, mgmt_bdf, user_bdf, vbnv, bound, group}] in slot
// order; `operation` is what a transitional state is doing (create, start, stop, terminate),
// so start-up can finish or roll it back.
constexpr std::string_view kInstances = R"sql(
CREATE TABLE instances (
  id            TEXT PRIMARY KEY,
  name          TEXT NOT NULL,
  tenant        TEXT NOT NULL,
  type          TEXT NOT NULL,
  state         TEXT NOT NULL CHECK (state IN ('pending', 'running', 'stopping', 'stopped',
                                               'terminating', 'terminated', 'failed')),
  operation     TEXT NOT NULL,
  vcpus         INTEGER NOT NULL,
  memory_mib    INTEGER NOT NULL,
  domain_name   TEXT NOT NULL,
  slots         TEXT NOT NULL,
  error_code    TEXT NOT NULL,
  error_message TEXT NOT NULL,
  created_at    TEXT NOT NULL,
  updated_at    TEXT NOT NULL
);
CREATE INDEX instances_by_tenant ON instances (tenant, created_at);
)sql";

// Functions (host/functions/function_registry.h): one row per tenant's function; `config` is
// the rest of its configuration as JSON; the code is stored once per digest outside the
// database.
constexpr std::string_view kFunctions = R"sql(
CREATE TABLE functions (
  tenant      TEXT NOT NULL,
  name        TEXT NOT NULL,
  config      TEXT NOT NULL,
  code_sha256 TEXT NOT NULL,
  updated_at  TEXT NOT NULL,
  PRIMARY KEY (tenant, name)
);
CREATE INDEX functions_by_code ON functions (code_sha256);
)sql";

// Invocation records (host/functions/invocation_records.h): one row per invocation of a
// function, written in batches after the fact; `log` is the runtime's output during it
// (truncated at the head past a limit). Old rows are pruned by count.
constexpr std::string_view kInvocations = R"sql(
CREATE TABLE invocations (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  request_id   TEXT NOT NULL,
  tenant       TEXT NOT NULL,
  function     TEXT NOT NULL,
  version      TEXT NOT NULL,
  record       TEXT NOT NULL,
  log          BLOB NOT NULL,
  started_at   TEXT NOT NULL
);
CREATE INDEX invocations_by_function ON invocations (tenant, function, seq);
CREATE INDEX invocations_by_request ON invocations (request_id);
)sql";

// Access keys (host/auth/credentials.h) for SigV4-signed requests. The secret is kept as it
// is because verifying a signature needs it (an HMAC key), as AWS keeps it; only the
// daemon's user can read the database (the data dir is 0700).
constexpr std::string_view kAccessKeys = R"sql(
CREATE TABLE access_keys (
  id          TEXT PRIMARY KEY,          -- AKIA + 16 base32 characters, safe to show
  tenant      TEXT NOT NULL REFERENCES tenants(name),
  secret      TEXT NOT NULL,
  description TEXT NOT NULL,
  created_at  TEXT NOT NULL
);
CREATE INDEX access_keys_by_tenant ON access_keys (tenant);
)sql";

constexpr std::array<Migration, 9> kMigrations{{
    {1, "tenants and API tokens", kTenantsAndTokens},
    {2, "events", kEvents},
    {3, "images", kImages},
    {4, "cards", kCards},
    {5, "vfio binding journal", kVfioBindings},
    {6, "instances", kInstances},
    {7, "functions", kFunctions},
    {8, "invocation records", kInvocations},
    {9, "access keys", kAccessKeys},
}};

}  // namespace

std::span<const Migration> SchemaMigrations() { return kMigrations; }

}  // namespace fpgahost
