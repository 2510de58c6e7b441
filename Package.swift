// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "imgbuild",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "imgbuild", targets: ["imgbuild"]),
        .executable(name: "imgdeploy", targets: ["imgdeploy"]),
        .library(name: "OCI", targets: ["OCI"]),
        .library(name: "SemVer", targets: ["SemVer"]),
        .library(name: "Store", targets: ["Store"]),
        .library(name: "Builder", targets: ["Builder"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.30.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.20.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
    ],
    targets: [
        // System libraries: module maps only. Each links its library's static archive (`link ":libX.a"` in
        // the module map), so no pkg-config here: its `-lX` would bind the shared library first.
        .systemLibrary(name: "CArchive", providers: [.apt(["libarchive-dev", "nettle-dev", "libxml2-dev", "libicu-dev", "liblzma-dev", "libbz2-dev", "liblz4-dev", "libacl1-dev"])]),
        .systemLibrary(name: "CCrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CZstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CSeccomp", providers: [.apt(["libseccomp-dev"])]),
        // openat2(2), which the C library does not wrap: reads that cannot leave an image's root.
        .systemLibrary(name: "COpenat2"),
        // Extended attributes (file capabilities, ACLs), hashed into a release's tree.
        .systemLibrary(name: "CXattr"),

        // Value types of the OCI image spec, digests and canonical JSON.
        .target(name: "OCI", dependencies: ["CCrypto"]),
        // Semantic Versioning 2.0.0.
        .target(name: "SemVer"),
        // Path patterns for `exclude`.
        .target(name: "Glob"),
        // Reproducible tar layers, archive reading, gzip/zstd streams.
        .target(name: "Layers", dependencies: ["OCI", "Glob", "DebianArchive", "CArchive", "CZstd", "CZlib", "CCrypto", "COpenat2"]),
        // The content-addressed local registry directory.
        .target(name: "Store", dependencies: ["OCI", "SemVer"]),
        // YAML documents read with file:line:column in every error (Imagefiles, release specs).
        .target(name: "DocumentReader", dependencies: [.product(name: "Yams", package: "Yams")]),
        // Debian's formats: versions and their order, relations, control paragraphs, Release and Packages files.
        .target(name: "DebianArchive"),
        // The Imagefile format.
        .target(name: "Imagefile", dependencies: ["OCI", "SemVer", "Glob", "DocumentReader", "DebianArchive", .product(name: "Yams", package: "Yams")]),
        // `Imagefile.lock`: Debian packages resolved into their closure, pinned per platform.
        .target(name: "PackageLock", dependencies: ["DebianArchive", "Imagefile", "OCI"]),
        // Debian archives read over HTTP, their signatures checked by gpgv and every index by its hash; `imgbuild lock`.
        .target(name: "DebianRepository", dependencies: [
            "DebianArchive", "PackageLock", "Imagefile", "OCI", "CArchive",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // Imagefile -> layers -> image in the store.
        .target(name: "Builder", dependencies: [
            "Imagefile", "DocumentReader", "Layers", "Store", "OCI", "SemVer", "PackageLock",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // A no-op build remembered by its command, and answered again while everything it read stats the same.
        .target(name: "BuildReplay", dependencies: ["Builder", "Imagefile", "Layers", "OCI", "PackageLock", "Store"]),
        // After the build: an image's tests, its version tag, and its attestations, in that order.
        .target(name: "BuildPipeline", dependencies: ["Builder", "ImageChecks", "Attestations", "Imagefile", "Layers", "OCI", "Store"]),
        // OCI distribution: push, pull and copy between the store, OCI layouts and registries.
        .target(name: "Distribution", dependencies: [
            "OCI", "Store", "SemVer",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        // The registry protocol's parsers, free of any HTTP server: routes, Range and Content-Range.
        .target(name: "RegistryRoutes", dependencies: ["OCI"]),
        // The process limits a server raises for the connections it admits (open files), and which process is
        // which (its start time, which with its pid names it for good).
        .target(name: "ProcessLimits"),
        // The logs of fronts and instances (processes that outlive the daemon): appended to, read from their end,
        // and kept to a size by copying and truncating.
        .target(name: "LogFiles"),
        // HOST:PORT, the one parser of where to listen or connect.
        .target(name: "HostPort"),
        // SIGTERM and SIGINT as a call to drain a server before it ends.
        .target(name: "TerminationSignals"),
        // An OCI distribution-spec registry over the store, enforcing immutable versions.
        .target(name: "RegistryServer", dependencies: [
            "OCI", "Store", "SemVer", "TerminationSignals", "RegistryRoutes", "ProcessLimits",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "HummingbirdTLS", package: "hummingbird"),
            .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // ECDSA P-256 keys and signatures (libcrypto) over cosign-style simple-signing payloads.
        .target(name: "Signing", dependencies: ["OCI", "CCrypto"]),
        // An Imagefile's tests run against a built image: files, config, and commands under runc.
        .target(name: "ImageChecks", dependencies: ["Imagefile", "Layers", "OCI", "Runtime", "Store"]),
        // Artifacts that refer to images: signatures, SPDX SBOMs, provenance statements and test records.
        .target(name: "Attestations", dependencies: ["OCI", "Store", "Signing", "Layers", "DebianArchive"]),
        // The release spec imgdeploy reads: an image pinned by digest, where it comes from, how it rolls out.
        .target(name: "ReleaseSpec", dependencies: ["OCI", "DocumentReader", "HostPort", .product(name: "Yams", package: "Yams")]),
        // Instances of a release under runc or bubblewrap, each on its own overlay root.
        .target(name: "Runtime", dependencies: ["OCI", "Layers", "InstanceNetwork", "CSeccomp", "CIdmappedMount", "ProcessLimits", "LogFiles", .product(name: "NIOConcurrencyHelpers", package: "swift-nio")]),
        // The deployer's releases: images fetched by digest, verified, and unpacked safely into read-only folders.
        .target(name: "UnpackedReleases", dependencies: ["OCI", "Store", "Layers", "Distribution", "ReleaseSpec", "Signing", "Attestations", "CXattr", .product(name: "NIOConcurrencyHelpers", package: "swift-nio")]),
        // HTTP/1.1 message boundaries for a relay: heads parsed and checked, bodies delimited, heads rewritten.
        .target(name: "HTTPFraming"),
        // The HTTP reverse proxy at a service's front, with backends switched without dropping a request.
        .target(name: "LoadBalancer", dependencies: [
            "ProcessLimits", "InstanceNetwork", "HTTPFraming",
            .product(name: "Histogram", package: "hdrhistogram-swift"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        // An instance's private network namespace: created with only loopback, and connected to from outside.
        .target(name: "CNetworkNamespace"),
        .target(name: "InstanceNetwork", dependencies: ["CNetworkNamespace"]),
        // Idmapped mounts: a release's files seen with their owners shifted, for instances in a user namespace.
        .target(name: "CIdmappedMount"),
        // SCM_RIGHTS: a listening socket handed from one process to another.
        .target(name: "CDescriptorPassing"),
        // The front as a process of its own: its control socket, the handover of its listening socket, and
        // the daemon's client and launcher for it.
        .target(name: "Front", dependencies: [
            "LoadBalancer", "TerminationSignals", "CDescriptorPassing", "ProcessLimits", "LogFiles",
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // The deployer daemon's core: its services, the rollout decisions (RolloutMachine) and their doing (instances,
        // health checks, the front, restarts), history, rollback, re-adoption and the rollback window.
        .target(name: "DeployerCore", dependencies: [
            "OCI", "ReleaseSpec", "UnpackedReleases", "Runtime", "LoadBalancer", "Front", "Layers", "InstanceNetwork", "ProcessLimits", "LogFiles",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        // imgdeploy's daemon and its client: HTTP on a Unix socket.
        .target(name: "DeployControl", dependencies: [
            "DeployerCore", "ReleaseSpec", "UnpackedReleases", "TerminationSignals", "Front",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
        ]),
        // Kubernetes manifests of a release, pinned by digest.
        .target(name: "Kubernetes", dependencies: ["ReleaseSpec", "OCI", .product(name: "Yams", package: "Yams")]),
        // What changed between two images: layers, files, Debian packages, configuration.
        .target(name: "ImageDiff", dependencies: ["Store", "Layers", "OCI", "DebianArchive"]),
        // Thin command-line front end of the builder, the store and the registry.
        .executableTarget(name: "imgbuild", dependencies: [
            "Builder", "BuildPipeline", "BuildReplay", "Store", "OCI", "SemVer", "Distribution", "RegistryServer", "Signing", "Attestations", "ImageChecks", "Imagefile",
            "ImageDiff", "HostPort", "Layers", "DebianRepository", "PackageLock",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ], linkerSettings: [
            // `--static-swift-stdlib` links with `-export-dynamic`: every symbol of the executable in its
            // dynamic table (38,000). Nothing looks them up, but the runtime's backtracer calls `dladdr`
            // at start, which walks them all: half a millisecond at every start, a no-op build's too.
            // (Whatever would look up the executable's own symbols with dlsym finds none: SwiftNIO's
            // opt-in install of its event loops as the global executor is one such; it is not used.)
            .unsafeFlags(["-Xlinker", "--no-export-dynamic"]),
        ], plugins: ["BuildInfoPlugin"]),
        // Records the commit a binary is built from, for --version.
        .plugin(name: "BuildInfoPlugin", capability: .buildTool(), path: "Sources/BuildInfoPlugin"),
        // Thin command-line front end of the deployer.
        .executableTarget(name: "imgdeploy", dependencies: [
            "DeployControl", "DeployerCore", "ReleaseSpec", "UnpackedReleases", "Kubernetes", "LoadBalancer", "Front", "TerminationSignals", "HostPort",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),

        .testTarget(name: "OCITests", dependencies: ["TestScheduling", "OCI"]),
        .testTarget(name: "SemVerTests", dependencies: ["TestScheduling", "SemVer"]),
        .testTarget(name: "LayersTests", dependencies: ["TestScheduling", "Layers", "OCI", "Glob"]),
        .testTarget(name: "DebianArchiveTests", dependencies: ["TestScheduling", "DebianArchive", "PackageLock"]),
        .testTarget(name: "ImagefileTests", dependencies: ["TestScheduling", "Imagefile", "OCI"]),
        .testTarget(name: "StoreTests", dependencies: ["TestScheduling", "Store", "OCI", "SemVer"]),
        .testTarget(name: "LoadBalancerTests", dependencies: ["TestScheduling", "LoadBalancer", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                                                           .product(name: "Prometheus", package: "swift-prometheus")]),
        .testTarget(name: "HTTPFramingTests", dependencies: ["TestScheduling", "HTTPFraming"]),
        .testTarget(name: "HostPortTests", dependencies: ["TestScheduling", "HostPort"]),
        .testTarget(name: "LogFilesTests", dependencies: ["TestScheduling", "LogFiles"]),
        .testTarget(name: "RegistryRoutesTests", dependencies: ["TestScheduling", "RegistryRoutes", "OCI"]),
        .testTarget(name: "RegistryServerTests", dependencies: [
            "TestScheduling", "RegistryServer", "Store", "OCI",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .testTarget(name: "DistributionTests", dependencies: [
            "TestScheduling", "Distribution", "OCI", "Store", "CommandLineTesting", .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .testTarget(name: "RuntimeTests", dependencies: ["TestScheduling", "Runtime", "OCI"]),
        .testTarget(name: "ImageChecksTests", dependencies: ["TestScheduling", "ImageChecks", "Imagefile", "Store", "Attestations", "OCI"]),
        .testTarget(name: "DeployerCoreTests", dependencies: [
            "TestScheduling", "DeployerCore", "UnpackedReleases", "ReleaseSpec", "Runtime", "Store", "OCI", "Front", "LoadBalancer", "InstanceNetwork", "LogFiles",
            "CommandLineTesting",
        ]),
        // End-to-end tests drive the built executables against real peers; what both suites share
        // (running a program, scratch folders, free ports, raw TCP connections) is a library of its own.
        .target(name: "CommandLineTesting", path: "Tests/CommandLineTesting"),
        // Every suite runs its tests on threads of their own (`.mayBlock`): a test that blocks one (a child
        // process, a socket, a sleep) holds up no other, as it did on the cooperative pool.
        .target(name: "TestScheduling", path: "Tests/TestScheduling"),
        .testTarget(name: "BuildReplayTests", dependencies: ["TestScheduling", "BuildReplay", "Builder", "Layers", "OCI", "PackageLock"]),
        .testTarget(name: "imgbuildTests", dependencies: ["TestScheduling", "CommandLineTesting"]),
        .testTarget(name: "imgdeployTests", dependencies: ["TestScheduling", "CommandLineTesting", "OCI", .product(name: "Yams", package: "Yams")]),
    ]
)
