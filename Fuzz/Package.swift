// swift-tools-version: 6.0
// libFuzzer targets for imgbuild's parsers of outside input (issue 12, "Hostile input never crashes").
//
// The code under test is the main package's own, compiled again here so that it is instrumented for
// coverage (-sanitize=fuzzer) and checked by AddressSanitizer, which a dependency on the main package
// would not give. `Main` is a symlink to the main package's `Sources`; each module a harness needs is a
// target of this package with its path there, and its dependencies are read from its own `import`
// lines, so this manifest follows the main package's module graph without being edited in step:
// a main-package module a harness needs brings in, transitively, every main-package module it
// imports (Swift modules and C module maps alike), and Yams from its package. SwiftPM caches a manifest's
// result by the manifest's own text, so build with `--manifest-cache none` for a changed import to count.
//
// Build and run: see README.md (or .ci/fuzz at the repository root).
import Foundation
import PackageDescription

/// The harnesses: one libFuzzer binary each, with the main-package modules it tests.
let harnesses: [(name: String, modules: [String])] = [
    ("FuzzSemVer", ["SemVer"]),
    ("FuzzReference", ["OCI"]),
    ("FuzzManifest", ["OCI"]),
    ("FuzzGlob", ["Glob"]),
    ("FuzzImagefile", ["Imagefile", "OCI", "SemVer"]),
    ("FuzzReleaseSpec", ["ReleaseSpec", "OCI"]),
    ("FuzzArchiveImporter", ["Layers"]),
    ("FuzzRootfsUnpacker", ["Layers"]),
    ("FuzzContextSnapshot", ["Layers"]),
    ("FuzzRegistryRoutes", ["RegistryRoutes", "OCI"]),
    ("FuzzHTTPFraming", ["HTTPFraming"]),
    ("FuzzDebianArchive", ["DebianArchive", "PackageLock"]),
]

/// Every Swift module is built with coverage instrumentation and AddressSanitizer. Harnesses are parsed
/// as libraries (no top-level code): each defines `LLVMFuzzerTestOneInput` and the entry point SwiftPM
/// links an executable with on Linux (`<Target>_main`, through `--defsym main=…`), which hands over to
/// libFuzzer's driver; where SwiftPM does not rename the entry point, libFuzzer's own `main` runs.
let instrumented: [SwiftSetting] = [.unsafeFlags(["-sanitize=fuzzer,address"])]
let harness: [SwiftSetting] = [.unsafeFlags(["-sanitize=fuzzer,address", "-parse-as-library"])]
let linkFuzzer: [LinkerSetting] = [.unsafeFlags(["-sanitize=fuzzer,address"])]

// MARK: The main package's modules, found from their imports

let packageDirectory = URL(fileURLWithPath: Context.packageDirectory)
let mainSources = packageDirectory.appendingPathComponent("Main")
let files = FileManager.default

/// The modules an external package provides, by the name they are imported with.
let externalProducts: [String: Target.Dependency] = ["Yams": .product(name: "Yams", package: "Yams")]

func isDirectory(_ url: URL) -> Bool {
    var directory: ObjCBool = false
    return files.fileExists(atPath: url.path, isDirectory: &directory) && directory.boolValue
}

/// The modules that the Swift files below `folder` import.
func imports(in folder: URL) -> Set<String> {
    var found = Set<String>()
    let walker = files.enumerator(at: folder, includingPropertiesForKeys: nil)
    while let file = walker?.nextObject() as? URL {
        guard file.pathExtension == "swift", let text = try? String(contentsOf: file, encoding: .utf8) else { continue }
        for line in text.split(separator: "\n") {
            // `import X`, `@testable import X`, `internal import X`, `import struct X.Y`, …
            var words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            while let first = words.first, first.hasPrefix("@") || ["public", "package", "internal", "private", "fileprivate"].contains(first) {
                words.removeFirst()
            }
            guard words.first == "import", words.count >= 2 else { continue }
            var module = words[1]
            if ["struct", "class", "enum", "protocol", "typealias", "func", "var", "let"].contains(module), words.count >= 3 { module = words[2] }
            if let dot = module.firstIndex(of: ".") { module = String(module[..<dot]) }
            found.insert(module)
        }
    }
    return found
}

/// Every main-package module the harnesses need, with the main-package modules it imports.
let moduleImports: [String: Set<String>] = {
    var found: [String: Set<String>] = [:]
    var pending = Set(harnesses.flatMap(\.modules))
    while let module = pending.popFirst() {
        let folder = mainSources.appendingPathComponent(module)
        guard isDirectory(folder) else { fatalError("Fuzz/Package.swift: no module \(module) in the main package's Sources") }
        let local = imports(in: folder).filter { isDirectory(mainSources.appendingPathComponent($0)) || externalProducts[$0] != nil }
        found[module] = local
        for dependency in local where found[dependency] == nil && externalProducts[dependency] == nil { pending.insert(dependency) }
    }
    return found
}()

func dependencies(of module: String) -> [Target.Dependency] {
    moduleImports[module, default: []].sorted().map { externalProducts[$0] ?? .target(name: $0) }
}

let mainTargets: [Target] = moduleImports.keys.sorted().map { module in
    let path = "Main/" + module
    if files.fileExists(atPath: mainSources.appendingPathComponent(module).appendingPathComponent("module.modulemap").path) {
        // A C library's module map: its headers are in the system include path, it links itself.
        return .systemLibrary(name: module, path: path)
    }
    return .target(name: module, dependencies: dependencies(of: module), path: path, swiftSettings: instrumented)
}

// MARK: The package

let package = Package(
    name: "imgbuild-fuzz",
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: mainTargets + [
        // libFuzzer's LLVMFuzzerRunDriver, declared (the fuzzer runtime that -sanitize=fuzzer links defines it).
        .systemLibrary(name: "CLibFuzzer"),
        // What the harnesses share: invariant checks that trap, scratch folders, the driver's entry.
        .target(name: "FuzzSupport", dependencies: ["CLibFuzzer"], swiftSettings: instrumented),
    ] + harnesses.map { entry in
        .executableTarget(name: entry.name, dependencies: ["FuzzSupport"] + entry.modules.map { .target(name: $0) },
                          swiftSettings: harness, linkerSettings: linkFuzzer)
    }
)
