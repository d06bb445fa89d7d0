// A program that uses AMX (AMX-TILE and AMX-INT8) when given an argument: as a function's
// bootstrap it is refused on hosts without AMX before it could run.
#include <immintrin.h>
#include <stdio.h>

__attribute__((target("amx-tile,amx-int8"))) static void TileDot(const void* config, void* c,
                                                                 const void* a, const void* b) {
  _tile_loadconfig(config);
  _tile_zero(0);
  _tile_loadd(1, a, 64);
  _tile_loadd(2, b, 64);
  _tile_dpbssd(0, 1, 2);
  _tile_stored(0, c, 64);
  _tile_release();
}

int main(int argc, char** argv) {
  static unsigned char config[64], a[1024], b[1024], c[1024];
  (void)argv;
  if (argc > 1) TileDot(config, c, a, b);
  printf("%d\n", c[0]);
  return 0;
}
