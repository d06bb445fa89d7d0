// Instance types: the shapes of VM an operator offers on this host (vCPUs, memory, FPGA
// slots), like EC2's f1.2xlarge. Built-in defaults cover F1's sizes and two small ones that
// fit a laptop's emulated fleet; an operator replaces them with a JSON file (daemon key
// `instance-types`):
//
//   {"instance_types": [{"name": "f1.2xlarge", "vcpus": 8, "memory_mib": 124928, "fpgas": 1}]}
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"

namespace fpgahost {

struct InstanceType {
  std::string name;
  int vcpus = 0;
  int64_t memory_mib = 0;
  int fpgas = 0;
};

std::vector<InstanceType> DefaultInstanceTypes();

// Reads a types file. InvalidArgument (INVALID_INSTANCE_TYPES) naming the entry and field for
// a bad file: names are 1-64 of [a-z0-9.-], vcpus 1-1024, memory 64 MiB-16 TiB, fpgas 0-16,
// no name twice.
StatusOr<std::vector<InstanceType>> LoadInstanceTypes(const std::filesystem::path& file);
StatusOr<std::vector<InstanceType>> ParseInstanceTypes(const Json& doc);

Json InstanceTypeToJson(const InstanceType& type);

}  // namespace fpgahost
