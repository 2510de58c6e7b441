import Foundation
import Layers
import Testing
import TestScheduling

/// Layers whose symlinks, each harmless on its own, climb out of the root together.
@Suite("Hostile archives: chains of symlinks", .mayBlock)
struct SymlinkChainTests {
    /// Symlinks, in the order the layers hold them, one array per layer.
    struct Chain: Sendable, CustomTestStringConvertible {
        var name: String
        var layers: [[(String, String)]]
        /// The link the refusal names.
        var refused: String
        var testDescription: String { name }
    }

    static let escaping: [Chain] = [
        Chain(name: "x/up -> .., then x/esc -> up/..", layers: [[("x/up", ".."), ("x/esc", "up/..")]], refused: "x/esc"),
        Chain(name: "x/esc -> up/.. first, then x/up -> ..", layers: [[("x/esc", "up/.."), ("x/up", "..")]], refused: "x/esc"),
        Chain(name: "x/esc in one layer, x/up in the next", layers: [[("x/esc", "up/..")], [("x/up", "..")]], refused: "x/esc"),
        Chain(name: "an absolute link through x/up", layers: [[("x/up", ".."), ("a", "/x/up/..")]], refused: "a"),
        Chain(name: "three links: x/l3 -> l2/.., x/l2 -> l1, x/l1 -> ..", layers: [[("x/l3", "l2/.."), ("x/l2", "l1"), ("x/l1", "..")]], refused: "x/l3"),
        Chain(name: "etc -> x/esc/x/esc/etc", layers: [[("x/up", ".."), ("x/esc", "up/..")], [("etc", "x/esc/x/esc/etc")]], refused: "etc"),
    ]

    @Test("a chain of symlinks that climbs out of the root together is refused, whatever order and layers make it", arguments: escaping)
    func escapingChain(_ chain: Chain) throws {
        let layers = try chain.layers.enumerated().map { index, links in
            var tar = TarBytes()
            for (name, target) in links { tar.symlink(name, to: target) }
            return (try tar.write(), "layer \(index + 1)")
        }
        let root = NSTemporaryDirectory() + "chain-root-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let error = #expect(throws: LayerError.self) {
            try RootfsUnpacker(policy: UnpackPolicy(applyOwners: false)).unpack(layers: layers, into: root)
        }
        let text = error?.description ?? ""
        #expect(text.contains("unsafe entry '\(chain.refused)'") && text.contains("leads outside the image root through other symlinks"), "\(text)")
    }

    @Test("symlinks that stay inside are kept: chains through '..', absolute links, dangling links and loops")
    func insideChains() throws {
        var tar = TarBytes()
        tar.file("usr/bin/busybox", Array("#!".utf8), mode: 0o755)
        for (name, target) in [
            ("bin", "usr/bin"), ("usr/bin/sh", "busybox"), ("lib", "usr/lib"), ("usr/lib64", "../lib"),
            ("x/up", ".."), ("x/same", "up/x/up/x"), ("x/sh", "up/bin/sh"), ("etc/mtab", "/proc/self/mounts"),
            ("loop1", "loop2"), ("loop2", "loop1"), ("x/dangling", "missing/../../bin"), ("etc/alternatives/sh", "/bin/sh"),
        ] {
            tar.symlink(name, to: target)
        }
        let root = NSTemporaryDirectory() + "chain-root-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let summary = try RootfsUnpacker(policy: UnpackPolicy(applyOwners: false)).unpack(layers: [(try tar.write(), "inside")], into: root)
        #expect(summary.entries == 13)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: root + "/x/same") == "up/x/up/x")
    }
}
