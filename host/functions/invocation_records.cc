#include "host/functions/invocation_records.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <utility>

#include "common/clock.h"

namespace fpgahost::functions {
namespace {

double Round3(double ms) { return std::round(ms * 1000.0) / 1000.0; }

}  // namespace

Json InvocationRecord::ToJson() const {
  Json j = {{"request_id", request_id},
            {"tenant", tenant},
            {"function", function},
            {"version", version},
            {"invocation_type", invocation_type},
            {"slot", slot},
            {"start", !reused_from.empty() ? "reused"
                      : cold               ? "cold"
                      : prewarmed          ? "prewarmed"
                                           : "warm"},
            {"state", state},
            {"attempt", attempt},
            {"memory_mib", memory_mib},
            {"queued_ms", Round3(queued_ms)},
            {"init_ms", Round3(init_ms)},
            {"duration_ms", Round3(duration_ms)},
            {"started_at", FormatRfc3339(started_at)},
            {"finished_at", FormatRfc3339(finished_at)}};
  if (!error_type.empty()) j["error_type"] = error_type;
  if (!reused_from.empty()) j["reused_from"] = reused_from;
  if (!fpga_card.empty()) {
    j["fpga_card"] = fpga_card;
    j["image_load_ms"] = Round3(image_load_ms);
  }
  if (!routing_key.empty()) {
    j["routing_key"] = routing_key;
    j["affinity"] = affinity;
  }
  return j;
}

InvocationRecords::InvocationRecords(StateStore& store, Options options)
    : store_(store), options_(options), writer_([this] { Run(); }) {}

InvocationRecords::~InvocationRecords() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  writer_.join();
  Flush().IgnoreError();
}

void InvocationRecords::Add(InvocationRecord record, std::string log) {
  bool wake = false;
  {
    MutexLock lock(mu_);
    pending_.push_back(Pending{std::move(record), std::move(log)});
    wake = pending_.size() >= 512;
  }
  if (wake) wake_.notify_one();
}

void InvocationRecords::Run() {
  while (true) {
    {
      bool stop = false;
      std::unique_lock<Mutex> lock(mu_);
      wake_.wait_for(lock, options_.flush_interval, [this, &stop]() NO_THREAD_SAFETY_ANALYSIS {
        stop = stopping_;
        return stopping_ || pending_.size() >= 512;
      });
      if (stop) return;
    }
    Status s = Flush();
    if (!s.ok()) spdlog::warn("invocation records: {}", s.ToString());
  }
}

Status InvocationRecords::Flush() {
  MutexLock flush(flush_mu_);
  std::vector<Pending> batch;
  {
    MutexLock lock(mu_);
    batch.swap(pending_);
  }
  if (batch.empty()) return Status::Ok();
  return Write(std::move(batch));
}

Status InvocationRecords::Write(std::vector<Pending> batch) {
  size_t count = batch.size();
  // Prune now and then rather than on every batch.
  bool prune_now = (written_ + count) / 1024 != written_ / 1024;
  Status s = store_.InTransaction([&](SqliteDb& db) -> Status {
    ASSIGN_OR_RETURN(Statement insert,
                     db.Prepare("INSERT INTO invocations (request_id, tenant, "
                                "function, version, record, log, started_at) VALUES "
                                "(?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
    for (const Pending& p : batch) {
      const InvocationRecord& r = p.record;
      insert.Reset();
      insert.Bind(1, r.request_id)
          .Bind(2, r.tenant)
          .Bind(3, r.function)
          .Bind(4, r.version)
          .Bind(5, r.ToJson().dump())
          .Bind(6, p.log)
          .Bind(7, FormatRfc3339(r.started_at));
      RETURN_IF_ERROR(insert.Run());
    }
    if (prune_now) {
      ASSIGN_OR_RETURN(Statement prune, db.Prepare("DELETE FROM invocations WHERE seq <= "
                                                   "(SELECT MAX(seq) FROM invocations) - ?1"));
      prune.Bind(1, static_cast<int64_t>(options_.max_records));
      RETURN_IF_ERROR(prune.Run());
    }
    return Status::Ok();
  });
  if (s.ok()) written_ += count;
  return s;
}

StatusOr<std::vector<Json>> InvocationRecords::Query(const InvocationQuery& query) {
  RETURN_IF_ERROR(Flush());
  std::string sql = fmt::format(
      "SELECT record{} FROM invocations WHERE tenant = ?1 AND (?2 = '' OR function = ?2) AND "
      "(?3 = '' OR request_id = ?3) ORDER BY seq DESC LIMIT ?4",
      query.with_logs ? ", log" : "");
  ASSIGN_OR_RETURN(Statement q, store_.db().Prepare(sql));
  q.Bind(1, query.tenant)
      .Bind(2, query.function)
      .Bind(3, query.request_id)
      .Bind(4, static_cast<int64_t>(query.limit));
  std::vector<Json> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    Json j = Json::parse(q.ColumnText(0), nullptr, false);
    if (j.is_discarded()) continue;
    if (query.with_logs) j["log"] = q.ColumnText(1);
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace fpgahost::functions
