import Foundation

/// The body of every refused request.
struct ControlFailure: Codable {
    var error: String
}
