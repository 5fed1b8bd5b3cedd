// The shared-memory layout between the JavaScript driver (src/kernels/wasm/) and these kernels.
// This file is the single source of truth: scripts/build-wasm.mjs copies every `export const` line
// into src/kernels/wasm/build/layout.ts. Keep it to `export const NAME: i32 = <integer>;` lines.

// Fixed addresses in linear memory (bytes). [0, CTL_BASE) is left to the compiler's static data
// (the build checks that the module has none above it); the JS heap starts at HEAP_BASE.
export const CTL_BASE: i32 = 16384;
export const JOB_BASE: i32 = 20480;
export const HEAP_BASE: i32 = 65536;

// Pool control words (i32 index from CTL_BASE).
export const CTL_GEN: i32 = 0; // job generation, bumped by the caller to publish a job
export const CTL_DONE: i32 = 1; // participating workers that finished the current job
export const CTL_ERROR: i32 = 2; // set to 1 by a worker whose tasks threw (the caller then throws)
export const CTL_WORKER_TASKS: i32 = 3; // tasks run by workers so far (diagnostics and tests)
export const CTL_PART: i32 = 16; // CTL_PART + w: generation in which worker w takes part
export const CTL_READY: i32 = 272; // CTL_READY + w: 1 once worker w has instantiated the module
export const MAX_WORKERS: i32 = 256;

// Job descriptor (i32 slot index from JOB_BASE; f32 values are stored by bit pattern).
export const J_KIND: i32 = 0;
export const J_NTASKS: i32 = 1;
export const J_NEXT: i32 = 2; // next task to grab (atomic)
export const J_SCRATCH: i32 = 3; // byte address of thread 0's scratch
export const J_SCRATCH_STRIDE: i32 = 4; // bytes of scratch per thread
export const J_PARAMS: i32 = 8; // first kind-specific slot

// Job kinds.
export const K_MM_PACK_B: i32 = 1;
export const K_MM: i32 = 2;
export const K_ATT_FWD: i32 = 3;
export const K_ATT_BWD_PREP: i32 = 4;
export const K_ATT_BWD: i32 = 5;

// Matmul parameters (slot index from J_PARAMS).
export const MM_A: i32 = 0; // a as given: [nA][m][k], or with transA [nA][k][m]
export const MM_BP: i32 = 1; // b packed by K_MM_PACK_B: [nB][np / 8][k][8]
export const MM_B: i32 = 2; // b as given: [nB][k][n], or with transB [nB][n][k]
export const MM_C: i32 = 3; // staged out: [batch][mp][np]
export const MM_BATCH: i32 = 4;
export const MM_MP: i32 = 5; // rows padded to a multiple of 4
export const MM_NP: i32 = 6; // columns padded to a multiple of 8
export const MM_K: i32 = 7;
export const MM_ABATCH: i32 = 8; // 0 when a is broadcast, else 1
export const MM_BBATCH: i32 = 9; // 0 when b is broadcast, else 1
export const MM_TRANSA: i32 = 10;
export const MM_ACC: i32 = 11; // accumulate into the staged out
export const MM_N: i32 = 12;
export const MM_MBLOCKS: i32 = 13; // row blocks per product
export const MM_NBLOCKS: i32 = 14; // column blocks per product
export const MM_M: i32 = 15;
export const MM_TRANSB: i32 = 16;
export const MM_NB_PACKS: i32 = 17; // number of distinct b (1 when broadcast)

// Attention parameters (slot index from J_PARAMS). One job covers the kv groups
// g = b * Hkv + kvh in [G0, G0 + NG); staged tensors are laid out by local group gl = g - G0.
export const A_G0: i32 = 0;
export const A_NG: i32 = 1;
export const A_H: i32 = 2;
export const A_HKV: i32 = 3;
export const A_L: i32 = 4;
export const A_S: i32 = 5;
export const A_LP: i32 = 6; // L rounded up to a multiple of 8
export const A_SP: i32 = 7; // S rounded up to a multiple of 8
export const A_EP: i32 = 8; // E rounded up to a multiple of 8
export const A_EVP: i32 = 9; // Ev rounded up to a multiple of 8
export const A_BR: i32 = 10; // query block (multiple of 8)
export const A_BC: i32 = 11; // key block (multiple of 8)
export const A_CAUSAL_OFF: i32 = 12; // key s visible from query l iff s <= l + off (and s < S)
export const A_SCALE: i32 = 13; // f32
export const A_MASK_KIND: i32 = 14; // 0 none, 1 bool (u8, nonzero = attend), 2 float (f32, added)
export const A_MASK_PTR: i32 = 15;
export const A_MASK_LO: i32 = 16; // element offset of the staged mask's first element
export const A_MASK_SB: i32 = 17;
export const A_MASK_SH: i32 = 18;
export const A_MASK_SL: i32 = 19;
export const A_MASK_SS: i32 = 20;
export const A_DROP_ON: i32 = 21;
export const A_DROP_THR: i32 = 22; // u32: keep iff bits >= thr
export const A_DROP_INV: i32 = 23; // f32: 1 / (1 - p), or 0 when p >= 1
export const A_DROP_SEED: i32 = 24;
export const A_Q: i32 = 25; // [NG][G][Lp][Ep]
export const A_K: i32 = 26; // [NG][Sp][Ep]
export const A_V: i32 = 27; // [NG][Sp][Evp]
export const A_O: i32 = 28; // [NG][G][Lp][Evp] (forward output)
export const A_LSE: i32 = 29; // backward: [NG][G][Lp] f32(lse), +inf for a fully masked row
export const A_DO: i32 = 30; // [NG][G][Lp][Evp]
export const A_D: i32 = 31; // [NG][G][Lp] f64 rowsum(dO * O), computed while staging
export const A_QT: i32 = 32; // [NG][G][Lp * Ep]: per query block [Ep][block rows]
export const A_DOT: i32 = 33; // [NG][G][Lp * Evp]: per query block [Evp][block rows]
export const A_DQ: i32 = 34; // [NG][G][Lp][Ep]
export const A_DK: i32 = 35; // [NG][Sp][Ep]
export const A_DV: i32 = 36; // [NG][Sp][Evp]
export const A_CNT: i32 = 37; // i32 [NG][G][nI]: key blocks that have added into each dq block
export const A_LSE_LO: i32 = 38; // backward: [NG][G][Lp] f32(lse - f32(lse)), 0 for a fully masked row
export const A_ROW_MAX: i32 = 39; // forward: [NG][G][Lp] row max m of the scores (-inf for a fully masked row)
export const A_ROW_SUM: i32 = 40; // forward: [NG][G][Lp] row sum l of exp(score - m); the host forms lse = m + log(l)
