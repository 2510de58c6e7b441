#!/usr/bin/env python3
"""The benchmark cases behind Benchmarks/run. Argument: the folder holding release builds of imgbuild and imgdeploy."""
import hashlib, json, os, platform, random, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

BIN = sys.argv[1]
IMGBUILD, IMGDEPLOY = BIN + "/imgbuild", BIN + "/imgdeploy"
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
WORK = os.environ.get("BENCH_DIR", "/tmp/imgbuild-bench")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rows = []  # (case, subject, median, unit, baseline subject, ratio, target, verdict)

def log(message):
    print(message, file=sys.stderr, flush=True)

def sh(command, env=None, check=True, capture=False):
    full = dict(os.environ, **(env or {}))
    result = subprocess.run(command, shell=True, env=full, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{command} failed: {result.stderr[-2000:]}")
    return result.stdout if capture else result

def timed(command, env=None, prepare=None):
    if prepare: prepare()
    start = time.perf_counter()
    sh(command, env=env)
    return time.perf_counter() - start

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def wait_port(port, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close(); return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")

def alternate(cases):
    """cases: {name: (command, env, prepare)}; runs each in turn RUNS times, returns {name: [seconds]}."""
    results = {name: [] for name in cases}
    for run in range(RUNS):
        for name, (command, env, prepare) in cases.items():
            seconds = timed(command, env, prepare)
            results[name].append(seconds)
            log(f"  run {run + 1}/{RUNS} {name}: {seconds:.3f} s")
    return results

def record(case, results, subject, baseline=None, target=None, unit="s"):
    value = statistics.median(results[subject])
    ratio = statistics.median(results[subject]) / statistics.median(results[baseline]) if baseline else None
    rows.append((case, subject, value, unit, baseline, ratio, target))

# ---------------------------------------------------------------------------------------------- workloads

def make_big(folder):
    """About 1 GiB in 64 files: half English-like text (compressible), half seeded random bytes."""
    if os.path.exists(folder + "/Imagefile"): return
    data = folder + "/data"
    os.makedirs(data, exist_ok=True)
    rng = random.Random(20261126)
    words = ["immutable", "infrastructure", "image", "layer", "digest", "version", "deploy", "rollback", "registry",
             "manifest", "config", "blob", "tar", "zstd", "gzip", "the", "a", "of", "and", "to", "in", "is", "it"]
    text = " ".join(rng.choice(words) for _ in range(250_000)).encode()  # ~2 MiB block
    for i in range(32):
        with open(f"{data}/text-{i:02d}.txt", "wb") as f:
            for j in range(8):  # 8 slightly different 2 MiB blocks: 16 MiB per file
                f.write(text[j * 977:] + text[:j * 977])
        with open(f"{data}/random-{i:02d}.bin", "wb") as f:
            f.write(rng.randbytes(16 << 20))
    with open(folder + "/Imagefile", "w") as f:
        f.write("name: big\nversion: 1.0.0\ncode:\n  - copy: data/\n    to: /data/\n")
    time.sleep(3)  # past the layer cache's racy window

def make_small(folder):
    """20,000 small files under src/, and a few files under code/ (the top layer)."""
    if os.path.exists(folder + "/Imagefile"): return
    for i in range(20000):
        d = f"{folder}/src/d{i // 500:03d}"
        os.makedirs(d, exist_ok=True)
        with open(f"{d}/f{i:05d}.txt", "w") as f: f.write(f"file {i}\n" * (1 + i % 7))
    os.makedirs(folder + "/code", exist_ok=True)
    rng = random.Random(7)
    for i in range(4):
        with open(f"{folder}/code/part-{i}.js", "w") as f: f.write("".join(rng.choice("abcdefgh \n") for _ in range(1 << 16)))
    with open(folder + "/Imagefile", "w") as f:
        f.write("name: small\nversion: 1.0.0\nruntime:\n  - copy: src/\n    to: /app/\ncode:\n  - copy: code/\n    to: /code/\n")
    os.makedirs(folder + "-top", exist_ok=True)
    if not os.path.exists(folder + "-top/code"):
        shutil.copytree(folder + "/code", folder + "-top/code")
    with open(folder + "-top/Imagefile", "w") as f:
        f.write("name: top\nversion: 1.0.0\ncode:\n  - copy: code/\n    to: /code/\n")
    time.sleep(3)

def fresh(*paths):
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)

# ---------------------------------------------------------------------------------------------- cases

def builds(big):
    store, cache, umoci_dir = WORK + "/store-cold", WORK + "/cache-cold", WORK + "/umoci"
    tar = f"tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -cf - -C {big} data"
    env = {"IMGBUILD_CACHE": cache}
    def cold(): fresh(store, cache)
    def umoci_prepare():
        fresh(umoci_dir)
        sh(f"umoci init --layout {umoci_dir}/layout && umoci new --image {umoci_dir}/layout:t && "
           f"umoci unpack --rootless --image {umoci_dir}/layout:t {umoci_dir}/bundle && cp -a {big}/data {umoci_dir}/bundle/rootfs/data")
    umoci = f"umoci repack --refresh-bundle --image {umoci_dir}/layout:t {umoci_dir}/bundle"

    log("cold build, zstd, 1 GiB")
    r = alternate({
        "imgbuild build --compression zstd": (f"{IMGBUILD} build {big} --store {store} --compression zstd -q", env, cold),
        "tar | zstd -3 -T0 | sha256sum": (f"{tar} | zstd -3 -T0 -q | sha256sum", None, None),
    })
    record("cold build, zstd, 1 GiB", r, "imgbuild build --compression zstd", "tar | zstd -3 -T0 | sha256sum", "≤ 1.0×")

    log("cold build, gzip, 1 GiB")
    r = alternate({
        "imgbuild build": (f"/usr/bin/time -f %M -o {WORK}/maxrss {IMGBUILD} build {big} --store {store} -q", env, cold),
        "tar | pigz -6 | sha256sum": (f"{tar} | pigz -6 | sha256sum", None, None),
        "tar | gzip -6 | sha256sum": (f"{tar} | gzip -6 | sha256sum", None, None),
        "umoci repack": (umoci, None, umoci_prepare),
    })
    record("cold build, gzip, 1 GiB", r, "imgbuild build", "tar | pigz -6 | sha256sum", "≤ 1.0×")
    record("cold build, gzip, 1 GiB", r, "imgbuild build", "tar | gzip -6 | sha256sum")
    record("cold build, gzip, 1 GiB", r, "imgbuild build", "umoci repack", "< 1.0×")
    record("cold build, gzip, 1 GiB", r, "tar | pigz -6 | sha256sum")
    record("cold build, gzip, 1 GiB", r, "umoci repack")
    # A faster gzip must not be bought with bigger layers: the sizes go in the table too.
    largest = lambda folder: max(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder)) / (1 << 20)
    ours, theirs = largest(store + "/blobs/sha256"), largest(umoci_dir + "/layout/blobs/sha256")
    rows.append(("gzip layer size, 1 GiB", "imgbuild build", ours, "MiB", "umoci repack", ours / theirs, None))
    rows.append(("gzip layer size, 1 GiB", "umoci repack", theirs, "MiB", None, None, None))
    rss = int(open(WORK + "/maxrss").read().split()[-1]) / 1024
    rows.append(("peak memory of the 1 GiB build", "imgbuild build (max RSS)", rss, "MiB", None, None, "≤ 64 MiB"))

def git_index(folder):
    """A git repository of the context, with git's fastest settings for 'did anything change': the
    untracked cache on, the index fresh, stat data checked on parallel threads (core.preloadIndex, on by default)."""
    if not os.path.exists(folder + "/.git"):
        sh(f"git -C {folder} init -q && git -C {folder} config core.untrackedCache true && "
           f"git -C {folder} -c user.name=bench -c user.email=bench@invalid add -A && "
           f"git -C {folder} -c user.name=bench -c user.email=bench@invalid commit -qm context")
    # git add records what changed since (the one-file change case edits code/), so the index is fresh.
    sh(f"git -C {folder} add -A && git -C {folder} update-index --untracked-cache && "
       f"git -C {folder} status --porcelain && git -C {folder} status --porcelain")

def rebuilds(small):
    store, cache = WORK + "/store-small", WORK + "/cache-small"
    env = {"IMGBUILD_CACHE": cache}
    log("no-op rebuild of 20,000 files against git status on the same tree, and a one-file change in code")
    cold_times, noop_times, git_times, change_times, top_times = [], [], [], [], []
    build = f"{IMGBUILD} build {small} --store {store} -q"
    for run in range(RUNS):
        fresh(store, cache)
        cold_times.append(timed(build, env))
        timed(build, env)  # keeps the context's snapshots: the first build's files were racily clean
        git_index(small)
        # Each takes tens of milliseconds: alternate ten of each per run, so both see the same machine.
        for _ in range(10):
            noop_times.append(timed(build, env))
            git_times.append(timed(f"git -C {small} status --porcelain"))
        with open(f"{small}/code/part-0.js", "a") as f: f.write(f"// change {run} {time.time()}\n")
        # A real edit happens well after the last build; stay clear of the cache's racy window.
        time.sleep(2.2)
        change_times.append(timed(f"{build} --version 1.0.{run + 1}", env))
        fresh(WORK + "/store-top", WORK + "/cache-top")
        top_times.append(timed(f"{IMGBUILD} build {small}-top --store {WORK}/store-top -q", {"IMGBUILD_CACHE": WORK + "/cache-top"}))
        log(f"  run {run + 1}/{RUNS}: cold {cold_times[-1]:.3f} s, no-op {statistics.median(noop_times[-10:]):.3f} s, "
            f"git status {statistics.median(git_times[-10:]):.3f} s, one file changed {change_times[-1]:.3f} s, top layer alone {top_times[-1]:.3f} s")
    r = {"imgbuild build (no-op)": noop_times, "imgbuild build (cold)": cold_times, "git status": git_times,
         "imgbuild build (one file changed)": change_times, "imgbuild build (top layer alone, cold)": top_times}
    record("no-op rebuild, 20,000 files", r, "imgbuild build (no-op)", "git status", "≤ 1.0×")
    record("no-op rebuild, 20,000 files", r, "imgbuild build (no-op)", "imgbuild build (cold)")
    record("no-op rebuild, 20,000 files", r, "git status")
    record("one file changed in code", r, "imgbuild build (one file changed)", "imgbuild build (top layer alone, cold)", "≤ 1.3×")

REGISTRY_CONFIG = """version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: false
http:
  addr: 127.0.0.1:{port}
"""

def start_registry(root):
    port = free_port()
    os.makedirs(root, exist_ok=True)
    with open(root + ".yml", "w") as f: f.write(REGISTRY_CONFIG.format(root=root, port=port))
    process = subprocess.Popen(["docker-registry", "serve", root + ".yml"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return process, port

def stop(process):
    process.send_signal(signal.SIGINT)
    try: process.wait(10)
    except subprocess.TimeoutExpired: process.kill(); process.wait()

def pushes():
    store = WORK + "/store-cold"  # holds big:1.0.0 (gzip) from the build case
    layout = WORK + "/layout"
    fresh(layout)
    sh(f"{IMGBUILD} export big:1.0.0 oci:{layout}:1.0.0 --store {store}")
    log("push of the 1 GiB image to a local distribution registry and to imgbuild serve, and re-push")
    first = {"imgbuild push": [], "skopeo copy": []}
    again = {"imgbuild push": [], "skopeo copy": []}
    served = {"imgbuild push": [], "skopeo copy": []}
    for run in range(RUNS):
        for name in ["imgbuild push", "skopeo copy"]:
            def command(port):
                return (f"{IMGBUILD} push big:1.0.0 http://127.0.0.1:{port}/big:1.0.0 --store {store} --quiet" if name == "imgbuild push"
                        else f"skopeo copy --quiet --dest-tls-verify=false oci:{layout}:1.0.0 docker://127.0.0.1:{port}/big:1.0.0")
            root = WORK + "/registry"
            fresh(root)
            process, port = start_registry(root)
            try:
                first[name].append(timed(command(port)))
                again[name].append(timed(command(port)))
            finally:
                stop(process)
            # The same push to imgbuild's own registry, whose store is empty each time.
            target = WORK + "/store-served"
            fresh(target)
            port = free_port()
            serve = subprocess.Popen([IMGBUILD, "serve", "--listen", f"127.0.0.1:{port}", "--store", target, "--quiet"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_port(port)
                served[name].append(timed(command(port)))
            finally:
                serve.terminate(); serve.wait()
            log(f"  run {run + 1}/{RUNS} {name}: push {first[name][-1]:.3f} s, re-push {again[name][-1]:.3f} s, "
                f"push to imgbuild serve {served[name][-1]:.3f} s")
    record("push to a local distribution registry", first, "imgbuild push", "skopeo copy", "≤ 0.8×")
    record("re-push of an unchanged image", again, "imgbuild push", "skopeo copy", "≤ 0.1 s")
    record("push to a local imgbuild serve", served, "imgbuild push", "skopeo copy", "≤ 1.0×")
    record("push to a local imgbuild serve", served, "skopeo copy")

def wrk(url, header=None, seconds=5, connections=16):
    command = f"wrk -t{min(2, connections)} -c{connections} -d{seconds}s --latency {'-H ' + repr(header) if header else ''} {url}"
    output = sh(command, capture=True)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    scale = {"us": 0.001, "ms": 1, "s": 1000}
    return rps, float(p99.group(1)) * scale[p99.group(2)], (errors.group(1) if errors else "0"), (socket_errors.group(1) if socket_errors else "")

def serving():
    log("serving: manifest GETs and 1 MiB blob GETs")
    folder = WORK + "/blob1m"
    if not os.path.exists(folder + "/Imagefile"):
        os.makedirs(folder + "/data", exist_ok=True)
        with open(folder + "/data/random.bin", "wb") as f: f.write(random.Random(1).randbytes(1 << 20))
        with open(folder + "/Imagefile", "w") as f: f.write("name: blob\nversion: 1.0.0\ncode:\n  - copy: data/\n    to: /data/\n")
    store = WORK + "/store-serve"
    fresh(store)
    digest = sh(f"{IMGBUILD} build {folder} --store {store} -q", capture=True).strip().splitlines()[-1]
    manifest = json.load(open(f"{store}/blobs/sha256/{digest.split(':')[1]}"))
    layer = manifest["layers"][0]["digest"]
    root = WORK + "/registry-serve"
    fresh(root)
    registry, registry_port = start_registry(root)
    serve_port = free_port()
    serve = subprocess.Popen([IMGBUILD, "serve", "--listen", f"127.0.0.1:{serve_port}", "--store", store, "--read-only", "--quiet"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(serve_port)
        sh(f"{IMGBUILD} push blob@{digest} http://127.0.0.1:{registry_port}/blob:1.0.0 --store {store} --quiet")
        accept = "Accept: application/vnd.oci.image.manifest.v1+json"
        results = {}
        for run in range(RUNS):
            for name, port in [("imgbuild serve", serve_port), ("docker-registry", registry_port)]:
                for kind, path, header in [("manifest", f"/v2/blob/manifests/{digest}", accept), ("blob", f"/v2/blob/blobs/{layer}", None)]:
                    rps, p99, non2xx, socket_errors = wrk(f"http://127.0.0.1:{port}{path}", header, seconds=4)
                    results.setdefault((kind, name), []).append(-rps)  # negative so that a smaller median is better
                    log(f"  run {run + 1}/{RUNS} {name} {kind}: {rps:.0f} req/s, p99 {p99:.2f} ms, non-2xx {non2xx} {socket_errors}")
        for kind, label in [("manifest", "serving: manifest GETs (req/s)"), ("blob", "serving: 1 MiB blob GETs (req/s)")]:
            mine = -statistics.median(results[(kind, "imgbuild serve")])
            theirs = -statistics.median(results[(kind, "docker-registry")])
            rows.append((label, "imgbuild serve", mine, "req/s", "docker-registry", mine / theirs, "≥ 1.0×"))
            rows.append((label, "docker-registry", theirs, "req/s", None, None, None))
    finally:
        serve.terminate(); serve.wait()
        stop(registry)

NGINX_CONFIG = """daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  keepalive_requests 100000;
  client_body_temp_path {dir}/tmp;
  server {{
    listen 127.0.0.1:{port};
    location / {{ root {dir}/www; }}
  }}
}}
"""

HAPROXY_CONFIG = """global
  maxconn 4096
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend front
  bind 127.0.0.1:{port}
  default_backend back
backend back
  server b1 127.0.0.1:{backend}
"""

def balancer():
    """imgdeploy proxy, haproxy and nginx alone, alternated, at 16 and 64 connections; with
    BENCH_PREVIOUS_IMGDEPLOY=PATH, that build of imgdeploy (an older commit) is measured beside them."""
    log("load balancer: imgdeploy proxy and haproxy in front of nginx")
    folder = WORK + "/lb"
    os.makedirs(folder + "/www", exist_ok=True)
    os.makedirs(folder + "/tmp", exist_ok=True)
    with open(folder + "/www/index.html", "w") as f: f.write("<!doctype html><title>hello</title>" + "x" * 512)
    backend = free_port()
    with open(folder + "/nginx.conf", "w") as f: f.write(NGINX_CONFIG.format(dir=folder, port=backend))
    processes = [subprocess.Popen(["nginx", "-c", folder + "/nginx.conf"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    subjects = []
    builds = [("imgdeploy proxy", IMGDEPLOY)]
    previous = os.environ.get("BENCH_PREVIOUS_IMGDEPLOY")
    if previous: builds.append(("imgdeploy proxy, previous build", previous))
    for name, binary in builds:
        port = free_port()
        processes.append(subprocess.Popen([binary, "proxy", "--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{backend}"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        subjects.append((name, port))
    haproxy_port = free_port()
    with open(folder + "/haproxy.cfg", "w") as f: f.write(HAPROXY_CONFIG.format(port=haproxy_port, backend=backend))
    processes.append(subprocess.Popen(["haproxy", "-f", folder + "/haproxy.cfg"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    subjects += [("haproxy", haproxy_port), ("nginx directly", backend)]
    try:
        for _, port in subjects: wait_port(port)
        for connections in (16, 64):
            rps, p99 = {}, {}
            for run in range(RUNS):
                for name, port in subjects:
                    r, p, non2xx, socket_errors = wrk(f"http://127.0.0.1:{port}/index.html", seconds=4, connections=connections)
                    rps.setdefault(name, []).append(r); p99.setdefault(name, []).append(p)
                    log(f"  run {run + 1}/{RUNS} {name}, {connections} connections: {r:.0f} req/s, p99 {p:.2f} ms, non-2xx {non2xx} {socket_errors}")
            m = {name: statistics.median(values) for name, values in rps.items()}
            q = {name: statistics.median(values) for name, values in p99.items()}
            case = f"load balancer, {connections} connections (req/s)"
            for name, _ in subjects:
                if name.startswith("imgdeploy"):
                    rows.append((case, name, m[name], "req/s", "haproxy", m[name] / m["haproxy"], "≥ 0.9×" if name == "imgdeploy proxy" else None))
            rows.append((case, "haproxy", m["haproxy"], "req/s", "nginx directly", m["haproxy"] / m["nginx directly"], None))
            rows.append((case, "nginx directly", m["nginx directly"], "req/s", None, None, None))
            if connections == 64:
                case = "load balancer, 64 connections (p99 latency)"
                for name, _ in subjects:
                    if name.startswith("imgdeploy"):
                        rows.append((case, name, q[name], "ms", "haproxy", q[name] / q["haproxy"], "≤ 1.1×" if name == "imgdeploy proxy" else None))
                rows.append((case, "haproxy", q["haproxy"], "ms", None, None, None))
        # Added latency: one connection, one request at a time, so the hop's own cost shows, not queueing.
        latency = {}
        for run in range(RUNS):
            for name, port in subjects:
                r, p, non2xx, socket_errors = wrk(f"http://127.0.0.1:{port}/index.html", seconds=3, connections=1)
                latency.setdefault(name, []).append(p)
                log(f"  run {run + 1}/{RUNS} {name}, one connection: p99 {p:.3f} ms")
        l = {name: statistics.median(values) for name, values in latency.items()}
        for name, _ in subjects:
            if name != "nginx directly":
                rows.append(("load balancer: p99 latency added (1 connection)", name, l[name] - l["nginx directly"], "ms", None, None,
                             "< 1 ms" if name == "imgdeploy proxy" else None))
    finally:
        for process in processes:
            process.terminate()
            try: process.wait(10)
            except subprocess.TimeoutExpired: process.kill()

# ---------------------------------------------------------------------------------------------- report

def locking():
    """imgbuild lock against apt resolving the same packages from the same signed archive: Debian bookworm's
    main index for amd64 (the machine's own apt list, about 95,000 packages), re-signed with a throwaway key and
    served on 127.0.0.1. Both fetch and check the signed Release and the index, then resolve."""
    folder = WORK + "/lock"
    if os.path.exists(folder): shutil.rmtree(folder)
    dists = folder + "/archive/dists/bookworm"
    os.makedirs(dists + "/main/binary-amd64")
    lists = [f for f in os.listdir("/var/lib/apt/lists") if re.search(r"_dists_bookworm_main_binary-amd64_Packages", f)]
    if not lists:
        sh("apt-get update -qq")
        lists = [f for f in os.listdir("/var/lib/apt/lists") if re.search(r"_dists_bookworm_main_binary-amd64_Packages", f)]
    sh(f"/usr/lib/apt/apt-helper cat-file /var/lib/apt/lists/{lists[0]} > {dists}/main/binary-amd64/Packages && "
       f"gzip -6nk {dists}/main/binary-amd64/Packages")
    sh(f"cd {dists} && apt-ftparchive -o APT::FTPArchive::Release::Suite=bookworm -o APT::FTPArchive::Release::Codename=bookworm "
       f"-o APT::FTPArchive::Release::Architectures=amd64 -o APT::FTPArchive::Release::Components=main release . > ../Release && mv ../Release .")
    gnupg = folder + "/gnupg"
    os.makedirs(gnupg, mode=0o700)
    genv = {"GNUPGHOME": gnupg}
    sh("gpg --batch -q --passphrase '' --quick-gen-key 'bench <bench@invalid>' ed25519 sign never", env=genv)
    sh(f"gpg --batch -q --export bench@invalid > {folder}/keyring.gpg && gpg --batch -q -u bench@invalid --clearsign -o {dists}/InRelease {dists}/Release", env=genv)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", folder + "/archive"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    packages = ["adduser", "ca-certificates", "curl", "liblocale-gettext-perl", "logrotate"]
    context = folder + "/context"
    os.makedirs(context)
    with open(context + "/Imagefile", "w") as f:
        f.write(f"name: bench-lock\nversion: 1.0.0\nplatform: linux/amd64\nrepositories:\n  - url: http://127.0.0.1:{port}\n"
                f"    suite: bookworm\n    keyring: {folder}/keyring.gpg\npackages: [{', '.join(packages)}]\n")
    root = folder + "/apt-root"
    for sub in ["etc/apt/apt.conf.d", "etc/apt/preferences.d", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg"]:
        os.makedirs(f"{root}/{sub}")
    open(root + "/var/lib/dpkg/status", "w").close()
    with open(root + "/etc/apt/sources.list", "w") as f: f.write(f"deb [signed-by={folder}/keyring.gpg] http://127.0.0.1:{port} bookworm main\n")
    apt = (f"apt-get -qq -o Dir={root} -o Dir::State::status={root}/var/lib/dpkg/status -o Dir::Etc::Parts={root}/etc/apt/apt.conf.d "
           f"-o APT::Architecture=amd64 -o APT::Architectures::=amd64 -o Debug::NoLocking=1 -o APT::Sandbox::User=root")
    def clear_apt():
        sh(f"rm -rf {root}/var/lib/apt/lists/* {root}/var/cache/apt/*.bin && mkdir -p {root}/var/lib/apt/lists/partial")
    def clear_lock():
        if os.path.exists(context + "/Imagefile.lock"): os.remove(context + "/Imagefile.lock")
    log("imgbuild lock against apt-get update + install --download-only --print-uris: one signed archive of Debian's 95,000 packages")
    try:
        # Both must find the same closure.
        clear_lock(); sh(f"{IMGBUILD} lock {context} -q")
        clear_apt(); sh(f"{apt} update")
        uris = sh(f"{apt} install --download-only --print-uris --no-install-recommends -y {' '.join(packages)}", capture=True)
        theirs = sorted(line.split()[1].split("_")[0] for line in uris.splitlines() if line.strip())
        ours = sorted(p["name"] for p in json.load(open(context + "/Imagefile.lock"))["platforms"][0]["packages"])
        if ours != theirs: raise RuntimeError(f"the closures differ: imgbuild {ours} apt {theirs}")
        log(f"  both resolve {len(ours)} packages")
        r = alternate({
            "imgbuild lock": (f"{IMGBUILD} lock {context} -q", None, clear_lock),
            "apt-get update + install --print-uris": (f"{apt} update && {apt} install --download-only --print-uris --no-install-recommends -y {' '.join(packages)}", None, clear_apt),
        })
        record(f"lock {len(packages)} packages ({len(ours)} with dependencies) from 95,000", r, "imgbuild lock", "apt-get update + install --print-uris")
    finally:
        stop(server)

def verdict(row):
    case, subject, value, unit, baseline, ratio, target = row
    if not target: return ""
    if target == "≤ 0.1 s": ok = value <= 0.1
    elif target == "≤ 64 MiB": ok = value <= 64
    elif target == "< 1 ms": ok = value < 1
    elif target.startswith("≤"): ok = ratio <= float(target[2:-1])
    elif target.startswith("≥"): ok = ratio >= float(target[2:-1])
    elif target.startswith("<"): ok = ratio < float(target[2:-1])
    else: return ""
    return "met" if ok else "not met"

def fmt(value, unit):
    if unit == "s": return f"{value:.3f} s"
    if unit == "req/s": return f"{value:,.0f} req/s"
    if unit == "MiB": return f"{value:.1f} MiB"
    if unit == "ms": return f"{value:.3f} ms"
    return str(value)

def main():
    os.makedirs(WORK, exist_ok=True)
    started = time.time()
    big, small = WORK + "/big", WORK + "/small"
    log("generating workloads (deterministic) in " + WORK)
    # BENCH_ONLY=builds,balancer runs some cases (pushes need the builds' store); the default is all.
    chosen = set(filter(None, os.environ.get("BENCH_ONLY", "builds,rebuilds,pushes,serving,balancer,locking").split(",")))
    if chosen & {"builds", "pushes"}: make_big(big)
    if "rebuilds" in chosen: make_small(small)
    if chosen & {"builds", "pushes"}: builds(big)
    if "rebuilds" in chosen: rebuilds(small)
    if "pushes" in chosen: pushes()
    if "serving" in chosen: serving()
    if "balancer" in chosen: balancer()
    if "locking" in chosen: locking()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    memory = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) // (1024 * 1024)
    lines = [f"Machine: {os.cpu_count()} cores ({cpu}), {memory} GiB, {platform.system()} {platform.release()}; "
             f"median of {RUNS} runs, cases and peers alternated; {time.time() - started:.0f} s in all.", "",
             "| case | subject | median | vs | ratio | target | |", "|---|---|---|---|---|---|---|"]
    cell = lambda text: (text or "").replace("|", "\\|")
    for row in rows:
        case, subject, value, unit, baseline, ratio, target = row
        lines.append(f"| {cell(case)} | {cell(subject)} | {fmt(value, unit)} | {cell(baseline)} | {f'{ratio:.2f}×' if ratio is not None else ''} | {target or ''} | {verdict(row)} |")
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(REPO, "Benchmarks", "results.md"), "w") as f: f.write(table + "\n")

if __name__ == "__main__":
    main()
