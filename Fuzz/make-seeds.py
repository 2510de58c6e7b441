#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into Fuzz/corpus/<target>/ (python3's standard library only;
zstd seeds need the zstd command and are skipped without it). The output is deterministic, and committed:
run this again only to change the seeds. Files named regression-* are inputs that crashed a target once;
this script never writes or removes them.

    python3 Fuzz/make-seeds.py
"""
import gzip
import io
import bz2
import lzma
import os
import shutil
import struct
import subprocess
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
REPO = os.path.dirname(HERE)
MTIME = 1700000000
HEX = "0123456789abcdef" * 4
DIGEST = "sha256:" + HEX
DIGEST2 = "sha256:" + "a" * 64


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    assert len(data) < 20 * 1024, f"{target}/{name} is {len(data)} bytes; seeds stay under 20 KB"
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def clear(target):
    folder = os.path.join(CORPUS, target)
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if not name.startswith("regression-"):
                os.remove(os.path.join(folder, name))


# MARK: tar building

class Tar:
    """A tar archive built in memory, entry by entry, deterministically."""

    def __init__(self, format=tarfile.PAX_FORMAT):
        self.buffer = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buffer, mode="w", format=format)

    def _info(self, name, kind, mode=0o644, **extra):
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.mtime = MTIME
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        for key, value in extra.items():
            setattr(info, key, value)
        return info

    def dir(self, name, mode=0o755):
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode))
        return self

    def file(self, name, data=b"", mode=0o644, **extra):
        if isinstance(data, str):
            data = data.encode()
        info = self._info(name, tarfile.REGTYPE, mode, size=len(data), **extra)
        self.tar.addfile(info, io.BytesIO(data))
        return self

    def symlink(self, name, target):
        self.tar.addfile(self._info(name, tarfile.SYMTYPE, 0o777, linkname=target))
        return self

    def hardlink(self, name, target):
        self.tar.addfile(self._info(name, tarfile.LNKTYPE, 0o644, linkname=target))
        return self

    def device(self, name, kind=tarfile.CHRTYPE, major=1, minor=3):
        self.tar.addfile(self._info(name, kind, 0o666, devmajor=major, devminor=minor))
        return self

    def fifo(self, name):
        self.tar.addfile(self._info(name, tarfile.FIFOTYPE, 0o644))
        return self

    def sparse(self, name, real_size, chunks):
        """A GNU sparse file, format 1.0 in PAX headers: `chunks` is [(offset, bytes)]; the rest is holes."""
        sparse_map = f"{len(chunks)}\n" + "".join(f"{offset}\n{len(data)}\n" for offset, data in chunks)
        body = sparse_map.encode()
        body += b"\0" * (-len(body) % 512)
        for _, data in chunks:
            body += data
        info = self._info(f"GNUSparseFile.0/{name}", tarfile.REGTYPE, 0o644, size=len(body))
        info.pax_headers = {
            "GNU.sparse.major": "1",
            "GNU.sparse.minor": "0",
            "GNU.sparse.name": name,
            "GNU.sparse.realsize": str(real_size),
        }
        self.tar.addfile(info, io.BytesIO(body))
        return self

    def bytes(self):
        """The archive with its two zero blocks of end, without the padding to a 10 KiB record."""
        end = self.tar.offset
        self.tar.close()
        return self.buffer.getvalue()[:end] + b"\0" * 1024


def gz(data):
    return gzip.compress(data, mtime=0)


def zst(data):
    if shutil.which("zstd") is None:
        return None
    return subprocess.run(["zstd", "-q", "-c", "-19"], input=data, stdout=subprocess.PIPE, check=True).stdout


def ar(members):
    """A Unix ar archive (the outer format of a .deb)."""
    out = b"!<arch>\n"
    for name, data in members:
        header = f"{name:<16}{MTIME:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}`\n".encode()
        assert len(header) == 60
        out += header + data + (b"\n" if len(data) % 2 else b"")
    return out


def deb(package="hello", data_tar=None, control=None, data_name="data.tar.gz"):
    control = control or f"Package: {package}\nVersion: 1.0\nArchitecture: amd64\nMaintainer: nobody\nDescription: a seed\n"
    control_tar = gz(Tar(tarfile.GNU_FORMAT).dir("./").file("./control", control).bytes())
    data_tar = data_tar if data_tar is not None else gz(Tar(tarfile.GNU_FORMAT).dir("./").dir("./usr/").dir("./usr/bin/")
                                                        .file("./usr/bin/hello", "#!/bin/sh\necho hello\n", 0o755).bytes())
    return ar([("debian-binary", b"2.0\n"), ("control.tar.gz", control_tar), (data_name, data_tar)])


# MARK: seeds per target

def semver():
    t = "FuzzSemVer"
    clear(t)
    seeds = ["1.2.3", "0.0.0", "1.0.0-rc.1", "1.0.0-alpha.beta.1+build.5.sha-1", "2.3.0-rc.1+build.7", "18446744073709551615.0.0",
             "01.2.3", "v1.2.3", "1.2", "^1.2.3", "~1.2", "~1.2.3", "1.x", "1.2.*", "*", ">=1.2.0 <2.0.0", ">= 1.2.0 < 2.0.0",
             "1.2.3 - 2.3.4", "1.x || >=2.5.0", "<1.0.0 || >=3.0.0", ">=1.0.0-rc.1 <1.0.0", "^0.0.3", "^0.x", "<=1.2", ">1.2",
             "=1.2.3", "~>1.2"]
    for i, s in enumerate(seeds):
        write(t, f"seed-{i:02d}", s)


def reference():
    t = "FuzzReference"
    clear(t)
    seeds = ["hello:1.4.0", "team/hello:2.3.0-rc.1+build.7", f"hello@{DIGEST}", f"registry.example/a.b_c__d--e/f@{DIGEST2}",
             "a:b:c", "a/b:", "localhost:5000/x:1.0.0", DIGEST, HEX, "sha512:" + HEX + HEX, "a" * 255, "a/" * 40 + "b:1.0.0"]
    for i, s in enumerate(seeds):
        write(t, f"seed-{i:02d}", s)


def manifest():
    t = "FuzzManifest"
    clear(t)
    config = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": DIGEST, "size": 1024}
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": DIGEST2, "size": 2048,
             "annotations": {"org.opencontainers.image.title": "layer"}}
    import json
    seeds = {
        "image-manifest": {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config,
                           "layers": [layer], "annotations": {"a": "b"}},
        "image-manifest-no-mediatype": {"schemaVersion": 2, "config": config, "layers": []},
        "artifact-with-subject": {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                  "artifactType": "application/vnd.dev.cosign.simplesigning.v1+json", "config": config,
                                  "layers": [layer], "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                                 "digest": DIGEST, "size": 7}},
        "docker-manifest": {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                            "config": dict(config, mediaType="application/vnd.docker.container.image.v1+json"),
                            "layers": [dict(layer, mediaType="application/vnd.docker.image.rootfs.diff.tar.gzip")]},
        "index": {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                  "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": DIGEST, "size": 500,
                                 "platform": {"architecture": "amd64", "os": "linux"},
                                 "annotations": {"org.opencontainers.image.ref.name": "1.0.0"}},
                                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": DIGEST2, "size": 501,
                                 "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}]},
        "index-no-mediatype": {"schemaVersion": 2, "manifests": []},
        "docker-manifest-list": {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
                                 "manifests": []},
        "image-config": {"created": "2023-11-14T22:13:20Z", "architecture": "amd64", "os": "linux",
                         "config": {"User": "1000:1000", "ExposedPorts": {"8080/tcp": {}}, "Env": ["PORT=8080"],
                                    "Entrypoint": ["/app/run"], "Cmd": ["--port", "8080"], "Volumes": {"/data": {}},
                                    "WorkingDir": "/app", "Labels": {"a": "b"}, "StopSignal": "SIGTERM"},
                         "rootfs": {"type": "layers", "diff_ids": [DIGEST, DIGEST2]},
                         "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "imgbuild", "empty_layer": True}]},
        "descriptor": layer,
        "oci-layout": {"imageLayoutVersion": "1.0.0"},
        "schema1": {"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []},
    }
    for name, value in seeds.items():
        write(t, name, json.dumps(value, sort_keys=True, separators=(",", ":")))
    write(t, "escapes", '{"schemaVersion":2,"config":{"mediaType":"a\\u0000\\ud83d\\ude00\\/","digest":"' + DIGEST +
          '","size":1e3},"layers":[]}')


def glob():
    t = "FuzzGlob"
    clear(t)
    seeds = ["**/*.tmp\nsrc/a.tmp\na.tmp\nsrc/static/cache.tmp", "notes\nnotes\nsrc/notes", "*.tmp\nx.tmp\nd/x.tmp",
             "[a-z]*/?.c\nab/x.c\nAB/x.c", "src/**\nsrc\nsrc/a/b", "./a/b/\na/b", "**/**/x\na/b/x", "[!a]*\nb\na", "\\*\n*"]
    for i, s in enumerate(seeds):
        write(t, f"seed-{i:02d}", s)


def imagefile():
    t = "FuzzImagefile"
    clear(t)
    for name in ["hello", "full", "hello-multiarch", "hello-debian"]:
        with open(os.path.join(REPO, "Imagefiles", name, "Imagefile"), "rb") as f:
            write(t, f"example-{name}", f.read())
    write(t, "minimal", "name: hello\nversion: 1.0.0\n")
    write(t, "anchors", "name: &n hello\nversion: 1.0.0\nconfig: {entrypoint: [*n], env: {A: *n}}\n")
    write(t, "copy-escapes", "name: a\nversion: 1.0.0\ncode:\n  - copy: ../secret\n    to: /app/\n")
    write(t, "base-image", f"name: a/b\nversion: 1.0.0-rc.1\nbase: base@{DIGEST}\nplatform: linux/arm64/v8\nsourceDateEpoch: 0\n")
    write(t, "platforms", f"name: a\nversion: 1.0.0\nplatforms: [linux/amd64, linux/arm64/v8, linux/arm64]\n"
                          f"dependencies:\n  - deb: x.deb\n    sha256: {DIGEST[7:]}\n    platform: linux/s390x\n")


def releasespec():
    t = "FuzzReleaseSpec"
    clear(t)
    write(t, "readme", f"""service: hello
image: hello@{DIGEST}
source: /var/lib/imgbuild
replicas: 2
port: 8080
listen: 127.0.0.1:9000
strategy: blue-green
health: {{ path: /healthz, interval: 1s, timeout: 1s, healthyAfter: 2, deadline: 30s }}
runner: runc
stopTimeout: 10s
limits: {{ memory: 256Mi, pids: 1024 }}
unpack: {{ allowSetuid: false, maxSize: 4Gi }}
verify: {{ requireSBOM: true, requireTests: true }}
""")
    write(t, "minimal", f"service: hello\nimage: hello@{DIGEST}\nsource: store\nport: 8080\nlisten: '[::1]:9000'\n")
    write(t, "registry", f"service: web-1\nimage: team/web@{DIGEST2}\nsource: http://127.0.0.1:5000\nport: 80\nlisten: 0.0.0.0:80\n"
                         "strategy: rolling\nrunner: bwrap\nstopTimeout: 1.5s\nhealth: {interval: 200ms, deadline: 2m}\n")
    write(t, "tag-refused", "service: hello\nimage: hello:1.0.0\nsource: /s\nport: 8080\nlisten: 127.0.0.1:9000\n")
    write(t, "capabilities", f"service: hello\nimage: hello@{DIGEST}\nsource: /s\nport: 80\nlisten: 127.0.0.1:80\n"
                             "capabilities: [CAP_NET_BIND_SERVICE, CHOWN]\nwritableRoot: true\n")
    write(t, "keep", f"service: hello\nimage: hello@{DIGEST}\nsource: /s\nport: 80\nlisten: 127.0.0.1:80\nkeep: 5\n")


def routes():
    t = "FuzzRegistryRoutes"
    clear(t)
    sizes = [0, 1, 1024, 2**63 - 1]
    texts = ["/v2/", "/v2", "/v2/_catalog", "/v2/team/hello/tags/list", "/v2/team/hello/manifests/1.0.0",
             f"/v2/hello/manifests/{DIGEST}", f"/v2/hello/blobs/{DIGEST}", "/v2/hello/blobs/uploads/",
             "/v2/hello/blobs/uploads/0b7e1c3a-uuid", f"/v2/hello/referrers/{DIGEST}", "/v2/a/b/blobs/uploads/x/manifests/y",
             "/v2/%2e%2e/blobs/x", "bytes=0-99", "bytes=-5", "bytes=10-", "bytes=0-0,5-9", "0-1023", "bytes 0-1023/2048",
             "bytes=0-9223372036854775807", "bytes 0-9/*"]
    for i, text in enumerate(texts):
        write(t, f"seed-{i:02d}", struct.pack("<q", sizes[i % len(sizes)]) + text.encode())


def framing():
    """Seeds for FuzzHTTPFraming: the first byte is the mode (0 request, 1 response, 3 response to HEAD; high
    bits a split point), then a head and a body as a client or a backend sends them."""
    t = "FuzzHTTPFraming"
    clear(t)
    requests = [
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;e=\"v\"\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
        "GET /a HTTP/1.0\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n",
        "GET /b HTTP/1.1\r\nHost: x\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
        "\r\nGET / HTTP/1.1\nHost: x\n\n",
        # Cookies, as a sticky canary reads them.
        "GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1; imgdeploy-canary=new.7 ;b=2\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\ncookie: x=1\r\nCOOKIE: imgdeploy-canary=old.12\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nCookie: imgdeploy-canary=; ;;\t\r\n\r\n",
    ]
    responses = [
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        "HTTP/1.0 200 OK\r\n\r\nuntil close",
        "HTTP/1.1 100 Continue\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 200\r\nKeep-Alive: timeout=5\r\nConnection: close, X-A\r\nX-A: 1\r\n\r\n",
    ]
    for i, text in enumerate(requests):
        write(t, f"request-{i:02d}", bytes([(i * 8) & 0xFC]) + text.encode())
    for i, text in enumerate(responses):
        write(t, f"response-{i:02d}", bytes([1 | ((i * 12) & 0xFC)]) + text.encode())
    write(t, "response-to-head", bytes([3]) + b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")


def archives():
    """Seeds for the two archive targets: real layers and hostile ones."""
    tars = {
        "layer": Tar().dir("app/").dir("app/bin/").file("app/bin/run", "#!/bin/sh\nexec httpd\n", 0o755)
                      .symlink("app/current", "bin").hardlink("app/bin/run2", "app/bin/run").file("etc/hosts", "127.0.0.1 localhost\n")
                      .bytes(),
        "gnu-longname": Tar(tarfile.GNU_FORMAT).file("d/" + "n" * 150, "x").symlink("l" * 120, "d/" + "n" * 150).bytes(),
        "ustar": Tar(tarfile.USTAR_FORMAT).dir("a").file("a/b", "bytes").bytes(),
        "whiteouts": Tar().dir("etc").file("etc/.wh.passwd").file("var/.wh..wh..opq").file("usr/lib/.wh.cache").bytes(),
        "setuid": Tar().file("bin/su", "x", 0o4755).file("bin/wall", "x", 0o2755).bytes(),
        "fifo": Tar().fifo("run/ctl").bytes(),
        "utf8-names": Tar().file("données/été.txt", "é").file("日本/語", "x").bytes(),
        "empty": Tar().bytes(),
        # Hostile
        "dotdot": Tar().file("../escaped", "pwned").bytes(),
        "dotdot-inner": Tar().dir("a").file("a/../../escaped", "pwned").bytes(),
        "absolute": Tar().file("/tmp/imgbuild-fuzz-absolute", "pwned").bytes(),
        "symlink-escape": Tar().symlink("etc", "../../../../etc").file("etc/passwd-fuzz", "pwned").bytes(),
        "symlink-absolute-then-write": Tar().symlink("host", "/").file("host/imgbuild-fuzz-pwned", "pwned").bytes(),
        "symlink-then-dir-through": Tar().symlink("d", "/tmp").dir("d/sub").file("d/sub/f", "x").bytes(),
        "hardlink-outside": Tar().hardlink("passwd", "../../etc/passwd").bytes(),
        "hardlink-absolute": Tar().hardlink("shadow", "/etc/shadow").bytes(),
        "hardlink-to-symlink": Tar().symlink("s", "/etc/passwd").hardlink("h", "s").bytes(),
        "hardlink-to-dir": Tar().dir("d").hardlink("h", "d").bytes(),
        "device-char": Tar().device("dev/null", tarfile.CHRTYPE, 1, 3).bytes(),
        "device-block": Tar().device("dev/sda", tarfile.BLKTYPE, 8, 0).bytes(),
        "file-over-dir": Tar().dir("a").file("a/f", "x").file("a", "now a file").bytes(),
        "dir-over-symlink": Tar().symlink("a", "/tmp").dir("a").file("a/f", "x").bytes(),
        "whiteout-dotdot": Tar().file(".wh...").file("a/.wh.").bytes(),
        "sparse-small": Tar().sparse("sparse", 4096, [(0, b"head" + b"\0" * 508), (3584, b"tail" + b"\0" * 508)]).bytes(),
    }
    tars["truncated"] = tars["layer"][: len(tars["layer"]) // 2 + 100]
    tars["truncated-header"] = tars["layer"][:300]
    tars["bad-checksum"] = tars["layer"][:148] + b"9999999\0" + tars["layer"][156:]
    compressed = {
        "layer.gz": gz(tars["layer"]),
        "layer.bz2": bz2.compress(tars["layer"], 9),
        "layer.xz": lzma.compress(tars["layer"]),
        "truncated.gz": gz(tars["layer"])[:200],
    }
    z = zst(tars["layer"])
    if z is not None:
        compressed["layer.zst"] = z
    with open(os.path.join(REPO, "fixtures", "archives", "tool.tar.gz"), "rb") as f:
        compressed["fixture-tool.tar.gz"] = f.read()
    with open(os.path.join(REPO, "fixtures", "served", "greeting.tar.zst"), "rb") as f:
        compressed["fixture-greeting.tar.zst"] = f.read()
    debs = {
        "deb": deb(),
        "deb-xz": deb(data_tar=lzma.compress(Tar(tarfile.GNU_FORMAT).dir("./").file("./bin/x", "x", 0o755).bytes()), data_name="data.tar.xz"),
        "deb-hostile-data": deb(data_tar=gz(Tar(tarfile.GNU_FORMAT).file("./../../escaped", "x").bytes())),
        "deb-package-slash": deb(control="Package: ../../etc/x\nVersion: 1\n"),
        "deb-truncated": deb()[:150],
    }
    cpio = b"070707000000000000000000000000000000000000010000000000000000000000000000000000000013000000000000TRAILER!!!\0"
    others = {"cpio": cpio, "zip-empty": b"PK\x05\x06" + b"\0" * 18, "not-an-archive": b"hello, world\n"}

    for t in ["FuzzArchiveImporter", "FuzzRootfsUnpacker"]:
        clear(t)
        for name, data in {**tars, **compressed, **others}.items():
            write(t, name, data)
    for name, data in debs.items():
        write("FuzzArchiveImporter", name, data)

    # Several layers, applied in order: what one layer makes, the next may try to abuse.
    sep = b"\n==LAYER==\n"
    layered = {
        "layers-symlink-then-write": [Tar().symlink("etc", "/").bytes(), Tar().file("etc/imgbuild-fuzz-pwned", "x").bytes()],
        "layers-symlink-dir-then-dir": [Tar().symlink("usr", "../..").bytes(), Tar().dir("usr/lib").file("usr/lib/x", "x").bytes()],
        "layers-whiteout": [Tar().dir("a").file("a/f", "x").file("b", "y").bytes(), Tar().file(".wh.a").file("a2/.wh..wh..opq").bytes()],
        "layers-opaque": [Tar().dir("d").file("d/old", "x").bytes(), Tar().dir("d").file("d/.wh..wh..opq").file("d/new", "y").bytes()],
        "layers-hardlink-across": [Tar().file("f", "x").bytes(), Tar().hardlink("g", "f").bytes()],
        "layers-replace-symlink": [Tar().symlink("a", "b").bytes(), Tar().file("a", "now a file").bytes()],
        "layers-gz": [gz(tars["layer"]), gz(tars["whiteouts"])],
    }
    for name, parts in layered.items():
        write("FuzzRootfsUnpacker", name, sep.join(parts))


def snapshots():
    """Context snapshots as the build cache keeps them (Layers/ContextSnapshot.swift): little-endian
    integers, each text as a u32 length, its bytes and a NUL."""
    def text(value):
        raw = value.encode()
        return struct.pack("<I", len(raw)) + raw + b"\0"

    def stamp(inode, mode=0o100644, size=5, second=1700000000):
        return struct.pack("<QQIqqqqq", 2049, inode, mode, size, second, 1, second, 2)

    def snapshot(sources, folders):
        out = b"imgbuild-context-snapshot-3\n" + struct.pack("<qQ", 1700000000, len(sources))
        for path, resolved in sources:
            out += text(path) + text(resolved)
        out += struct.pack("<Q", len(folders))
        for path, folder_stamp, children in folders:
            out += text(path) + (b"\1" + folder_stamp if folder_stamp else b"\0") + struct.pack("<Q", len(children))
            for name, child_stamp in children:
                out += text(name) + child_stamp
        return out

    clear("FuzzContextSnapshot")
    write("FuzzContextSnapshot", "empty", snapshot([], []))
    write("FuzzContextSnapshot", "folder", snapshot([("/tmp/ctx/app", "/tmp/ctx/app")], [
        ("/tmp/ctx/app", stamp(10, mode=0o40755, size=4096), [("a.txt", stamp(11)), ("link", stamp(12, mode=0o120777, size=5))]),
        ("/tmp/ctx/app/lib", stamp(13, mode=0o40755, size=4096), [("b.txt", stamp(14))]),
    ]))
    write("FuzzContextSnapshot", "single-file", snapshot([("/tmp/ctx/config", "/tmp/ctx/config")], [("/tmp/ctx", None, [("config", stamp(20))])]))
    write("FuzzContextSnapshot", "real-paths", snapshot([("/etc/hostname", "/etc/hostname")], [
        ("/etc", stamp(1, mode=0o40755, size=4096), [("hostname", stamp(2)), ("passwd", stamp(3))]),
        ("/proc/self", None, [("status", stamp(4))]),
    ]))


def debian():
    t = "FuzzDebianArchive"
    clear(t)
    sha = "a" * 64

    def stanza(name, version, *fields, arch="amd64"):
        return "\n".join([f"Package: {name}", f"Version: {version}", f"Architecture: {arch}", *fields,
                          f"Filename: pool/main/{name[0]}/{name}/{name}_{version.split(':')[-1]}_{arch}.deb", "Size: 1234",
                          f"SHA256: {sha}", "Description: a package", " with a long description", " ."]) + "\n\n"
    index = (stanza("app", "1:2.0~rc1-1", "Pre-Depends: libc6 (>= 2.34)", "Depends: debconf (>= 0.5) | debconf-2.0, perl:any, api (>= 2)")
             + stanza("libc6", "2.36-9+deb12u9", "Depends: libgcc-s1", "Breaks: old (<< 1)")
             + stanza("libgcc-s1", "12.2.0-14", "Provides: libgcc1 (= 1:12.2.0-14)")
             + stanza("debconf", "1.5.82", "Provides: debconf-2.0", "Priority: required", arch="all")
             + stanza("perl", "5.36.0-7", "Essential: yes") + stanza("impl", "3", "Provides: api (= 3)", "Conflicts: other"))
    write(t, "index", b"\0" + index.encode())
    write(t, "index-cycle", b"\0" + (stanza("a", "1", "Depends: b") + stanza("b", "1", "Depends: a | c")).encode())
    write(t, "release", b"\1" + f"""Origin: Debian\nSuite: stable\nCodename: bookworm\nDate: Sat, 11 Jul 2026 10:16:37 UTC
Architectures: amd64 arm64\nComponents: main contrib\nAcquire-By-Hash: yes\nNo-Support-for-Architecture-all: Packages
MD5Sum:\n 0123456789abcdef0123456789abcdef 100 main/binary-amd64/Packages
SHA256:\n {sha} 100 main/binary-amd64/Packages\n {"b" * 64} 40 main/binary-amd64/Packages.xz\n""".encode())
    for i, field in enumerate(["libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0", "perl:any, foo [amd64 !i386] <!nocheck>, bar (<< 1:2~)",
                               "a (> 1), b (< 2), c (= 0:1.0-1~bpo1)", "x,,y, | z"]):
        write(t, f"relations-{i}", b"\2" + field.encode())
    write(t, "lock", b"\3" + ('{"lockVersion":1,"inputs":{"repositories":[{"url":"${DEBIAN_MIRROR}","suite":"bookworm","components":["main"],'
                               '"keyring":"k.gpg"}],"packages":["busybox-static"]},"platforms":[{"platform":"linux/amd64","architecture":"amd64",'
                               '"packages":[{"name":"busybox-static","version":"1:1.35.0-4","architecture":"amd64","repository":0,'
                               '"filename":"pool/main/b/busybox/busybox-static_1.35.0-4_amd64.deb","size":928188,"sha256":"' + sha +
                               '","requiredBy":["requested: busybox-static"]}]}]}').encode())
    with open(os.path.join(REPO, "Imagefiles", "hello-debian", "Imagefile.lock"), "rb") as f:
        write(t, "lock-example", b"\3" + f.read())


if __name__ == "__main__":
    for make in [semver, reference, manifest, glob, imagefile, releasespec, routes, framing, archives, snapshots, debian]:
        make()
    for target in sorted(os.listdir(CORPUS)):
        folder = os.path.join(CORPUS, target)
        files = os.listdir(folder)
        print(f"{target}: {len(files)} seeds, {sum(os.path.getsize(os.path.join(folder, f)) for f in files)} bytes")
