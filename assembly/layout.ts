// The shared-memory layout between the JavaScript driver (src/kernels/wasm/) and these kernels.
// This file is the single source of truth: scripts/build-wasm.mjs copies every `export const` line
// into src/kernels/wasm/build/layout.ts, and turns each `@unmanaged export class` (a job's parameter
// block: one 4-byte field per slot, in declaration order) into a table field -> [slot, type] there,
// so both sides address the block by field name. Keep it to `export const NAME: i32 = <integer>;`
// lines and such classes with `name: i32 | u32 | f32;` fields.

// Fixed addresses in linear memory (bytes). [0, CTL_BASE) is left to the compiler's static data
// (the build checks that the module has none above it); the JS heap starts at HEAP_BASE.
export const CTL_BASE: i32 = 16384;
export const JOB_BASE: i32 = 20480;
export const HEAP_BASE: i32 = 65536;

// Pool control words (i32 index from CTL_BASE).
export const CTL_GEN: i32 = 0; // job generation, bumped by the caller to publish a job
export const CTL_DONE: i32 = 1; // participating workers that finished the current job
export const CTL_WORKER_TASKS: i32 = 3; // tasks run by workers so far (diagnostics and tests)
export const CTL_PART: i32 = 16; // CTL_PART + w: generation in which worker w takes part
export const CTL_READY: i32 = 272; // CTL_READY + w: 1 once worker w has instantiated the module
export const CTL_ERROR_TEXT: i32 = 600; // CTL_ERROR_TEXT + i: char i of the failed task's error message
export const ERROR_TEXT_CHARS: i32 = 256;
export const MAX_WORKERS: i32 = 256;

// Job descriptor (i32 slot index from JOB_BASE; f32 values are stored by bit pattern).
export const J_KIND: i32 = 0;
export const J_NTASKS: i32 = 1;
export const J_NEXT: i32 = 2; // next task to grab (atomic)
export const J_SCRATCH: i32 = 3; // byte address of thread 0's scratch
export const J_SCRATCH_STRIDE: i32 = 4; // bytes of scratch per thread
export const J_FAILED: i32 = 5; // 0, or 1 + the thread whose task threw first: every thread stops taking tasks and waiting
export const J_MEM_PAGES: i32 = 6; // pages of memory the job's buffers reach (a worker whose view is smaller refreshes it)
export const J_AVAIL: i32 = 7; // tasks [0, J_AVAIL) may be taken: the caller raises it while it stages their inputs (else J_NTASKS)
export const J_PARAMS: i32 = 8; // first kind-specific slot

// Job kinds.
export const K_MM_PACK_B: i32 = 1;
export const K_MM: i32 = 2;
export const K_ATT_FWD: i32 = 3;
export const K_ATT_BWD_PREP: i32 = 4;
export const K_ATT_BWD: i32 = 5;
// elementwise and row kernels (assembly/elementwise.ts)
export const K_EW_PIECEWISE: i32 = 20;
export const K_EW_NORM_FWD: i32 = 21;
export const K_EW_NORM_BWD: i32 = 22;
// the optimizer's update (assembly/optim.ts)
export const K_OPT_ADAMW: i32 = 30;
export const ADAMW_ROW: i32 = 12; // f64 slots per task in OptJob.table

// Matrix product parameters (K_MM_PACK_B, K_MM), from slot J_PARAMS on.
// @ts-ignore: decorator
@unmanaged export class MmJob {
  a: u32; // a as given: [nA][m][k], or with transA [nA][k][m]
  bp: u32; // b packed by K_MM_PACK_B: [nB][np / 8][k][8]
  b: u32; // b as given: [nB][k][n], or with transB [nB][n][k]
  c: u32; // staged out: [batch][mp][np]
  m: i32;
  n: i32;
  k: i32;
  mp: i32; // rows padded to a multiple of 4
  np: i32; // columns padded to a multiple of 8
  aBatch: i32; // 0 when a is broadcast, else 1
  bBatch: i32; // 0 when b is broadcast, else 1
  transA: i32;
  transB: i32;
  acc: i32; // accumulate into the staged out
  mBlocks: i32; // row blocks per product
  nBlocks: i32; // column blocks per product
  bias: u32; // 0, or [np] floats added to every row of out after the sum (linear's bias; zeros past n)
  done: u32; // 0, or [batch][nBlocks] i32 counters (zeroed by the host): a K_MM task adds 1 to its column block's when it is done
}

// Attention parameters (K_ATT_FWD, K_ATT_BWD_PREP, K_ATT_BWD), from slot J_PARAMS on. One job covers
// the kv groups g = b * Hkv + kvh in [G0, G0 + NG); staged tensors are laid out by local group
// gl = g - G0. Shapes use the letters of src/kernels/backend.ts. The flexible options' tables (from
// shift on; pointers 0 = off) are indexed by absolute b and h, not by the round's groups.
// @ts-ignore: decorator
@unmanaged export class AttJob {
  G0: i32;
  NG: i32;
  H: i32;
  Hkv: i32;
  L: i32;
  S: i32;
  Lp: i32; // L rounded up to a multiple of 8
  Sp: i32; // S rounded up to a multiple of 8
  Ep: i32; // E rounded up to a multiple of 8
  Evp: i32; // Ev rounded up to a multiple of 8
  Br: i32; // query block (multiple of 8)
  Bc: i32; // key block (multiple of 8)
  firstOff: i32; // row l sees keys max(0, l + firstOff) .. min(S - 1, l + lastOff): causality and the window
  lastOff: i32; // (visibleOffsets of src/kernels/causal.ts), both clamped to +-(Lp + Sp + 8)
  scale: f32;
  maskKind: i32; // 0 none, 1 bool (u8, nonzero = attend), 2 float (f32, added)
  mask: u32;
  maskLo: i32; // element offset of the staged mask's first element
  maskSb: i32; // mask strides (elements) over b, h, l, s
  maskSh: i32;
  maskSl: i32;
  maskSs: i32;
  dropOn: i32;
  dropThr: u32; // keep iff bits >= dropThr
  dropInv: f32; // 1 / (1 - p), or 0 when p >= 1
  dropSeed: u32;
  q: u32; // [NG][G][Lp][Ep]
  k: u32; // [NG][Sp][Ep]
  v: u32; // [NG][Sp][Evp]
  o: u32; // [NG][G][Lp][Evp]: forward, the output; backward, the forward's output (staged, for D)
  rowMax: u32; // forward: [NG][G][Lp] f32 row max m of the scores (-inf for a fully masked row)
  rowSum: u32; // forward: [NG][G][Lp] f64 row sum l of exp(score - m) (0 for a fully masked row)
  lseHi: u32; // backward: [NG][G][Lp] f32: lse = lseHi + lseLo; +inf for a fully masked row
  lseLo: u32; // backward: [NG][G][Lp] f32
  dO: u32; // [NG][G][Lp][Evp]
  D: u32; // [NG][G][Lp] f64 rowsum(dO * out), computed by the prep tasks
  qt: u32; // [NG][G][Lp * Ep]: per query block [Ep][block rows], scaled
  dOt: u32; // [NG][G][Lp * Evp]: per query block [Evp][block rows]
  dq: u32; // [NG][G][Lp][Ep]
  dk: u32; // [NG][Sp][Ep]
  dv: u32; // [NG][Sp][Evp]
  cnt: u32; // i32 [NG][G][nI]: the key block whose turn it is to add into each dq block (nJ: none left)
  shift: i32; // l' - l: where query row l sits among the keys (ALiBi measures |l' - s|)
  slopes: u32; // f32 [H] ALiBi slopes: scores get -slope_h |l' - s|
  cap: f32; // softcap: scores become cap tanh(score / cap); 0 = off
  sinks: u32; // f32 [H] sink logits: each row's softmax starts at m = sink_h, l = 1
  qDoc: u32; // i32 [B][Lp] document id of each query row
  kDoc: u32; // i32 [B][S] document id of each key
  qDocTiles: u32; // i32 [B][nI][2] least and greatest document id of each query tile (real rows)
  kDocTiles: u32; // i32 [B][nJ][2] the same for each key tile
  bmTiles: u32; // u8 [bmB][bmH][nI][nJ] each tile's kind under the block mask: 0 empty, 1 partial, 2 full
  bmKinds: u32; // u8 [bmB][bmH][bmRows][bmCols] the block mask's blocks (backend.ts AttentionBlockMask)
  bmBitStart: u32; // i32, the same shape: first bit of a partial block in bmBits
  bmBits: u32; // u8: partial blocks' bits, bmSize^2 each, row-major, 8 to a byte
  bmB: i32; // 1 or B
  bmH: i32; // 1 or H
  bmRows: i32;
  bmCols: i32;
  bmSize: i32;
  jChunk: i32; // backward: key blocks per main task, done in order by one thread (0 = 1; see attBwdTask)
}

// Elementwise and row parameters (K_EW_PIECEWISE, K_EW_NORM_FWD, K_EW_NORM_BWD; assembly/elementwise.ts),
// from slot J_PARAMS on. Arrays are float32 unless marked; a pointer 0 is an absent operand.
// @ts-ignore: decorator
@unmanaged export class EwJob {
  n: i32; // piecewise: elements (staged arrays padded to a multiple of 4)
  chunk: i32; // piecewise: elements per task (a multiple of 4)
  x: u32; // piecewise: [n] the table's argument; norm: [R][D] the input
  by: u32; // piecewise: [n] the factor; norm backward: [R][D] the upstream gradient
  out: u32; // piecewise: [n]; norm forward: [R][D] y; norm backward: [R][D] dx (0: not wanted)
  table: u32; // piecewise: [intervals][8] float32 coefficients, lowest power first
  intervals: i32;
  lo: f32;
  hi: f32;
  width: f32;
  perWidth: f32; // 1 / width
  toT: f32; // 2 / width
  below: f32; // f for x < lo
  above: f32; // f for x >= hi
  negInf: f32; // f(-Infinity)
  posInf: f32; // f(+Infinity)
  R: i32; // norm: rows
  D: i32; // norm: elements per row
  rows: i32; // norm: rows per task
  rms: i32; // norm: 1 = rmsNorm (mean 0, no mean(gw) term)
  w: u32; // norm: [D] weight (0: none)
  b: u32; // norm forward: [D] bias (0: none)
  eps: u32; // norm forward: f64 eps
  mean: u32; // norm: f64 [R] row means (forward writes, backward reads)
  std: u32; // norm: f64 [R] row σ = sqrt(var + eps)
  accW: u32; // norm backward: f64 [tasks][D] partial Σ g x̂ per task (0: not wanted)
  accB: u32; // norm backward: f64 [tasks][D] partial Σ g per task (0: not wanted)
  core: u32; // piecewise: [cIntervals][4] float32 coefficients of a cubic table on [cLo, cHi) (0: none)
  cIntervals: i32;
  cLo: f32;
  cHi: f32;
  cWidth: f32;
  cPerWidth: f32; // 1 / cWidth
  cToT: f32; // 2 / cWidth
}

// AdamW's update (K_OPT_ADAMW; assembly/optim.ts), from slot J_PARAMS on: float32 arrays of every
// parameter of the step one after another (each padded to a multiple of 4), and a table of one f64
// row per task (ADAMW_ROW slots: first element, count, b1, b2, c1, c2, sign, decay, -stepSize,
// bc2Sqrt, eps). A pointer 0 is an absent operand.
// @ts-ignore: decorator
@unmanaged export class OptJob {
  table: u32; // f64 [tasks][ADAMW_ROW]
  p: u32; // parameters, updated in place
  g: u32; // gradients
  m: u32; // exp_avg, updated in place
  v: u32; // exp_avg_sq, updated in place
  vmax: u32; // max_exp_avg_sq, updated in place (0: not amsgrad)
}
