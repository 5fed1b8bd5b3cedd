"""
The PyTorch twin of bench/pretrained.ts: GPT-2 read from a Hugging Face folder (config.json +
model.safetensors, F32/F16/BF16), prefill and KV-cache greedy decoding, timed the same way.

    /usr/bin/python3 bench/gpt2_twin.py DIR [--threads 2] [--runs 2] [--prompt 512] [--decode 128]

No `transformers` here: the model is written after transformers' modeling_gpt2 (GPT2LMHeadModel with
eager attention: Conv1D c_attn / c_proj / c_fc with weights [in, out], gelu_new, pre-LayerNorm, causal
mask, lm_head tied to wte, past key/values kept by torch.cat as transformers' legacy cache does),
computing in float32 (BF16 weights are widened once at load, as attend does). safetensors is read by
hand (an 8-byte little-endian header length, a JSON header, the raw bytes).

Prompt: ids (7919·i + 13) mod vocab, the same as bench/pretrained.ts. Prefill: the whole prompt's
logits, median of runs + 1 after a warm-up; then the same for the prefill as transformers' generate()
runs it (logits_to_keep=1: ln_f on every position, then lm_head on the last one only). Decode: after a prefill (not timed), decode-1 one-token
steps with the cache (the first new token comes from the prefill), tokens/s, median of runs. Writes
the last prompt position's float32 logits to DIR/torch_logits.f32 (and those of the last-position
prefill to DIR/torch_logits_last.f32) and prints one JSON line.
"""
import argparse
import json
import math
import os
import struct
import time

import torch
import torch.nn.functional as F

from torch_twin import matmul_gflops, median

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        dt = DTYPES[e["dtype"]]
        count = (b - a) // torch.tensor([], dtype=dt).element_size()
        t = torch.frombuffer(data, dtype=dt, count=count, offset=8 + n + a).reshape(e["shape"])
        out[name.removeprefix("transformer.")] = t.float()  # widened to float32 (a copy)
    return out


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class GPT2:
    def __init__(self, cfg, w):
        self.w, self.C, self.H = w, cfg["n_embd"], cfg["n_head"]
        self.L, self.eps = cfg["n_layer"], cfg.get("layer_norm_epsilon", 1e-5)

    def ln(self, x, p):
        return F.layer_norm(x, (self.C,), self.w[p + ".weight"], self.w[p + ".bias"], self.eps)

    def conv1d(self, x, p):
        return torch.addmm(self.w[p + ".bias"], x.reshape(-1, x.shape[-1]), self.w[p + ".weight"]).reshape(*x.shape[:-1], -1)

    def attn(self, x, i, past):
        n, t, c = x.shape
        hd = c // self.H
        q, k, v = self.conv1d(x, f"h.{i}.attn.c_attn").split(c, dim=2)
        heads = lambda y: y.view(n, t, self.H, hd).transpose(1, 2)  # [N, T, C] -> [N, H, T, hd]
        q, k, v = heads(q), heads(k), heads(v)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)  # [N, H, S, hd]
        s = k.shape[2]
        w = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd)  # [N, H, T, S]
        if t > 1:  # query j (at position s - t + j) sees keys up to its own position
            causal = torch.ones(t, s, dtype=torch.bool).tril(s - t)
            w = torch.where(causal, w, torch.tensor(torch.finfo(w.dtype).min))
        y = torch.matmul(torch.softmax(w, dim=-1), v)  # [N, H, T, hd]
        y = y.transpose(1, 2).reshape(n, t, c)  # [N, H, T, hd] -> [N, T, C]
        return self.conv1d(y, f"h.{i}.attn.c_proj"), (k, v)

    def forward(self, ids, cache=None, logits_to_keep=0):
        n, t = ids.shape
        start = 0 if cache is None else cache[0][0].shape[2]
        x = self.w["wte.weight"][ids] + self.w["wpe.weight"][start : start + t]
        new = []
        for i in range(self.L):
            a, kv = self.attn(self.ln(x, f"h.{i}.ln_1"), i, None if cache is None else cache[i])
            new.append(kv)
            x = x + a
            x = x + self.conv1d(gelu_new(self.conv1d(self.ln(x, f"h.{i}.ln_2"), f"h.{i}.mlp.c_fc")), f"h.{i}.mlp.c_proj")
        x = self.ln(x, "ln_f")
        if logits_to_keep > 0:  # as GPT2LMHeadModel: hidden_states[:, -logits_to_keep:, :] before lm_head
            x = x[:, -logits_to_keep:, :]  # [N, T, C] -> [N, k, C]
        return torch.matmul(x, self.w["wte.weight"].t()), new  # tied lm_head: [N, T, V] (or [N, k, V])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--decode", type=int, default=128)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with open(os.path.join(a.dir, "config.json")) as f:
        cfg = json.load(f)
    model = GPT2(cfg, read_safetensors(os.path.join(a.dir, "model.safetensors")))
    V = cfg["vocab_size"]
    prompt = torch.tensor([[(7919 * i + 13) % V for i in range(a.prompt)]])
    with torch.no_grad():
        def prefills(keep):
            """A warm-up, then runs + 1 timed forwards of the prompt (keep: logits_to_keep); wall and CPU ms, and the last position's logits."""
            wall, cpu, last = [], [], None
            for r in range(a.runs + 2):
                t0, c0 = time.perf_counter(), time.process_time()
                logits, _ = model.forward(prompt, logits_to_keep=keep)  # [1, T, V], or [1, keep, V]
                ms = (time.perf_counter() - t0) * 1000
                if r > 0:
                    wall.append(ms)
                    cpu.append((time.process_time() - c0) * 1000)
                if last is None:
                    last = logits[0, -1].contiguous()
            return wall, cpu, last

        def write_logits(name, x):
            path = os.path.join(a.dir, name)
            with open(path, "wb") as f:
                f.write(x.numpy().tobytes())
            return path

        prefill, prefill_cpu, last = prefills(0)  # every position's logits
        logits_file = write_logits("torch_logits.f32", last)
        prefill_last, prefill_last_cpu, last_only = prefills(1)  # the prefill as generate() runs it: logits_to_keep=1
        last_logits_file = write_logits("torch_logits_last.f32", last_only)
        decode, decode_cpu, tokens = [], [], []
        for _ in range(a.runs):
            logits, cache = model.forward(prompt)  # not timed
            nxt = int(logits[0, -1].argmax())
            out = [nxt]
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(a.decode - 1):
                logits, cache = model.forward(torch.tensor([[nxt]]), cache)
                nxt = int(logits[0, -1].argmax())
                out.append(nxt)
            decode.append((a.decode - 1) / (time.perf_counter() - t0))
            decode_cpu.append((time.process_time() - c0) * 1000 / (a.decode - 1))
            tokens = out
    with open("/proc/self/maps") as f:  # the BLAS actually loaded (Debian's torch uses the libblas.so.3 alternative)
        libs = sorted({os.path.basename(l.split()[-1]) for l in f if "blas" in l.lower() and "/" in l})
    print(json.dumps({
        "prefillMs": median(prefill), "prefillReps": len(prefill), "prefillCpuMs": median(prefill_cpu),
        "prefillLastMs": median(prefill_last), "prefillLastReps": len(prefill_last), "prefillLastCpuMs": median(prefill_last_cpu),
        "lastLogitsFile": last_logits_file,
        "decodeTokensPerSecond": median(decode), "decodeRuns": decode, "decodeCpuMsPerToken": median(decode_cpu),
        "tokens": tokens, "logitsFile": logits_file, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "matmulGflops": matmul_gflops(), "blas": ", ".join(libs) or "no BLAS library mapped",
    }))


if __name__ == "__main__":
    main()
