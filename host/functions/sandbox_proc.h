// Readers of the /proc and cgroup files the sandbox checks its isolation with. Pure parsers
// over text plus small file readers; thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fpgahost::functions {

// One line of /proc/<pid>/mountinfo.
struct MountInfo {
  std::string root;                        // the mounted subtree of its file system
  std::string mount_point;                 // relative to the process's root
  std::vector<std::string> mount_options;  // per mount: "ro"/"rw", "nosuid", ...
  std::string fstype;
  std::vector<std::string> super_options;  // per file system: "size=1024k", "memory", ...

  bool read_only() const;
};
std::vector<MountInfo> ParseMountinfo(std::string_view text);

// "/proc/<pid>/cgroup": hierarchy id, its controllers, the cgroup's path.
struct CgroupMembership {
  std::string hierarchy_id;
  std::vector<std::string> controllers;
  std::string path;
};
std::vector<CgroupMembership> ParseProcCgroup(std::string_view text);

// "/proc/<pid>/status" as key -> value ("CapEff" -> "0000000000000000").
std::map<std::string, std::string> ParseProcStatus(std::string_view text);

// Interface names in "/proc/<pid>/net/dev".
std::vector<std::string> ParseNetDev(std::string_view text);

// The id inside a user namespace that `outside` maps to, from a uid_map/gid_map as read from
// outside the namespace.
std::optional<int64_t> MapIdInside(std::string_view id_map, int64_t outside);

// "size=1024k" (tmpfs) in bytes.
std::optional<int64_t> ParseTmpfsSize(const std::vector<std::string>& super_options);

// Small helpers.
std::vector<std::string> SplitNonEmpty(std::string_view text, char sep);
std::string_view TrimWhitespace(std::string_view text);
std::optional<int64_t> ParseInt64(std::string_view text, int base = 10);
std::optional<std::string> ReadSmallFile(const std::filesystem::path& path);

}  // namespace fpgahost::functions
