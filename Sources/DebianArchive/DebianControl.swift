/// A Debian control paragraph (`Field: value`, continuation lines start with a space).
public struct DebianControl: Sendable {
    public let fields: [(name: String, value: String)]

    public init(_ text: String) {
        var fields: [(String, String)] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.first == " " || line.first == "\t" {
                if let last = fields.popLast() { fields.append((last.0, last.1 + "\n" + line.dropFirst())) }
            } else if let colon = line.firstIndex(of: ":") {
                fields.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            } else if line.isEmpty, !fields.isEmpty {
                break  // only the first paragraph
            }
        }
        self.fields = fields
    }

    /// The value of a field (case-insensitive name), if present.
    public func field(_ name: String) -> String? {
        fields.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

import Foundation
