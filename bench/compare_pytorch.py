#!/usr/bin/env python3
"""Time the reference (audio-diffusion-pytorch 0.0.61 on PyTorch, CPU) and adiff (Rust, candle + the
adiff_core::ops kernels) on the same shapes, with the same thread count, and print one table.

Run by hand, not by CI (see docs/performance.md):

    python3 -m venv ~/ptenv && ~/ptenv/bin/pip install torch torchaudio audio-diffusion-pytorch==0.0.61
    ~/ptenv/bin/python bench/compare_pytorch.py --threads 2            # runs the Rust benches too
    ~/ptenv/bin/python bench/compare_pytorch.py --threads 2 --skip-rust  # reuse target/criterion

All times are the fastest run (criterion's fastest sample per iteration, from
target/criterion/<group>/adiff/<id>/new/sample.json; PyTorch's fastest of --repeat runs): on a
shared machine the minimum is the least disturbed estimate.
"stock" rows are candle's own ops (the kernel benches' `candle` entries, or the whole UNet with
ADIFF_KERNELS=stock when --stock-unet is given). FLOPs: 2 per multiply-accumulate, counted from
the config (adiff_core::flops, checked against docs/reference.md §2.6) and stored by criterion as "elements".
"""

import argparse
import functools
import glob
import json
import math
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (bench id, ci, t, co, k, stride, padding): the kernel bench shapes (core/benches/kernels.rs).
CONVS = [
    ("k3_c128_t16384", 128, 16384, 128, 3, 1, 1),
    ("k3_c16_t65536", 16, 65536, 16, 3, 1, 1),
    ("k3_c256_t4096", 256, 4096, 256, 3, 1, 1),
    ("k3_c1024to512_t256", 1024, 256, 512, 3, 1, 1),
    ("k3_c512_t32", 512, 32, 512, 3, 1, 1),
    ("k9s4_c128to256_t16384", 128, 16384, 256, 9, 4, 4),
    ("k1_c512_t1024", 512, 1024, 512, 1, 1, 0),
]
CONVTS = [
    ("k8s4_c256to128_t4096", 256, 4096, 128, 8, 4, 2),
    ("k8s4_c512to256_t1024", 512, 1024, 256, 8, 4, 2),
    ("k4s2_c512_t64", 512, 64, 512, 4, 2, 1),
]
NORMS = [("c128_t16384_g8", 128, 16384, 8), ("c8_t262144_g1", 8, 262144, 1), ("c512_t1024_g8", 512, 1024, 8)]
# (bench id, batch x heads, tokens, head features): softmax(q kᵀ / √d) v as the reference computes it.
ATTENTIONS = [("bh16_n1024_d32", 16, 1024, 32), ("bh16_n256_d32", 16, 256, 32), ("bh8_n256_d64", 8, 256, 64)]

DEFAULT_UNET = dict(
    in_channels=1, channels=128, patch_blocks=1, patch_factor=16, multipliers=[1, 2, 4, 4, 4, 4, 4],
    factors=[4, 4, 4, 2, 2, 2], num_blocks=[2, 2, 2, 2, 2, 2], attentions=[0, 0, 0, 1, 1, 1, 1],
    attention_heads=8, attention_features=64, attention_multiplier=2, resnet_groups=8,
    kernel_multiplier_downsample=2, use_nearest_upsample=False, use_skip_scale=True,
    use_context_time=True, use_magnitude_channels=False,
)
SMALL_UNET = dict(DEFAULT_UNET, channels=32, patch_factor=4, multipliers=[1, 2, 4, 4, 4],
                  factors=[4, 4, 2, 2], num_blocks=[2, 2, 2, 2], attentions=[0, 0, 1, 1, 1],
                  attention_heads=4, attention_features=32, context_channels=[1])
# (bench id, config, batch, length)
UNETS = [
    ("default_1x2^16", DEFAULT_UNET, 1, 1 << 16),
    ("default_1x2^18", DEFAULT_UNET, 1, 1 << 18),
    ("seed_readme_3x2^16", DEFAULT_UNET, 3, 1 << 16),
    ("small_1x2^16", SMALL_UNET, 1, 1 << 16),
]


def timeit(fn, repeat, warmup=1):
    """Fastest of `repeat` runs: on a shared machine the minimum is the least disturbed estimate."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def pytorch_times(repeat, threads, only):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    out = {}

    def want(key):
        return not only or any(o in key for o in only)

    with torch.inference_mode():
        for name, ci, t, co, k, s, p in CONVS:
            key = f"conv1d/{name}"
            if want(key):
                x, w, b = torch.randn(1, ci, t), torch.randn(co, ci, k) * 0.1, torch.randn(co)
                out[key] = timeit(lambda: F.conv1d(x, w, b, stride=s, padding=p), repeat)
        for name, ci, t, co, k, s, p in CONVTS:
            key = f"conv_transpose1d/{name}"
            if want(key):
                x, w, b = torch.randn(1, ci, t), torch.randn(ci, co, k) * 0.1, torch.randn(co)
                out[key] = timeit(lambda: F.conv_transpose1d(x, w, b, stride=s, padding=p), repeat)
        for name, c, t, g in NORMS:
            key = f"group_norm_silu/{name}"
            if want(key):
                x, w, b = torch.randn(1, c, t), torch.randn(c), torch.randn(c)
                sc, sh = torch.randn(1, c, 1) * 0.5, torch.randn(1, c, 1) * 0.5
                out[key] = timeit(lambda: F.silu(F.group_norm(x, g, w, b, 1e-5) * (sc + 1) + sh), repeat)
        for name, bh, n, d in ATTENTIONS:
            key = f"attention/{name}"
            if want(key):
                q, k, v = (torch.rand(bh, n, d) * 2 - 1 for _ in range(3))
                out[key] = timeit(lambda: torch.softmax(q @ k.transpose(-1, -2) * d ** -0.5, dim=-1) @ v, repeat)

    from audio_diffusion_pytorch import UNet1d
    from audio_diffusion_pytorch.diffusion import AEulerSampler, VDiffusion, VDistribution

    def ctx_list(cfg, batch, length):
        return [torch.randn(batch, 1, length)] if cfg.get("context_channels") else None

    with torch.inference_mode():
        for name, cfg, batch, length in UNETS:
            key = f"unet_forward/{name}"
            if not want(key):
                continue
            net = UNet1d(**cfg).eval()
            x, tt = torch.randn(batch, 1, length), torch.full((batch,), 0.5)
            ctx = ctx_list(cfg, batch, length)
            kw = {"channels_list": ctx} if ctx else {}
            out[key] = timeit(lambda: net(x, tt, **kw), max(1, repeat // 2))
        for name, cfg, length in [("default_1x2^18", DEFAULT_UNET, 1 << 18), ("small_1x2^16", SMALL_UNET, 1 << 16)]:
            key = f"sampler_step/{name}"
            if not want(key):
                continue
            diffusion = VDiffusion(net=UNet1d(**cfg).eval(), sigma_distribution=VDistribution())
            ctx = ctx_list(cfg, 1, length)
            kw = {"channels_list": ctx} if ctx else {}
            noise = torch.randn(1, 1, length)
            fn = functools.partial(diffusion.denoise_fn, **kw)
            # 0.0.61 has no VSampler: one AEuler step (num_steps=2 runs one step, 1 NFE), like the
            # Rust bench's one VSampler step (1 NFE).
            sampler = AEulerSampler()
            out[key] = timeit(lambda: sampler(noise, fn=fn, sigmas=torch.tensor([1.0, 0.5, 0.0]), num_steps=2),
                              max(1, repeat // 2))

    key = "training_step/small_4x2^16"
    if want(key):
        net = UNet1d(**SMALL_UNET)
        diffusion = VDiffusion(net=net, sigma_distribution=VDistribution())
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        x, ctx = torch.randn(4, 1, 1 << 16) * 0.3, [torch.randn(4, 1, 1 << 16)]

        def step():
            opt.zero_grad()
            diffusion(x, channels_list=ctx).backward()
            opt.step()

        out[key] = timeit(step, max(1, repeat // 2))

    from audio_diffusion_pytorch.utils import downsample, upsample

    with torch.inference_mode():
        x = torch.randn(1, 1, 1 << 18)
        for f in [2, 4]:
            for kind, fn in [("upsample", upsample), ("downsample", downsample)]:
                key = f"sinc_resample/{kind}/x{f}_2^18"
                if want(key):
                    out[key] = timeit(lambda: fn(x, f), repeat)
    return out


def run_rust(threads, only, stock_unet):
    # MIMALLOC_PURGE_DELAY=-1: the benches' allocator keeps freed pages, as the `adiff` binary does.
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), CANDLE_NUM_THREADS=str(threads),
               MIMALLOC_PURGE_DELAY="-1")
    benches = ["kernels", "unet"]
    for bench in benches:
        cmd = ["cargo", "bench", "-p", "adiff-core", "--bench", bench, "--no-run"]
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    if stock_unet:
        # First, so that the kernel run below is the one left in criterion's "new" estimates
        # (`--save-baseline` writes both "new" and the named baseline).
        senv = dict(env, ADIFF_KERNELS="stock")
        cmd = ["cargo", "bench", "-p", "adiff-core", "--bench", "unet", "--", "unet_forward",
               "--save-baseline", "stock"]
        print("+ ADIFF_KERNELS=stock", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, cwd=ROOT, env=senv, check=True, stdout=subprocess.DEVNULL)
    for bench in benches:
        cmd = ["cargo", "bench", "-p", "adiff-core", "--bench", bench]
        if only:
            cmd += ["--", "|".join(o.replace("^", "\\^") for o in only)]
        print("+", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def rust_results(baseline="new"):
    """{'group/function/id': (seconds, flops or None)} from criterion's estimates."""
    res = {}
    for est in glob.glob(os.path.join(ROOT, f"target/criterion/*/*/*/{baseline}/estimates.json")):
        d = os.path.dirname(est)
        with open(os.path.join(d, "benchmark.json")) as f:
            meta = json.load(f)
        # Fastest sample (time per iteration), like the PyTorch side's minimum.
        with open(os.path.join(d, "sample.json")) as f:
            sample = json.load(f)
        median = min(t / n for t, n in zip(sample["times"], sample["iters"])) * 1e-9
        thr = meta.get("throughput") or {}
        flops = thr.get("Elements")
        res[f"{meta['group_id']}/{meta['function_id']}/{meta['value_str']}"] = (median, flops)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--peak-gflops", type=float, default=333.0,
                    help="f32 peak of the machine: 2 cores x 2 AVX-512 FMA units x 16 lanes x 2 FLOP x clock; 333 for the 2.6 GHz Xeon of docs/performance.md, ~230 for 2 Zen 4 cores")
    ap.add_argument("--skip-rust", action="store_true", help="reuse target/criterion results")
    ap.add_argument("--skip-pytorch", action="store_true")
    ap.add_argument("--stock-unet", action="store_true", help="also time the UNet with ADIFF_KERNELS=stock")
    ap.add_argument("--only", action="append", default=[], help="substring filter (repeatable)")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    if not args.skip_rust:
        run_rust(args.threads, args.only, args.stock_unet)
    ours = rust_results()
    stock_unet = rust_results("stock")
    pt = {} if args.skip_pytorch else pytorch_times(args.repeat, args.threads, args.only)

    load = os.getloadavg()
    print(f"\nthreads={args.threads}  load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}  "
          f"peak {args.peak_gflops:.0f} GFLOP/s\n")
    hdr = (f"| {'benchmark':44} | {'adiff ms':>9} | {'stock ms':>9} | {'PyTorch ms':>10} | {'adiff/PT':>8} "
           f"| {'GFLOP/s':>7} | {'% peak':>6} | {'bf16 ms':>9} |")
    print(hdr)
    print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|")
    # The resampler benches are named sinc_resample/{upsample,downsample}/<id>: file them as ours.
    for k in [k for k in ours if k.startswith("sinc_resample/")]:
        ours[k.replace("sinc_resample/", "sinc_resample/adiff/", 1)] = ours[k]
    keys = sorted({k.replace("/adiff/", "/") for k in ours if "/adiff/" in k} | set(pt))
    if args.only:
        keys = [k for k in keys if any(o in k for o in args.only)]
    for key in keys:
        group, _, ident = key.partition("/")
        o = ours.get(f"{group}/adiff/{ident}")
        st = ours.get(f"{group}/candle/{ident}") or stock_unet.get(f"{group}/adiff/{ident}")
        p = pt.get(key)
        fmt = lambda v: f"{v * 1e3:9.2f}" if v else f"{'n/a':>9}"
        ratio = f"{o[0] / p:8.2f}" if o and p else f"{'n/a':>8}"
        gf = o[1] / o[0] / 1e9 if o and o[1] and group not in ("group_norm_silu", "sinc_resample") else None
        gfs = f"{gf:7.1f}" if gf else f"{'':>7}"
        pk = f"{100 * gf / args.peak_gflops:5.1f}%" if gf else f"{'':>6}"
        bf = ours.get(f"{group}/adiff_bf16/{ident}")
        print(f"| {key:44} | {fmt(o[0] if o else None)} | {fmt(st[0] if st else None)} | "
              f"{fmt(p):>10} | {ratio} | {gfs} | {pk} | {fmt(bf[0] if bf else None)} |")


if __name__ == "__main__":
    main()
