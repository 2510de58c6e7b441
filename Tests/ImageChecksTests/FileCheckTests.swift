import Foundation
@testable import ImageChecks
@testable import Imagefile
import Store
import Testing
import TestScheduling

/// Needs `.testTarget(name: "ImageChecksTests", dependencies: ["ImageChecks", "Imagefile", "Store"])` (uses @testable: fileResult is internal).
@Test("file checks resolve inside the image root: a symlink never shows them a file of the host", .mayBlock)
func fileChecksStayInside() throws {
    let folder = NSTemporaryDirectory() + "tester-\(UUID().uuidString.prefix(8))"
    let manager = FileManager.default
    try manager.createDirectory(atPath: folder + "/host/etc", withIntermediateDirectories: true)
    try manager.createDirectory(atPath: folder + "/root/x", withIntermediateDirectories: true)
    try manager.createDirectory(atPath: folder + "/root/real", withIntermediateDirectories: true)
    try "host secret".write(toFile: folder + "/host/etc/shadow", atomically: false, encoding: .utf8)
    try "image file".write(toFile: folder + "/root/real/f", atomically: false, encoding: .utf8)
    try manager.createSymbolicLink(atPath: folder + "/root/etc", withDestinationPath: folder + "/host/etc")
    try manager.createSymbolicLink(atPath: folder + "/root/x/up", withDestinationPath: "..")
    try manager.createSymbolicLink(atPath: folder + "/root/x/esc", withDestinationPath: "up/..")
    try manager.createSymbolicLink(atPath: folder + "/root/link", withDestinationPath: "/real/f")
    let tester = ImageTester(store: try Store.open(at: folder + "/store"))
    func check(_ path: String, contains: String? = nil, exists: Bool = true) -> TestReport.Result {
        var c = ImageTestSuite.FileCheck(path: path)
        c.contains = contains
        c.exists = exists
        return tester.fileResult(c, rootfs: folder + "/root", owners: nil)
    }
    let a = check("/etc/shadow", contains: "secret")
    #expect(!a.passed && a.actual == "it does not exist")
    let b = check("/x/esc/host/etc/shadow", exists: false)
    #expect(b.passed)
    let c = check("/link", contains: "^image")
    #expect(c.passed)
    let d = check("/real", contains: "x")
    #expect(!d.passed && d.actual == "it is not a regular file")
}
