"""
The PyTorch twin of bench/trainingStep.ts: GPT("small") trained one step at a time, timed the same way.

    /usr/bin/python3 bench/torch_twin.py [--threads 2] [--budget-ms 10000] [--max-reps 20]

Same architecture as src/models/gpt.ts with the `small` preset of src/models/config.ts:
    vocab V = 256, dModel C = 128, 4 pre-norm blocks, 4 heads, dFF = 512, learned positions,
    LayerNorm (eps 1e-5, with bias), exact (erf) GELU, dropout 0, biases everywhere except lm_head,
    untied lm_head; nn.MultiheadAttention with a causal mask (the same in_proj/out_proj parameters).
Same step: batch 8 x T 128 random tokens, forward, cross-entropy over [8*128, V], backward,
AdamW(lr 3e-4), zero_grad(set_to_none). Median wall time of steps after one warm-up step.
Prints one JSON line: tokens/s, ms per step (wall and process CPU), the parameter count, torch's version and the GFLOP/s of
a 1024^3 float32 matmul (a BLAS sanity check: the reference BLAS gives ~2, OpenBLAS tens).
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

V, MAX_T, C, LAYERS, HEADS, DFF, EPS = 256, 512, 128, 4, 4, 512, 1e-5
BATCH, T = 8, 128


class Block(nn.Module):
    """x = x + attn(attn_norm(x)); x = x + mlp(mlp_norm(x))  (src/models/blocks.ts)"""

    def __init__(self):
        super().__init__()
        self.attn_norm = nn.LayerNorm(C, eps=EPS)
        self.self_attn = nn.MultiheadAttention(C, HEADS, batch_first=True)
        self.mlp_norm = nn.LayerNorm(C, eps=EPS)
        self.fc1 = nn.Linear(C, DFF)
        self.fc2 = nn.Linear(DFF, C)

    def forward(self, x, causal):
        h = self.attn_norm(x)
        a, _ = self.self_attn(h, h, h, attn_mask=causal, need_weights=False)
        x = x + a
        return x + self.fc2(F.gelu(self.fc1(self.mlp_norm(x))))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok_emb = nn.Embedding(V, C)
        self.pos_emb = nn.Embedding(MAX_T, C)
        self.blocks = nn.ModuleList([Block() for _ in range(LAYERS)])
        self.norm = nn.LayerNorm(C, eps=EPS)
        self.lm_head = nn.Linear(C, V, bias=False)

    def forward(self, idx):
        n, t = idx.shape
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(t))  # [N, T, C]
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)  # True = masked (PyTorch's polarity)
        for b in self.blocks:
            x = b(x, causal)
        return self.lm_head(self.norm(x))  # [N, T, V]


def matmul_gflops(n=1024):
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def median(xs):
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget-ms", type=float, default=10000)
    ap.add_argument("--max-reps", type=int, default=20)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = GPT()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    idx = torch.randint(0, V, (BATCH, T + 1))
    inp, tgt = idx[:, :-1].contiguous(), idx[:, 1:].reshape(-1)

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(inp)
        loss = F.cross_entropy(logits.reshape(BATCH * T, V), tgt)
        loss.backward()
        opt.step()

    step()  # warm-up, as timeCalls does
    times, cpu = [], []
    start = time.perf_counter()
    while len(times) < a.max_reps and (len(times) < 3 or (time.perf_counter() - start) * 1000 < a.budget_ms):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    ms = median(times)
    print(json.dumps({
        "tokensPerSecond": BATCH * T / (ms / 1000), "msPerStep": ms, "cpuMsPerStep": median(cpu), "reps": len(times),
        "params": sum(p.numel() for p in model.parameters()), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "matmulGflops": matmul_gflops(),
    }))


if __name__ == "__main__":
    main()
