import Foundation

/// JSON as the control API writes and reads it: ISO 8601 dates, sorted keys.
enum ControlCoding {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()
}

/// The body of every refused request.
struct ControlFailure: Codable {
    var error: String
}
