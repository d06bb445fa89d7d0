// Memory bandwidth: copies `words` 16-byte words from one global buffer to another, one
// work-item per word, so that the copy runs at the device's memory bandwidth.
__kernel void bandwidth(__global const uint4* restrict src, __global uint4* restrict dst,
                        const ulong words) {
  size_t i = get_global_id(0);
  if (i < words) dst[i] = src[i];
}
