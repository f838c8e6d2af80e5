// The kernels for any CPU: 4-lane vectors (SSE2 on x86-64, NEON on arm64), no target attribute.
#define CK_ISA portable
#define CK_VW 4
#define CK_MR 5
#include "kernels.inc"
