// The image registry: FPGA images (like AWS AFIs) as customers see them. Each image has an
// id (img-...), a name, an owner tenant, a state (pending -> available | failed(code,
// message); available -> deleted), what validation found (UUIDs, VBNV, shell, mode,
// kernels, signature) and who may load it (named tenants, or public).
//
// Bytes live in the images::BlobStore, once per content; a blob is removed as soon as no pending or
// available image refers to it. Records live in the state store; every transition is written
// there before it is acted on, and Recover() finishes what a crash interrupted.
//
// Visibility: a tenant sees its own images, those shared with it and public ones; anything
// else is NotFound (never PermissionDenied, so ids leak nothing). Operators see all.
//
// Thread-safe. Validation runs on the ThreadPool, never on the caller's thread.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/json.h"
#include "common/thread_annotations.h"
#include "common/thread_pool.h"
#include "host/auth/tokens.h"
#include "host/store/state_store.h"
#include "images/blob_store.h"
#include "images/xclbin_validator.h"

namespace fpgahost {

struct ImageRecord {
  std::string id;
  std::string name;
  std::string description;
  std::string owner;
  std::string state;  // pending | available | failed | deleted
  std::string error_code;
  std::string error_message;
  std::string sha256;
  uint64_t size = 0;
  Json details = Json::object();  // what validation found: uuids, vbnv, shell, mode, kernels, ...
  bool is_public = false;
  std::vector<std::string> shared_with;
  std::string created_at;
  std::string updated_at;

  // The API's view. Permissions are included for the owner (and operators) only.
  Json ToJson(bool with_permissions) const;
};

struct ImagePermissions {
  bool is_public = false;
  std::vector<std::string> tenants;
};

class ImageRegistry {
 public:
  ImageRegistry(StateStore& store, images::BlobStore& blobs, const Clock& clock, ThreadPool& pool,
                images::XclbinValidationOptions options);

  const images::XclbinValidationOptions& validation_options() const { return options_; }

  // At start: every image left pending is validated again (its blob is complete: blobs are
  // committed before records are written). images::BlobStore::Init has removed partial uploads.
  Status Recover();

  // Names are 1-128 printable characters; descriptions up to 1024.
  static Status CheckName(std::string_view name);
  static Status CheckDescription(std::string_view description);

  // Commits an uploaded blob and records a pending image for it, then validates it on the
  // pool. Returns the pending record.
  StatusOr<ImageRecord> Register(const Principal& owner, std::string name, std::string description,
                                 std::unique_ptr<images::BlobWriter> blob);

  StatusOr<ImageRecord> Get(const Principal& who, std::string_view id) const;
  StatusOr<std::vector<ImageRecord>> List(const Principal& who) const;
  // Owner only. Marks the image deleted and drops its blob if nothing else uses it.
  StatusOr<ImageRecord> Delete(const Principal& who, std::string_view id);

  // Owner only (operators too); changes need the image to be available.
  StatusOr<ImagePermissions> GetPermissions(const Principal& who, std::string_view id) const;
  StatusOr<ImagePermissions> SetPermissions(const Principal& who, std::string_view id,
                                            const ImagePermissions& permissions);

  // Runs validation of a pending image now, on this thread. For Recover and tests.
  Status ValidatePending(const std::string& id);

  // Blocks until every validation queued so far has finished. For tests and shutdown.
  void WaitIdle() EXCLUDES(mu_);

 private:
  StatusOr<ImageRecord> Load(std::string_view id) const;
  StatusOr<ImageRecord> LoadVisible(const Principal& who, std::string_view id) const;
  StatusOr<ImageRecord> LoadOwned(const Principal& who, std::string_view id) const;
  Status Finish(const std::string& id, const StatusOr<images::ValidatedXclbin>& result);
  // Removes the blob when no pending or available image refers to it. Caller holds blob_mu_.
  Status CollectBlob(const std::string& sha256) REQUIRES(blob_mu_);
  void QueueValidation(const std::string& id) EXCLUDES(mu_);

  StateStore& store_;
  images::BlobStore& blobs_;
  const Clock& clock_;
  ThreadPool& pool_;
  const images::XclbinValidationOptions options_;

  // Serializes "commit blob + insert record" against "drop record + remove blob", so a
  // blob that a new upload just committed is never collected under it.
  Mutex blob_mu_;
  Mutex mu_;
  std::condition_variable_any idle_;
  int running_ GUARDED_BY(mu_) = 0;
};

}  // namespace fpgahost
