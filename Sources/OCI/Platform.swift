/// The platform an image runs on: `os/architecture[/variant]`, in Go's `GOOS`/`GOARCH` names.
public struct Platform: Codable, Hashable, Sendable, CustomStringConvertible {
    public var architecture: String
    public var os: String
    public var variant: String?

    public init(os: String, architecture: String, variant: String? = nil) {
        self.os = os
        self.architecture = architecture
        self.variant = variant
    }

    /// `linux/amd64`, `linux/arm64/v8`
    public var description: String {
        [os, architecture, variant].compactMap { $0 }.joined(separator: "/")
    }

    /// Parses `os/architecture[/variant]`; returns nil when a part is missing or empty, or holds anything
    /// but lowercase ASCII letters and digits (Go's names are all such, and a runtime compares them as bytes:
    /// `Linux/AMD64` would be a platform no machine picks).
    public init?(parsing string: String) {
        let parts = string.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard (2...3).contains(parts.count),
              parts.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { (0x61...0x7a).contains($0) || (0x30...0x39).contains($0) } })
        else { return nil }
        self.init(os: parts[0], architecture: parts[1], variant: parts.count == 3 ? parts[2] : nil)
    }

    /// Whether `other` names the same platform: the same OS and architecture, and the same variant when
    /// both name one (`linux/arm64` and `linux/arm64/v8` are one platform, as image indexes use them).
    public func matches(_ other: Platform) -> Bool {
        os == other.os && architecture == other.architecture && (variant == nil || other.variant == nil || variant == other.variant)
    }

    /// The platform of the machine this program runs on.
    public static var host: Platform {
        #if arch(x86_64)
        return Platform(os: "linux", architecture: "amd64")
        #elseif arch(arm64)
        return Platform(os: "linux", architecture: "arm64", variant: "v8")
        #elseif arch(s390x)
        return Platform(os: "linux", architecture: "s390x")
        #elseif arch(powerpc64le)
        return Platform(os: "linux", architecture: "ppc64le")
        #else
        return Platform(os: "linux", architecture: "unknown")
        #endif
    }
}
