import Foundation
import Layers
import OCI
import Testing
import TestScheduling

@Suite("The files an image's layers leave", .mayBlock)
struct LayerInventoryTests {
    func layer(_ build: (inout TarBytes) -> Void) throws -> (String, Digest) {
        var tar = TarBytes()
        build(&tar)
        let path = try tar.write(named: "layer-\(UUID().uuidString.prefix(8)).tar")
        return (path, try Digest.ofFile(atPath: path).digest)
    }

    @Test("a file that replaces a folder takes what was below it away, and a folder replaces a file, as an unpack does")
    func replacements() throws {
        let first = try layer { tar in
            tar.header("d/", type: "5", size: 0, mode: 0o755)
            tar.file("d/x", Array("x".utf8))
            tar.file("d/y", Array("y".utf8))
            tar.file("etc/f", Array("a file".utf8))
            tar.file("keep/z", Array("z".utf8))
        }
        let second = try layer { tar in
            tar.file("d", Array("now a file".utf8), mode: 0o600)
            tar.header("etc/f/", type: "5", size: 0, mode: 0o755)
            tar.file("etc/f/inner", Array("inner".utf8))
            tar.symlink("keep", to: "elsewhere")
        }
        let (files, _) = try LayerInventory.read(layers: [first, second]) { _ in false }
        #expect(files.map(\.path) == ["d", "etc/f/inner"], "\(files.map(\.path))")
        #expect(files.first?.mode == 0o600)
    }

    @Test("owners follow the same rules as the file list: an opaque folder hides what earlier layers put in it, a whiteout hides its path, a file replacing a folder takes what was below it")
    func ownersFollowTheMergeRules() throws {
        let first = try layer { tar in
            tar.header("d/", type: "5", size: 0, mode: 0o755)
            tar.file("d/x", Array("x".utf8))
            tar.header("e/", type: "5", size: 0, mode: 0o755)
            tar.file("e/old", Array("old".utf8))
            tar.file("gone", Array("gone".utf8))
        }
        let second = try layer { tar in
            tar.file("d", Array("now a file".utf8))
            tar.file("e/.wh..wh..opq", [])
            tar.file("e/new", Array("new".utf8))
            tar.file(".wh.gone", [])
        }
        let owners = try LayerInventory.owners(layers: [first, second])
        #expect(Set(owners.keys) == ["d", "e", "e/new"], "\(owners.keys.sorted())")
        let (files, _) = try LayerInventory.read(layers: [first, second]) { _ in false }
        #expect(files.map(\.path) == ["d", "e/new"], "\(files.map(\.path))")
    }

    @Test("a hard link is listed with its target's hashes, and its contents are kept only if it is asked for")
    func hardLinks() throws {
        let only = try layer { tar in
            tar.file("var/lib/dpkg/status", Array("Package: a\n".utf8))
            tar.header("backup/status", type: "1", size: 0, link: "var/lib/dpkg/status")
        }
        let (files, kept) = try LayerInventory.read(layers: [only]) { $0 == "var/lib/dpkg/status" }
        #expect(files.map(\.path) == ["backup/status", "var/lib/dpkg/status"] && files[0].sha256 == files[1].sha256, "\(files)")
        #expect(Set(kept.keys) == ["var/lib/dpkg/status"], "\(kept.keys.sorted())")
    }

    @Test("a kept file over the limit is listed but not kept, never in part")
    func keepLimit() throws {
        let big = [UInt8](repeating: 0x61, count: 3000)
        let only = try layer { tar in
            tar.file("var/lib/dpkg/status", big)
            tar.file("small", Array("small".utf8))
        }
        let (files, kept) = try LayerInventory.read(layers: [only], keepLimit: 1024) { _ in true }
        #expect(files.count == 2 && kept["var/lib/dpkg/status"] == nil && kept["small"] == Array("small".utf8))
        let (_, whole) = try LayerInventory.read(layers: [only], keepLimit: 4096) { _ in true }
        #expect(whole["var/lib/dpkg/status"] == big)
    }
}
