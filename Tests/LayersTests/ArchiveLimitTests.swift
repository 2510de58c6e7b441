import Foundation
import Layers
import Testing
import TestScheduling

@Suite("Archive size limits", .mayBlock)
struct ArchiveLimitTests {
    @Test("refused: an archive whose files together claim more than the import limit, with the limit and what is left named")
    func importLimit() throws {
        var tar = TarBytes()
        tar.file("a", [UInt8](repeating: 1, count: 600))
        tar.sparse10("b", realSize: 1000, map: [(999, 1)])
        var tree = LayerTree(spool: try Spool())
        let error = #expect(throws: LayerError.self) {
            try ArchiveImporter(label: "small.tar", maxBytes: 1024).importArchive(at: try tar.write(), under: "", into: &tree)
        }
        #expect(error?.description == "archive 'small.tar' has an unsafe entry 'b': it declares a size of 1000 bytes, more than the 424 bytes left of the limit of 1024 bytes on what one archive may unpack to (600 already taken)")
    }
}
