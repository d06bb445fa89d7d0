// LDTILECFG, TILEZERO, TILELOADD, TILESTORED, TILERELEASE (AMX-TILE) and TDPBSSD (AMX-INT8).
#include <immintrin.h>

__attribute__((target("amx-tile,amx-int8"))) void TileDot(const void* config, void* c,
                                                          const void* a, const void* b) {
  _tile_loadconfig(config);
  _tile_zero(0);
  _tile_loadd(1, a, 64);
  _tile_loadd(2, b, 64);
  _tile_dpbssd(0, 1, 2);
  _tile_stored(0, c, 64);
  _tile_release();
}
