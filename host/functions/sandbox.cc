#include "host/functions/sandbox.h"

namespace fpgahost::functions {
namespace {

template <typename T>
Json OrNull(const std::optional<T>& value) {
  return value ? Json(*value) : Json(nullptr);
}

}  // namespace

Json Isolation::ToJson() const {
  Json cgroup = {
      {"version", cgroup_version},
      {"dirs", cgroup_dirs},
      {"memory_max_bytes", OrNull(memory_max_bytes)},
      {"swap_max_bytes", OrNull(swap_max_bytes)},
      {"cpu_quota_us", OrNull(cpu_quota_us)},
      {"cpu_period_us", OrNull(cpu_period_us)},
      {"pids_max", OrNull(pids_max)},
  };
  return Json{
      {"namespaces",
       {{"mount", namespaces.mount},
        {"pid", namespaces.pid},
        {"ipc", namespaces.ipc},
        {"uts", namespaces.uts},
        {"net", namespaces.net},
        {"user", namespaces.user},
        {"cgroup", namespaces.cgroup}}},
      {"read_only_system", read_only_system},
      {"writable_mounts", writable_mounts},
      {"private_tmp", private_tmp},
      {"tmp_size_bytes", OrNull(tmp_size_bytes)},
      {"capabilities_dropped", capabilities_dropped},
      {"no_new_privs", no_new_privs},
      {"uid", OrNull(uid)},
      {"gid", OrNull(gid)},
      {"host_uid", OrNull(host_uid)},
      {"host_gid", OrNull(host_gid)},
      {"network_interfaces", network_interfaces},
      {"runtime_api_in_sandbox_netns", runtime_api_in_sandbox_netns},
      {"cgroup", std::move(cgroup)},
      {"notes", notes},
      {"extensions", extensions},
  };
}

}  // namespace fpgahost::functions
