#include "host/instances/instance_types.h"

#include <fmt/format.h>

#include <fstream>
#include <set>

namespace fpgahost {
namespace {

constexpr char kReason[] = "INVALID_INSTANCE_TYPES";

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

StatusOr<int64_t> IntField(const Json& entry, size_t index, const char* key, int64_t min,
                           int64_t max) {
  if (!entry.contains(key) || !entry[key].is_number_integer() || entry[key].get<int64_t>() < min ||
      entry[key].get<int64_t>() > max) {
    return InvalidArgumentError(
        fmt::format("instance_types[{}].{} must be an integer from {} to {}", index, key, min, max),
        kReason);
  }
  return entry[key].get<int64_t>();
}

}  // namespace

std::vector<InstanceType> DefaultInstanceTypes() {
  return {
      // Small shapes for development hosts and the emulated fleet.
      {"fpga.small", 2, 4096, 1},
      {"fpga.medium", 4, 8192, 2},
      // EC2 F1's published shapes.
      {"f1.2xlarge", 8, 122 * 1024, 1},
      {"f1.4xlarge", 16, 244 * 1024, 2},
      {"f1.16xlarge", 64, 976 * 1024, 8},
  };
}

StatusOr<std::vector<InstanceType>> ParseInstanceTypes(const Json& doc) {
  if (!doc.is_object() || !doc.contains("instance_types") || !doc["instance_types"].is_array()) {
    return InvalidArgumentError("the file must be an object with an 'instance_types' array",
                                kReason);
  }
  std::vector<InstanceType> types;
  std::set<std::string, std::less<>> names;
  const Json& list = doc["instance_types"];
  for (size_t i = 0; i < list.size(); ++i) {
    const Json& e = list[i];
    if (!e.is_object() || !e.contains("name") || !e["name"].is_string() ||
        !ValidName(e["name"].get<std::string>())) {
      return InvalidArgumentError(
          fmt::format("instance_types[{}].name must be 1-64 characters of a-z, 0-9, '.', '-'", i),
          kReason);
    }
    InstanceType t;
    t.name = e["name"].get<std::string>();
    if (!names.insert(t.name).second) {
      return InvalidArgumentError(
          fmt::format("instance_types[{}].name: '{}' is defined twice", i, t.name), kReason);
    }
    ASSIGN_OR_RETURN(int64_t vcpus, IntField(e, i, "vcpus", 1, 1024));
    ASSIGN_OR_RETURN(t.memory_mib, IntField(e, i, "memory_mib", 64, int64_t{16} << 20));
    ASSIGN_OR_RETURN(int64_t fpgas, IntField(e, i, "fpgas", 0, 16));
    t.vcpus = static_cast<int>(vcpus);
    t.fpgas = static_cast<int>(fpgas);
    types.push_back(std::move(t));
  }
  if (types.empty()) return InvalidArgumentError("no instance types are defined", kReason);
  return types;
}

StatusOr<std::vector<InstanceType>> LoadInstanceTypes(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) {
    return NotFoundError(fmt::format("cannot read instance types file {}", file.string()), kReason);
  }
  Json doc = Json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return InvalidArgumentError(fmt::format("{} is not valid JSON", file.string()), kReason);
  }
  StatusOr<std::vector<InstanceType>> types = ParseInstanceTypes(doc);
  if (!types.ok()) return types.status().WithContext(file.string());
  return types;
}

Json InstanceTypeToJson(const InstanceType& type) {
  return {{"name", type.name},
          {"vcpus", type.vcpus},
          {"memory_mib", type.memory_mib},
          {"fpgas", type.fpgas}};
}

}  // namespace fpgahost
