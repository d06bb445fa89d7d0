// Vector addition: out[i] = a[i] + b[i] for i < n, one work-item per element.
__kernel void vadd(__global const uint* restrict a, __global const uint* restrict b,
                   __global uint* restrict out, const uint n) {
  size_t i = get_global_id(0);
  if (i < n) out[i] = a[i] + b[i];
}
