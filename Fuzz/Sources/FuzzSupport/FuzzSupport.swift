import CLibFuzzer
#if canImport(Glibc)
import Glibc
#endif

/// Traps, after saying which invariant failed, when `condition` is false. libFuzzer reports the trap as a
/// crash ("deadly signal") and saves the input that caused it.
public func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                      file: StaticString = #fileID, line: UInt = #line) {
    if !condition() {
        fatalError("fuzz invariant violated: \(message())", file: file, line: line)
    }
}

/// The fuzzer's bytes as a buffer (libFuzzer may pass a null pointer for an empty input).
public func fuzzBytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> UnsafeBufferPointer<UInt8> {
    UnsafeBufferPointer(start: size > 0 ? data : nil, count: size > 0 ? size : 0)
}

/// The bytes as text, invalid UTF-8 replaced by U+FFFD, as a server or reader decoding them leniently would.
public func fuzzText(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
    String(decoding: bytes, as: UTF8.self)
}

/// A folder of this process's own under the system's temporary folder, made once, for files an input is
/// written to and trees it is unpacked into. Harnesses empty it after every input.
public enum Scratch {
    public static let folder: String = {
        let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(base)/imgbuild-fuzz-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard let made else { fatalError("cannot make a scratch folder under \(base): \(String(cString: strerror(errno)))") }
        let path = String(cString: made)
        atexit { Scratch.removeContents(of: Scratch.folder); rmdir(Scratch.folder) }
        return path
    }()

    /// Writes `bytes` to `name` in the scratch folder and returns its path.
    public static func write(_ bytes: UnsafeBufferPointer<UInt8>, to name: String) -> String {
        let path = folder + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { fatalError("cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 { if errno == EINTR { continue }; fatalError("cannot write \(path): \(String(cString: strerror(errno)))") }
            offset += n
        }
        return path
    }

    /// Makes the folder `name` in the scratch folder and returns its path.
    public static func makeFolder(_ name: String) -> String {
        let path = folder + "/" + name
        guard mkdir(path, 0o755) == 0 else { fatalError("cannot make \(path): \(String(cString: strerror(errno)))") }
        return path
    }

    /// The names in `path` (not `.` and `..`), sorted; nil when it cannot be listed.
    public static func names(in path: String) -> [String]? {
        guard let stream = opendir(path) else { return nil }
        defer { closedir(stream) }
        var names: [String] = []
        while let item = readdir(stream) {
            let name = withUnsafePointer(to: item.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Empties the scratch folder, never following a symlink, whatever modes the unpacked files have.
    public static func clear() { removeContents(of: folder) }

    static func removeContents(of path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        removeChildren(fd)
    }

    private static func removeChildren(_ directory: Int32) {
        let copy = dup(directory)
        guard copy >= 0, let stream = fdopendir(copy) else { return }
        var names: [String] = []
        while let item = readdir(stream) {
            let name = withUnsafePointer(to: item.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(stream)
        for name in names {
            var info = stat()
            guard fstatat(directory, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            if (info.st_mode & S_IFMT) == S_IFDIR {
                _ = fchmodat(directory, name, 0o700, 0)
                let child = openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                if child >= 0 { removeChildren(child); close(child) }
                if unlinkat(directory, name, AT_REMOVEDIR) != 0 {
                    fatalError("cannot remove scratch folder '\(name)': \(String(cString: strerror(errno)))")
                }
            } else if unlinkat(directory, name, 0) != 0 {
                fatalError("cannot remove scratch file '\(name)': \(String(cString: strerror(errno)))")
            }
        }
    }
}

/// Runs libFuzzer's driver (command line, corpus, mutations) over `testOneInput`; what a harness's
/// `<Target>_main` returns.
public func runLibFuzzer(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                         _ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> Int32 {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments, testOneInput)
}
