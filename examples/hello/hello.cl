// Verification kernel: one work-item writes "Hello World\n" (with its NUL) into a global
// buffer, which the host reads back and compares. Like the verify kernel XRT's tools run, it
// proves that an image loads, a compute unit starts and its writes reach device memory.
__constant char kGreeting[] = "Hello World\n";

__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void hello(__global char* restrict out) {
  if (get_global_id(0) != 0) return;
  for (int i = 0; i < (int)sizeof(kGreeting); ++i) out[i] = kGreeting[i];
}
