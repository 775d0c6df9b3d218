"""Helpers for scripts/gpu-check.sh: make the checkpoint, run the Python
baselines, summarize. Each measuring subcommand writes one JSON object to the
file named by --out:
  {"name", "bytes", "seconds", "gbps", "cpu_s", "cpu_s_per_gb", "verified", "note"}
"""
import argparse, json, os, resource, sys, time


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def emit(out, name, nbytes, seconds, cpu_s, verified=None, note="", gbps_override=None, **extra):
    gbps = gbps_override if gbps_override is not None else (nbytes / seconds / 1e9 if seconds > 0 else 0)
    d = {"name": name, "bytes": nbytes, "seconds": seconds, "gbps": gbps,
         "cpu_s": cpu_s, "cpu_s_per_gb": cpu_s / (nbytes / 1e9) if nbytes else 0, "verified": verified, "note": note}
    d.update(extra)
    with open(out, "w") as f:
        json.dump(d, f)
    print(json.dumps(d))


def make_ckpt(a):
    """A safetensors checkpoint of bf16 tensors (odd sizes and an f32 one
    included) and its torch.save copy. Without torch (a dry run off the
    GPU machine), random bytes of the same layout and no .pt copy."""
    torch, save_file = _torch(0)
    total = int(a.gib * (1 << 30))
    big = 4096 * 4096  # 32 MiB of bf16 per tensor
    shapes, n, i = {}, 0, 0
    while n + big * 2 <= total:
        shapes[f"layers.{i}.weight"] = (4096, 4096)
        n += big * 2
        i += 1
    # Odd sizes: offsets that are not 4 KiB multiples and a file that is not either.
    for j, k in enumerate((4097, 333, 1, 77777)):
        shapes[f"odd.{j}"] = (k,)
        n += 2 * k
    shapes["odd.f32"] = (3, 5, 7)
    t0 = time.time()
    paths = [a.path]
    tensors = save_random(a.path, shapes, {"odd.f32": "F32"}, torch, save_file)
    if tensors is not None:
        torch.save(tensors, a.path + ".pt")
        paths.append(a.path + ".pt")
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    print(json.dumps({"tensors": len(shapes), "bytes": n, "file_bytes": os.path.getsize(a.path), "write_s": time.time() - t0}))


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
    """safetensors.torch.load_file in a process where CUDA is initialised:
    one warm-up load, then the timed one (as a job restoring several shards)."""
    import torch
    from safetensors.torch import load_file
    torch.cuda.init()
    torch.empty(1, device="cuda")
    c0, t0 = cpu(), time.perf_counter()
    sd = load_file(a.path, device="cuda:0")
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    del sd
    c0, t0 = cpu(), time.perf_counter()
    sd = load_file(a.path, device="cuda:0")
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    c1 = cpu() - c0
    nbytes = sum(t.numel() * t.element_size() for t in sd.values())
    emit(a.out, "safetensors.torch.load_file(device=cuda), warm process", nbytes, dt, c1, e2e=True,
         note=f"2nd load in the process; 1st took {first:.3f} s", first_s=first)


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
    """Load through capi/example.py twice in one torch process: the first load
    pays cuInit in Go's library, the cuFile/page-cache decision and pinning
    the staging buffers; the second is what a job restoring several shards
    sees per shard. Both rows are end to end (tensors usable on return)."""
    import torch
    from safetensors import safe_open
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "capi"))
    import example
    torch.empty(1, device="cuda")
    lib = example._lib(a.lib)
    runs = []
    for i in range(2):
        c0, t0 = cpu(), time.perf_counter()
        ck = example.load(a.path, 0, "auto", lib=lib)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        runs.append((ck, dt, cpu() - c0))
        if i == 0:
            ck.close()
    ck, dt, c1 = runs[-1]
    cold_ck, cold_dt, cold_cpu = runs[0]
    # Verify every byte of the warm load against the file, read on the CPU through safetensors.
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
    i0, i1 = cold_ck.info, ck.info

    def parts(i):
        return (f"open_device {i.get('open_device_s', 0):.3f} + setup {i['setup_s']:.3f} "
                f"(alloc {i.get('setup_alloc_s', 0):.3f}, open {i.get('setup_open_s', 0):.3f}) + transfer {i['load_s']:.3f} s")
    emit(a.out.replace(".json", "-cold.json"), "flashpath via ctypes (capi), cold: 1st load in process", i0["bytes"], cold_dt, cold_cpu,
         e2e=True, note=f"path {i0['path']}; {parts(i0)}", path=i0["path"])
    emit(a.out, "flashpath via ctypes (capi), warm: 2nd load in process", i1["bytes"], dt, c1, verified=ok, e2e=True,
         note=f"path {i1['path']}; {parts(i1)}" + (f"; mismatched: {bad[:5]}" if bad else ""), path=i1["path"],
         transfer_gbps=i1["gbps"])
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
    print("GB/s xfer: the transfer alone (flashpath rows: first load in a fresh process; 'warm xfer' in the note: a later load).")
    print("GB/s e2e: from the call until the tensors are usable, setup included (flashpath CLI rows: first load, cuInit apart).")
    print()
    print(f"{'measurement':58} {'GB/s xfer':>9} {'GB/s e2e':>9} {'secs':>7} {'CPU s/GB':>9} {'verified':>9}  note")
    print("-" * 132)
    for r in rows:
        if "error" in r:
            print(f"{r['name'][:58]:58} {'-':>9} {'-':>9} {'-':>7} {'-':>9} {'-':>9}  {r['error']}")
            continue
        v = {True: "yes", False: "NO", None: "-"}[r.get("verified")]
        if r.get("e2e"):
            xfer, e2e = r.get("transfer_gbps"), r["gbps"]
        else:
            xfer, e2e = r["gbps"], r.get("total_gbps")
        f = lambda x: f"{x:9.2f}" if x else f"{'-':>9}"
        print(f"{r['name'][:58]:58} {f(xfer)} {f(e2e)} {r['seconds']:7.3f} {r['cpu_s_per_gb']:9.3f} {v:>9}  {r.get('note', '')}")
    goals, info = [], []

    def get(k, field="gbps"):
        return by[k].get(field) if k in by and "error" not in by[k] else None

    h2d, cf, bd = get("10-h2d"), get("22-cufile"), get("21-bounce-direct")
    bc_cold = get("20-bounce-cached")
    bc_warm = get("20-bounce-cached", "warm_gbps") or bc_cold
    st = get("30-safetensors")
    capi_warm, capi_cold = get("40-capi"), get("40-capi-cold")
    auto_cold = get("23-auto", "total_gbps")
    mm_cold = get("20b-bounce-mmap")
    mm_warm = get("20b-bounce-mmap", "warm_gbps") or mm_cold
    # The goal is the bounce path's: its best reader from the page cache.
    best_rd = max([(x, n, c) for x, n, c in ((bc_warm, "pread reader", bc_cold), (mm_warm, "mmap reader", mm_cold)) if x] or [(None, "", None)])
    if h2d and best_rd[0]:
        goals.append(("bounce (page cache) >= 90% of pinned H2D", best_rd[0] / h2d, 0.9,
                      f"{best_rd[0]:.2f} / {h2d:.2f} GB/s: {best_rd[1]}, transfer only, warm (2nd load in the process); cold {best_rd[2] or 0:.2f}"))
    if bc_warm and mm_warm:
        info.append(f"mmap reader {mm_warm:.2f} GB/s vs pread reader {bc_warm:.2f} GB/s (warm, page cache): "
                    + ("mmap is faster: make it auto's reader for cached files" if mm_warm > bc_warm else "pread stays auto's reader"))
    sw = get("25-sweep")
    if h2d and sw:
        info.append(f"best bounce shape (sweep, warm transfer): {sw:.2f} GB/s = {sw / h2d:.2f}x pinned H2D, {by['25-sweep'].get('note', '')}")
    mp = get("26-mmap-probe")
    if h2d and mp:
        verdict = "faster than the bounce copy: worth a path" if bc_warm and mp > bc_warm else "no faster than the bounce copy"
        info.append(f"probe: DMA straight from the page cache (mmap + cuMemHostRegister) {mp:.2f} GB/s = {mp / h2d:.2f}x pinned H2D, {verdict}")
    # cuFile against the bounce pipeline on the same bytes: from the page
    # cache (warm transfers, both buffered) and from the drive (cold cache).
    cf_cached = get("22c-cufile-cached", "warm_gbps") or get("22c-cufile-cached")
    if cf_cached and bc_warm:
        goals.append(("bounce >= 1.5x cuFile (page cache)", bc_warm / cf_cached, 1.5,
                      f"{bc_warm:.2f} / {cf_cached:.2f} GB/s: transfer only, warm, both buffered; cuFile {cufile_mode(by)}"))
    cf_drive = max([x for x in (cf, get("22b-cufile-batch")) if x] or [0])
    if cf_drive and bd:
        goals.append(("bounce >= 1.5x cuFile (from the drive)", bd / cf_drive, 1.5,
                      f"{bd:.2f} / {cf_drive:.2f} GB/s: transfer only, O_DIRECT, cold cache (the best cuFile row); "
                      f"where both are near the drive's rate the drive is the limit, not the path"))
    if capi_warm and st:
        goals.append(("flashpath load >= 4x safetensors.load_file", capi_warm / st, 4.0,
                      f"{capi_warm:.2f} / {st:.2f} GB/s: end to end, both the 2nd load in a warm torch process"))
    if capi_cold and st:
        info.append(f"cold: 1st flashpath load in a torch process (cuInit in Go, staging pinned) {capi_cold:.2f} GB/s e2e = {capi_cold / st:.2f}x safetensors (warm)")
    if auto_cold and st:
        info.append(f"CLI: flashpath load (auto), fresh process, setup included, cuInit excluded: {auto_cold:.2f} GB/s = {auto_cold / st:.2f}x safetensors")
    print()
    for name, ratio, want, detail in goals:
        print(f"GOAL {name:48} {ratio:6.2f}x  {'MET' if ratio >= want else 'MISSED'}  ({detail})")
    for line in info:
        print(f"info {line}")
    failed_verify = [r["name"] for r in rows if r.get("verified") is False]
    if failed_verify:
        print("VERIFY FAILED:", ", ".join(failed_verify))
    summary = {"results": rows, "goals": [{"goal": g[0], "ratio": g[1], "want": g[2], "met": g[1] >= g[2], "detail": g[3]} for g in goals],
               "info": info, "verify_failed": failed_verify}
    with open(a.summary, "w") as f:
        json.dump(summary, f, indent=2)


def cufile_mode(by):
    """'compat mode' or 'true GDS', from the reason of a cuFile row."""
    for k in ("22c-cufile-cached", "22-cufile", "22b-cufile-batch"):
        note = by.get(k, {}).get("note", "")
        if "true GDS" in note:
            return "true GDS"
        if "compat" in note:
            return "compat mode"
    return "mode unknown"


def from_flashpath(a):
    """Turn `flashpath load -o json` output into a result row: GB/s of the
    transfer alone, of the first (cold) load; the warm numbers (last of
    --repeat loads in the process) ride along."""
    with open(a.src) as f:
        d = json.load(f)
    w = d.get("warm") or {}
    note = (f"path {d['path']}, direct={d['direct_io']}, cached={d['page_cache_fraction']:.0%}, "
            f"{d.get('workers', '?')}w x{d.get('depth', '?')} x{d.get('chunk_mib', '?')}MiB; "
            f"setup cold {d['setup_s']:.3f} s (alloc {d.get('setup_alloc_s', 0):.3f}, open {d.get('setup_open_s', 0):.3f})")
    if w:
        note += f", warm {w['setup_s']:.3f} s; warm transfer {w['gbps']:.2f} GB/s"
    note += f": {d['reason']}"
    emit(a.out, a.name, d["bytes"], d["load_s"], d["cpu_s"], verified=d.get("verified"), note=note,
         total_gbps=d.get("total_gbps") or (d["bytes"] / (d["setup_s"] + d["load_s"]) / 1e9), setup_s=d["setup_s"],
         init_s=d.get("init_s"), path=d["path"], warm_gbps=w.get("gbps"), warm_total_gbps=w.get("total_gbps"),
         warm_setup_s=w.get("setup_s"))


def sweep(a):
    """Run `flashpath load` over pipeline shapes (workers:depth:chunk MiB,
    optionally :reader) on the cached file, two loads per process; print the
    warm transfer GB/s and write the best as a row."""
    import subprocess
    rows = []
    for shape in a.shapes.split():
        w, dp, ch, *rd = shape.split(":")
        cmd = [a.fp, "load", a.path, "--gpu-path", "bounce", "--direct", "off", "--repeat", "2", "-o", "json",
               "--workers", w, "--depth", dp, "--chunk-mib", ch] + (["--reader", rd[0]] if rd else [])
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            d = json.loads(out.stdout)
            wr = d.get("warm") or d
            rows.append((shape, wr["gbps"], d["gbps"], wr["setup_s"], d["setup_s"], d["staging_mib"], d["cpu_s_per_gb"]))
            print(f"  {shape:>10}  warm {wr['gbps']:6.2f} GB/s  cold {d['gbps']:6.2f} GB/s  setup cold {d['setup_s']:.3f} s "
                  f"warm {wr['setup_s']:.3f} s  staging {d['staging_mib']:.0f} MiB  {d['cpu_s_per_gb']:.3f} CPU s/GB", flush=True)
        except Exception as e:
            print(f"  {shape:>10}  failed: {e}", flush=True)
    if not rows:
        sys.exit(1)
    best = max(rows, key=lambda r: r[1])
    emit(a.out, "flashpath bounce sweep: best shape, warm (page cache)", os.path.getsize(a.path), 0, 0,
         note=f"workers:depth:chunkMiB[:reader] {best[0]}; cold {best[2]:.2f} GB/s", gbps_override=best[1],
         sweep=[dict(zip(("shape", "warm_gbps", "cold_gbps", "warm_setup_s", "cold_setup_s", "staging_mib", "cpu_s_per_gb"), r)) for r in rows])


def cufile_config(a):
    """Print the cufile.json properties that decide compat mode; with
    --compat-out, write a copy with allow_compat_mode true (comments stripped)."""
    import re
    try:
        with open(a.path) as f:
            text = f.read()
    except OSError as e:
        print(f"cufile.json: {a.path}: {e}")
        return
    # Strip // and /* */ comments outside strings.
    text = re.sub(r'("(?:\\.|[^"\\])*")|//[^\n]*|/\*.*?\*/', lambda m: m.group(1) or "", text, flags=re.S)
    try:
        cfg = json.loads(text)
    except ValueError as e:
        print(f"cufile.json: {a.path}: not JSON after stripping comments: {e}")
        return
    props = cfg.get("properties", {})
    keys = ("allow_compat_mode", "use_poll_mode", "max_direct_io_size_kb", "max_device_cache_size_kb",
            "max_device_pinned_mem_size_kb", "gds_rdma_write_support", "posix_unaligned_writes", "use_pci_p2pdma")
    eff = {k: json.dumps(props[k]) if k in props else "(default)" for k in keys}
    print(f"cufile.json {a.path}: properties " + ", ".join(f"{k}={v}" for k, v in eff.items()))
    for sect in ("execution", "fs"):
        if sect in cfg:
            print(f"  {sect}: {json.dumps(cfg[sect])[:300]}")
    if a.compat_out:
        cfg.setdefault("properties", {})["allow_compat_mode"] = True
        # Without nvidia-fs, registering a file on a drive GDS cannot reach
        # may still be refused unless compat mode is forced (cuFile 1.9+).
        cfg["properties"]["force_compat_mode"] = True
        cfg.setdefault("logging", {})["dir"] = os.path.dirname(os.path.abspath(a.compat_out))
        cfg["logging"]["level"] = "INFO"
        with open(a.compat_out, "w") as f:
            json.dump(cfg, f, indent=1)
        print(f"derived {a.compat_out}: {a.path} with allow_compat_mode and force_compat_mode true")


def mmap_h2d(a):
    """Probe for a zero-copy page-cache path (not a flashpath path yet):
    mmap the cached file, pin windows of it with cuMemHostRegister
    (READ_ONLY) and DMA them to the GPU straight out of the page cache, with
    no CPU copy. Measures registration alone, the copy alone, and a pipeline
    in which each of --threads threads registers, copies and unregisters its
    windows; the best pipeline is the row, verified by sampled windows."""
    import ctypes, threading, torch
    torch.zeros(1, device="cuda")
    cu = ctypes.CDLL("libcuda.so.1")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    cu.cuMemHostRegister_v2.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint]
    cu.cuMemHostUnregister.argtypes = [ctypes.c_void_p]
    cu.cuMemcpyHtoDAsync_v2.argtypes = [ctypes.c_uint64, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    cu.cuStreamSynchronize.argtypes = [ctypes.c_void_p]
    cu.cuCtxSetCurrent.argtypes = [ctypes.c_void_p]

    def check(r, what):
        if r != 0:
            name = ctypes.c_char_p()
            cu.cuGetErrorName(r, ctypes.byref(name))
            raise RuntimeError(f"{what}: {name.value.decode() if name.value else r}")

    ctx = ctypes.c_void_p()
    check(cu.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), 0), "cuDevicePrimaryCtxRetain")
    size = os.path.getsize(a.path)
    fd = os.open(a.path, os.O_RDONLY)
    base = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
    if base is None or base == ctypes.c_void_p(-1).value:
        sys.exit(f"mmap: errno {ctypes.get_errno()}")
    READ_ONLY = 0x08  # CU_MEMHOSTREGISTER_READ_ONLY
    dst = torch.empty(size, dtype=torch.uint8, device="cuda")
    win = a.window_mib << 20
    wins = [(o, min(win, size - o)) for o in range(0, size, win)]
    notes, best = [], None
    try:
        check(cu.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
        s = torch.cuda.Stream()
        c0, t0 = cpu(), time.perf_counter()
        for o, n in wins:
            check(cu.cuMemHostRegister_v2(base + o, n, READ_ONLY), "cuMemHostRegister")
        reg = time.perf_counter() - t0
        t1 = time.perf_counter()
        for o, n in wins:
            check(cu.cuMemcpyHtoDAsync_v2(dst.data_ptr() + o, base + o, n, s.cuda_stream), "cuMemcpyHtoDAsync")
        check(cu.cuStreamSynchronize(s.cuda_stream), "cuStreamSynchronize")
        cp = time.perf_counter() - t1
        t2 = time.perf_counter()
        for o, n in wins:
            check(cu.cuMemHostUnregister(base + o), "cuMemHostUnregister")
        unreg = time.perf_counter() - t2
        notes.append(f"1 thread, {a.window_mib} MiB windows: register {size / reg / 1e9:.1f} GB/s, "
                     f"copy from registered page cache {size / cp / 1e9:.1f} GB/s, unregister {size / unreg / 1e9:.1f} GB/s")
        print(notes[-1], flush=True)
        for nt in (int(x) for x in a.threads.split()):
            errs = []

            def worker(k):
                try:
                    check(cu.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
                    st = torch.cuda.Stream()
                    for o, n in wins[k::nt]:
                        check(cu.cuMemHostRegister_v2(base + o, n, READ_ONLY), "cuMemHostRegister")
                        check(cu.cuMemcpyHtoDAsync_v2(dst.data_ptr() + o, base + o, n, st.cuda_stream), "cuMemcpyHtoDAsync")
                        check(cu.cuStreamSynchronize(st.cuda_stream), "cuStreamSynchronize")
                        check(cu.cuMemHostUnregister(base + o), "cuMemHostUnregister")
                except Exception as e:
                    errs.append(str(e))

            dst.zero_()
            torch.cuda.synchronize()
            c1, t3 = cpu(), time.perf_counter()
            ths = [threading.Thread(target=worker, args=(k,)) for k in range(nt)]
            for t in ths:
                t.start()
            for t in ths:
                t.join()
            dt, dc = time.perf_counter() - t3, cpu() - c1
            if errs:
                notes.append(f"{nt} threads: {errs[0]}")
            else:
                notes.append(f"{nt} threads register+copy+unregister: {size / dt / 1e9:.1f} GB/s, {dc / (size / 1e9):.3f} CPU s/GB")
                if best is None or dt < best[1]:
                    best = (nt, dt, dc)
            print(notes[-1], flush=True)
        ok = None
        if best:
            # Sampled check: the first, a middle and the last window against the file.
            ok = True
            for o, n in (wins[0], wins[len(wins) // 2], wins[-1]):
                ok &= dst[o:o + n].cpu().numpy().tobytes() == os.pread(fd, n, o)
    finally:
        libc.munmap(base, size)
        os.close(fd)
        cu.cuDevicePrimaryCtxRelease(0)
    if not best:
        emit(a.out, "probe: mmap + cuMemHostRegister, DMA from page cache", size, 0, 0, note="; ".join(notes), error=notes[-1] if notes else "failed")
        return
    emit(a.out, "probe: mmap + cuMemHostRegister, DMA from page cache", size, best[1], best[2], verified=ok,
         note=f"best {best[0]} threads x {a.window_mib} MiB windows (sampled check); " + "; ".join(notes))


def _torch(seed):
    """torch and safetensors' save_file, torch seeded; (None, None) where
    they are missing (a dry run off the GPU machine)."""
    try:
        import torch
        from safetensors.torch import save_file
    except ImportError as e:
        print(f"{e}: writing random bytes without torch", file=sys.stderr)
        return None, None
    torch.manual_seed(seed)
    return torch, save_file


def save_random(path, shapes, dtypes, torch, save_file):
    """Writes random tensors (name -> shape; bf16 unless dtypes names
    F32) as a safetensors file: made on the GPU by torch, or without it
    by save_plain. Returns torch's tensors (None without torch)."""
    if torch is None:
        save_plain(path, shapes, dtypes)
        return None
    tensors = {k: torch.randn(*v, device="cuda", dtype=torch.float32 if dtypes.get(k) == "F32" else torch.bfloat16).cpu()
               for k, v in shapes.items()}
    save_file(tensors, path, metadata={"format": "pt"})
    return tensors


def save_plain(path, shapes, dtypes=None):
    """Writes a safetensors file of random tensors (name -> shape; bf16
    unless dtypes names BF16 or F32) without torch: the format's 8-byte
    header length, JSON header, data."""
    import math, struct
    dtypes = dtypes or {}
    size = {"BF16": 2, "F32": 4}
    hdr, off = {"__metadata__": {"format": "pt"}}, 0
    for k, shape in shapes.items():
        dt = dtypes.get(k, "BF16")
        n = size[dt] * math.prod(shape)
        hdr[k] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for k in shapes:
            f.write(os.urandom(hdr[k]["data_offsets"][1] - hdr[k]["data_offsets"][0]))


def make_sharded(a):
    """A Hugging Face style sharded checkpoint: a.shards files of bf16
    tensors (odd sizes included) and model.safetensors.index.json. Without
    torch (a dry run off the GPU machine), random bytes of the same
    layout, in smaller tensors when the shards are small."""
    torch, save_file = _torch(1)
    per = int(a.gib * (1 << 30)) // a.shards
    side = 4096 if torch is not None or per >= 64 << 20 else 512
    big = side * side
    weight_map, total, t0 = {}, 0, time.time()
    for s in range(a.shards):
        name = f"model-{s + 1:05d}-of-{a.shards:05d}.safetensors"
        shapes, n, i = {}, 0, 0
        while n + big * 2 <= per:
            shapes[f"layers.{s}.{i}.weight"] = (side, side)
            n += big * 2
            i += 1
        shapes[f"layers.{s}.odd"] = (4097 + s,)
        n += 2 * (4097 + s)
        save_random(os.path.join(a.dir, name), shapes, {}, torch, save_file)
        for k in shapes:
            weight_map[k] = name
        total += n
    with open(os.path.join(a.dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f)
    print(json.dumps({"shards": a.shards, "bytes": total, "write_s": time.time() - t0}))


def st_load_sharded(a):
    """safetensors.torch.load_file(device=cuda) of every shard of an index,
    one after another as transformers does, in a warm process (2nd run timed)."""
    import torch
    from safetensors.torch import load_file
    d = os.path.dirname(a.index)
    with open(a.index) as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
    torch.empty(1, device="cuda")

    def once():
        sd = {}
        for s in shards:
            sd.update(load_file(os.path.join(d, s), device="cuda:0"))
        torch.cuda.synchronize()
        return sd
    t0 = time.perf_counter()
    sd = once()
    first = time.perf_counter() - t0
    del sd
    c0, t0 = cpu(), time.perf_counter()
    sd = once()
    dt = time.perf_counter() - t0
    nbytes = sum(t.numel() * t.element_size() for t in sd.values())
    emit(a.out, "safetensors.torch.load_file(device=cuda), every shard, warm process", nbytes, dt, cpu() - c0,
         note=f"{len(shards)} shards from local files (page cache); 1st run {first:.3f} s", first_s=first)


def capi_sharded(a):
    """Python end to end: capi/example.py loads the sharded checkpoint from
    the targets into torch tensors (every tensor compared with the local
    shards through safetensors), saves them as shards to the targets'
    writable namespaces, and loads that save back (compared again)."""
    import torch
    from safetensors.torch import load_file
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "capi"))
    import example
    torch.empty(1, device="cuda")
    lib = example._lib(a.lib)
    locs = json.loads(a.shards)
    d = os.path.dirname(a.index)
    ref = {}
    for s in sorted(set(json.load(open(a.index))["weight_map"].values())):
        ref.update(load_file(os.path.join(d, s), device="cuda:0"))
    c0, t0 = cpu(), time.perf_counter()
    ck = example.load(a.index, 0, "auto", lib=lib, shards=locs)
    torch.cuda.synchronize()
    dt, c1 = time.perf_counter() - t0, cpu() - c0
    bad = [k for k in ref if k not in ck or not torch.equal(_bits(ref[k]), _bits(ck[k]))]
    nbytes = ck.info["bytes"]
    emit(a.out.replace(".json", "-load.json"), "capi/example.py load of the index from 3 targets (torch tensors)", nbytes, dt, c1,
         verified=not bad, e2e=True, note=f"path {ck.info['path']}" + (f"; mismatched {bad[:5]}" if bad else ""))
    state = {k: v.contiguous() for k, v in ck.items()}
    save_idx = os.path.join(d, "saved.index.json")
    c0, t0 = cpu(), time.perf_counter()
    rep = example.save_sharded(save_idx, state, a.save_to.split(","), lib=lib)
    dt, c1 = time.perf_counter() - t0, cpu() - c0
    ck.close()
    back = example.load(save_idx, 0, "auto", lib=lib, verify=True)
    torch.cuda.synchronize()
    bad2 = [k for k in ref if k not in back or not torch.equal(_bits(ref[k]), _bits(back[k]))]
    emit(a.out, "capi/example.py save_sharded to 3 targets' namespaces, flushed, index last", rep["bytes"], dt, c1,
         verified=not bad2, e2e=True, note=f"flashpath {rep['gbps']:.2f} GB/s; loaded back and compared" + (f"; mismatched {bad2[:5]}" if bad2 else ""))
    back.close()


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
    s = sub.add_parser("sweep"); s.add_argument("path"); s.add_argument("--fp", required=True); s.add_argument("--shapes", required=True); s.add_argument("--out", required=True)
    s = sub.add_parser("cufile-config"); s.add_argument("path"); s.add_argument("--compat-out")
    s = sub.add_parser("make-sharded"); s.add_argument("dir"); s.add_argument("gib", type=float); s.add_argument("shards", type=int)
    s = sub.add_parser("st-load-sharded"); s.add_argument("index"); s.add_argument("--out", required=True)
    s = sub.add_parser("capi-sharded"); s.add_argument("index"); s.add_argument("--lib", required=True); s.add_argument("--shards", required=True)
    s.add_argument("--save-to", required=True); s.add_argument("--out", required=True)
    s = sub.add_parser("mmap-h2d"); s.add_argument("path"); s.add_argument("--out", required=True)
    s.add_argument("--threads", default="2 4 8 12"); s.add_argument("--window-mib", type=int, default=64)
    a = p.parse_args()
    {"make-ckpt": make_ckpt, "drop-cache": drop_cache, "warm-cache": warm_cache, "h2d": h2d, "st-load": st_load,
     "torch-load": torch_load, "capi": capi, "kvikio": kvikio_read, "from-flashpath": from_flashpath,
     "summarize": summarize, "sweep": sweep, "cufile-config": cufile_config, "mmap-h2d": mmap_h2d,
     "make-sharded": make_sharded, "capi-sharded": capi_sharded, "st-load-sharded": st_load_sharded}[a.cmd](a)


if __name__ == "__main__":
    main()
