"""Helpers for scripts/gpu-check.sh: make the checkpoint, run the Python
baselines, summarize. Each measuring subcommand writes one JSON object to the
file named by --out:
  {"name", "bytes", "seconds", "gbps", "cpu_s", "cpu_s_per_gb", "verified", "note"}
"""
import argparse, json, os, resource, sys, time


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def emit(out, name, nbytes, seconds, cpu_s, verified=None, note="", **extra):
    d = {"name": name, "bytes": nbytes, "seconds": seconds, "gbps": nbytes / seconds / 1e9 if seconds > 0 else 0,
         "cpu_s": cpu_s, "cpu_s_per_gb": cpu_s / (nbytes / 1e9) if nbytes else 0, "verified": verified, "note": note}
    d.update(extra)
    with open(out, "w") as f:
        json.dump(d, f)
    print(json.dumps(d))


def make_ckpt(a):
    import torch
    from safetensors.torch import save_file
    torch.manual_seed(0)
    total = int(a.gib * (1 << 30))
    big = 4096 * 4096  # 32 MiB of bf16 per tensor
    tensors, n, i = {}, 0, 0
    while n + big * 2 <= total:
        tensors[f"layers.{i}.weight"] = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16).cpu()
        n += big * 2
        i += 1
    # Odd sizes: offsets that are not 4 KiB multiples and a file that is not either.
    for j, k in enumerate((4097, 333, 1, 77777)):
        tensors[f"odd.{j}"] = torch.randn(k, device="cuda", dtype=torch.bfloat16).cpu()
        n += 2 * k
    tensors["odd.f32"] = torch.randn(3, 5, 7, device="cuda").cpu()
    t0 = time.time()
    save_file(tensors, a.path, metadata={"format": "pt"})
    torch.save(tensors, a.path + ".pt")
    for p in (a.path, a.path + ".pt"):
        fd = os.open(p, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    print(json.dumps({"tensors": len(tensors), "bytes": n, "file_bytes": os.path.getsize(a.path), "write_s": time.time() - t0}))


def drop_cache(a):
    """Evict a file's clean pages from the page cache (no root needed)."""
    for p in a.paths:
        fd = os.open(p, os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)


def warm_cache(a):
    for p in a.paths:
        with open(p, "rb", buffering=0) as f:
            while f.read(64 << 20):
                pass


def h2d(a):
    import torch
    n = 1 << 30
    src = torch.empty(n, dtype=torch.uint8, pin_memory=True)
    src.fill_(1)
    dst = torch.empty(n, dtype=torch.uint8, device="cuda")
    dst.copy_(src, non_blocking=True)
    torch.cuda.synchronize()
    reps = 8
    c0, t0 = cpu(), time.perf_counter()
    for _ in range(reps):
        dst.copy_(src, non_blocking=True)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    emit(a.out, "pinned H2D copy (torch, PCIe limit)", n * reps, dt, cpu() - c0, note="1 GiB pinned buffer x8")


def st_load(a):
    import torch
    from safetensors.torch import load_file
    torch.cuda.init()
    torch.empty(1, device="cuda")
    nbytes = 0
    c0, t0 = cpu(), time.perf_counter()
    sd = load_file(a.path, device="cuda:0")
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    c1 = cpu() - c0
    nbytes = sum(t.numel() * t.element_size() for t in sd.values())
    emit(a.out, "safetensors.torch.load_file(device=cuda)", nbytes, dt, c1)


def torch_load(a):
    import torch
    torch.empty(1, device="cuda")
    c0, t0 = cpu(), time.perf_counter()
    sd = torch.load(a.path, map_location="cuda:0", weights_only=True)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    c1 = cpu() - c0
    nbytes = sum(t.numel() * t.element_size() for t in sd.values())
    emit(a.out, "torch.load(map_location=cuda) of a .pt copy", nbytes, dt, c1)


def _bits(t):
    import torch
    return t.view(torch.uint8) if t.element_size() == 1 else t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def capi(a):
    import torch
    from safetensors import safe_open
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "capi"))
    import example
    torch.empty(1, device="cuda")
    lib = example._lib(a.lib)
    c0, t0 = cpu(), time.perf_counter()
    ck = example.load(a.path, 0, "auto", lib=lib)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    c1 = cpu() - c0
    # Verify every byte against the file, read on the CPU through safetensors.
    ok, bad = True, []
    with safe_open(a.path, framework="pt", device="cpu") as f:
        keys = list(f.keys())
        if sorted(keys) != sorted(ck.keys()):
            ok, bad = False, ["tensor names differ"]
        for k in keys:
            ref = f.get_tensor(k)
            got = ck[k]
            if tuple(ref.shape) != tuple(got.shape) or ref.dtype != got.dtype or not torch.equal(_bits(ref.cuda()), _bits(got)):
                ok = False
                bad.append(k)
    emit(a.out, "ctypes example (capi, auto path)", ck.info["bytes"], dt, c1, verified=ok,
         note=f"path {ck.info['path']}" + (f"; mismatched: {bad[:5]}" if bad else ""), path=ck.info["path"])
    ck.close()


def kvikio_read(a):
    """cuFile through NVIDIA's own Python binding, where one is installed."""
    import cupy
    try:
        import kvikio
    except ImportError:
        print("kvikio not installed: the cuFile baseline is flashpath --gpu-path cufile (NVIDIA's libcufile underneath)")
        sys.exit(3)
    size = os.path.getsize(a.path)
    buf = cupy.empty(size, dtype=cupy.uint8)
    c0, t0 = cpu(), time.perf_counter()
    with kvikio.CuFile(a.path, "r") as f:
        n = f.read(buf)
    cupy.cuda.runtime.deviceSynchronize()
    dt = time.perf_counter() - t0
    emit(a.out, "kvikio CuFile.read (NVIDIA cuFile)", n, dt, cpu() - c0)


def summarize(a):
    rows = []
    for name in sorted(os.listdir(a.dir)):
        if name.endswith(".json"):
            try:
                with open(os.path.join(a.dir, name)) as f:
                    d = json.load(f)
            except Exception as e:  # a step that died mid-write
                d = {"name": name, "error": str(e)}
            d["_key"] = name[:-5]
            rows.append(d)
    by = {r["_key"]: r for r in rows}
    print()
    print(f"{'measurement':58} {'GB/s':>7} {'secs':>7} {'CPU s/GB':>9} {'verified':>9}  note")
    print("-" * 120)
    for r in rows:
        if "error" in r:
            print(f"{r['name'][:58]:58} {'-':>7} {'-':>7} {'-':>9} {'-':>9}  {r['error']}")
            continue
        v = {True: "yes", False: "NO", None: "-"}[r.get("verified")]
        print(f"{r['name'][:58]:58} {r['gbps']:7.2f} {r['seconds']:7.3f} {r['cpu_s_per_gb']:9.3f} {v:>9}  {r.get('note', '')}")
    goals = []

    def rate(k):
        return by[k]["gbps"] if k in by and "gbps" in by[k] else None

    h2d, bc, bd, cf = rate("10-h2d"), rate("20-bounce-cached"), rate("21-bounce-direct"), rate("22-cufile")
    fp_total = by.get("23-auto", {}).get("total_gbps")
    st = rate("30-safetensors")
    if h2d and bc:
        goals.append(("bounce (page cache) >= 90% of pinned H2D", bc / h2d, 0.9, f"{bc:.2f} / {h2d:.2f} GB/s"))
    best_bounce = max([x for x in (bc, bd) if x] or [0])
    if cf and best_bounce:
        goals.append(("bounce >= 1.5x cuFile (compat mode here)", best_bounce / cf, 1.5, f"{best_bounce:.2f} / {cf:.2f} GB/s"))
    if fp_total and st:
        goals.append(("flashpath load >= 4x safetensors.load_file", fp_total / st, 4.0, f"{fp_total:.2f} / {st:.2f} GB/s, setup included"))
    print()
    for name, ratio, want, detail in goals:
        print(f"GOAL {name:48} {ratio:6.2f}x  {'MET' if ratio >= want else 'MISSED'}  ({detail})")
    failed_verify = [r["name"] for r in rows if r.get("verified") is False]
    if failed_verify:
        print("VERIFY FAILED:", ", ".join(failed_verify))
    summary = {"results": rows, "goals": [{"goal": g[0], "ratio": g[1], "want": g[2], "met": g[1] >= g[2], "detail": g[3]} for g in goals],
               "verify_failed": failed_verify}
    with open(a.summary, "w") as f:
        json.dump(summary, f, indent=2)


def from_flashpath(a):
    """Turn `flashpath load -o json` output into a result row."""
    with open(a.src) as f:
        d = json.load(f)
    total = d["setup_s"] + d["load_s"]
    note = f"path {d['path']}, direct={d['direct_io']}, cached={d['page_cache_fraction']:.0%}: {d['reason']}"
    emit(a.out, a.name, d["bytes"], d["load_s"], d["cpu_s"], verified=d.get("verified"), note=note,
         total_gbps=d["bytes"] / total / 1e9 if total > 0 else 0, setup_s=d["setup_s"], path=d["path"])


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("make-ckpt"); s.add_argument("path"); s.add_argument("gib", type=float)
    s = sub.add_parser("drop-cache"); s.add_argument("paths", nargs="+")
    s = sub.add_parser("warm-cache"); s.add_argument("paths", nargs="+")
    for n in ("h2d",):
        s = sub.add_parser(n); s.add_argument("--out", required=True)
    for n in ("st-load", "torch-load", "kvikio"):
        s = sub.add_parser(n); s.add_argument("path"); s.add_argument("--out", required=True)
    s = sub.add_parser("capi"); s.add_argument("path"); s.add_argument("--lib", required=True); s.add_argument("--out", required=True)
    s = sub.add_parser("from-flashpath"); s.add_argument("src"); s.add_argument("--name", required=True); s.add_argument("--out", required=True)
    s = sub.add_parser("summarize"); s.add_argument("dir"); s.add_argument("--summary", required=True)
    a = p.parse_args()
    {"make-ckpt": make_ckpt, "drop-cache": drop_cache, "warm-cache": warm_cache, "h2d": h2d, "st-load": st_load,
     "torch-load": torch_load, "capi": capi, "kvikio": kvikio_read, "from-flashpath": from_flashpath,
     "summarize": summarize}[a.cmd](a)


if __name__ == "__main__":
    main()
