import Foundation
import Imagefile
import Testing
import TestScheduling

@Suite("The test suite's image label", .mayBlock)
struct ImageTestSuiteLabelTests {
    @Test("a suite read back from its label is the same suite, and the label is canonical JSON")
    func roundTrip() throws {
        let written = #"{"commands": [{"run": ["/bin/true"], "exitCode": 0, "timeoutMilliseconds": 1000}], "files": [{"path": "/app/main.py", "exists": true, "mode": 420, "owner": "0:0", "contains": "^import"}]}"#
        let suite = try JSONDecoder().decode(ImageTestSuite.self, from: Data(written.utf8))
        #expect(suite.files.first?.mode == 0o644)
        let value = try suite.labelValue()
        #expect(try ImageTestSuite.carried(in: [ImageTestSuite.label: value, "other": "x"]) == suite)
        #expect(value.contains("\"path\":\"/app/main.py\""), "canonical JSON, sorted keys, no spaces: \(value)")
        #expect(try suite.labelValue() == value)
    }

    @Test("labels without the suite carry none; a label that is not a suite is an error that says to rebuild")
    func absentOrBroken() throws {
        #expect(try ImageTestSuite.carried(in: nil) == nil)
        #expect(try ImageTestSuite.carried(in: ["org.opencontainers.image.version": "1.0.0"]) == nil)
        let error = #expect(throws: ImageTestSuite.LabelError.self) {
            try ImageTestSuite.carried(in: [ImageTestSuite.label: "{\"files\": 3}"])
        }
        #expect(error?.description.contains("build the image again") == true)
    }
}
