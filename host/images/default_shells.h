// The shell catalogue fpgahostd uses when the configuration names none: images/shells.json,
// compiled in so the daemon needs no file beside it.
#pragma once

#include <string_view>

namespace fpgahost {

std::string_view DefaultShellCatalogueJson();

}  // namespace fpgahost
