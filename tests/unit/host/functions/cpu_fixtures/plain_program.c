// An ordinary program linked against libc: its code (with crt's startup code) is baseline.
#include <stdio.h>

int main(int argc, char** argv) {
  printf("%s: %d arguments\n", argv[0], argc - 1);
  return 0;
}
