#include "vfio/hypervisor.h"

namespace fpgahost::vfio {

std::string_view DomainStateName(DomainState state) {
  switch (state) {
    case DomainState::kRunning:
      return "running";
    case DomainState::kPaused:
      return "paused";
    case DomainState::kShuttingDown:
      return "shutting_down";
    case DomainState::kShutoff:
      return "shutoff";
    case DomainState::kCrashed:
      return "crashed";
    case DomainState::kOther:
      return "other";
  }
  return "other";
}

}  // namespace fpgahost::vfio
