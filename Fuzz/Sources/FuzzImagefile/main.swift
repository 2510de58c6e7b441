import FuzzSupport
import Imagefile
import OCI
import SemVer

/// Imagefiles (YAML), as `imgbuild build` reads them from a build context.
///
/// Invariants: a parsed Imagefile's name and version print back to a reference that parses; every
/// context path stays in the context (no absolute path, no climbing above it with '..').
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImagefile(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = fuzzText(fuzzBytes(data, size))
    guard let imagefile = try? Imagefile.parse(text, path: "Imagefile", contextDirectory: "/nonexistent/context") else { return 0 }
    let reference = "\(imagefile.name):\(imagefile.version)"
    fuzzCheck((try? Reference(parsing: reference)) != nil, "name and version print as '\(reference)', which is no reference")
    fuzzCheck((try? Version(parsing: imagefile.version.description)) == imagefile.version, "version \(imagefile.version) does not round-trip")
    for copy in imagefile.runtime + imagefile.code {
        fuzzCheck(staysInContext(copy.source), "copy source '\(copy.source)' leaves the build context")
        fuzzCheck(copy.destination.hasPrefix("/") && !copy.destination.split(separator: "/").contains(".."),
                  "copy destination '\(copy.destination)' is not an absolute path in the image")
        for glob in copy.excludes { _ = glob.matches("a/b/c.tmp") }
    }
    // Dependencies may name files outside the context (they are pinned by sha256); where they go must stay in the image.
    for dependency in imagefile.dependencies {
        fuzzCheck(!dependency.destination.hasPrefix("/"), "dependency destination '\(dependency.destination)' is not a layer path")
        fuzzCheck(!dependency.destination.split(separator: "/").contains(".."), "dependency destination '\(dependency.destination)' climbs with '..'")
    }
    return 0
}

/// Whether a relative path never climbs above its start.
func staysInContext(_ path: String) -> Bool {
    guard !path.hasPrefix("/") else { return false }
    var depth = 0
    for component in path.split(separator: "/") {
        if component == ".." { depth -= 1 } else if component != "." { depth += 1 }
        if depth < 0 { return false }
    }
    return true
}

/// The entry point SwiftPM links this executable with: libFuzzer's driver over `fuzzImagefile`.
@_cdecl("FuzzImagefile_main")
public func fuzzImagefileMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv, fuzzImagefile)
}
