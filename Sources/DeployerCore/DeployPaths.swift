import Foundation

/// Where the deployer keeps its state.
///
/// ```
/// STATE/store/                 an imgbuild store: every image fetched, by digest
/// STATE/releases/sha256-<hex>/ unpacked, read-only release folders: rootfs/, release.json, tree.txt
/// STATE/instances/<id>/        each running instance's overlay root (and idmapped lower view), its
///                              pinned network namespace (netns), bundle or seccomp program, output.log
/// STATE/runc/                  runc's own state for this deployer's containers
/// STATE/services/<name>/       current.json (the release serving), history.jsonl, instances.json (what
///                              the next daemon adopts) and rollout.json (the rollout in flight)
/// STATE/fronts/<name>.sock     the control socket of the service's front (a process of its own), and its .log
/// STATE/imgdeploy.sock         the daemon's control socket
/// ```
public struct DeployPaths: Sendable {
    public let root: String

    public init(root: String) {
        self.root = root
    }

    /// `$IMGDEPLOY_STATE`, else /var/lib/imgdeploy for root, else `$XDG_STATE_HOME/imgdeploy` (~/.local/state/imgdeploy).
    public static func defaultRoot(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let explicit = environment["IMGDEPLOY_STATE"], !explicit.isEmpty { return explicit }
        if geteuid() == 0 { return "/var/lib/imgdeploy" }
        let state = environment["XDG_STATE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.local/state")
        return state + "/imgdeploy"
    }

    public var socket: String { root + "/imgdeploy.sock" }
    public var instances: String { root + "/instances" }
    public var runcState: String { root + "/runc" }
    public var services: String { root + "/services" }
    public func service(_ name: String) -> String { services + "/" + name }
    public func currentSpec(_ name: String) -> String { service(name) + "/current.json" }
    public func history(_ name: String) -> String { service(name) + "/history.jsonl" }
    public func instanceRecords(_ name: String) -> String { service(name) + "/instances.json" }
    public func rolloutInFlight(_ name: String) -> String { service(name) + "/rollout.json" }
    public var fronts: String { root + "/fronts" }
    public func frontControl(_ name: String) -> String { fronts + "/" + name + ".sock" }
    public func frontLog(_ name: String) -> String { fronts + "/" + name + ".log" }
}

/// A free TCP port on 127.0.0.1, found by binding port 0.
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    return Int(UInt16(bigEndian: address.sin_port))
}
