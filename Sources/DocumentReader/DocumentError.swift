/// A place in a YAML document.
public struct SourceLocation: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// `file:line:column`
    public var description: String { "\(file):\(line):\(column)" }
}

/// A problem with a YAML document (an Imagefile, a release spec), at a place in it when there is one.
public struct DocumentError: Error, Equatable, CustomStringConvertible {
    public var file: String
    public var location: SourceLocation?
    public var message: String

    public init(file: String, location: SourceLocation?, message: String) {
        self.file = file
        self.location = location
        self.message = message
    }

    /// `file:line:column: message`, the form compilers and editors understand.
    public var description: String {
        "\(location?.description ?? file): \(message)"
    }
}
