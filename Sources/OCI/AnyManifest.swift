import Foundation

/// A manifest read from bytes: an image manifest or an image index, told apart by `mediaType` (or, when
/// that optional field is absent, by whether it has `manifests` or `layers`).
public enum AnyManifest: Sendable {
    case image(ImageManifest)
    case index(ImageIndex)

    /// Why bytes are not a manifest.
    public struct DecodeError: Error, CustomStringConvertible {
        public let reason: String
        public var description: String { reason }
    }

    private struct Probe: Decodable {
        var schemaVersion: Int?
        var mediaType: String?
        var manifests: [Descriptor]?
        var layers: [Descriptor]?
    }

    /// Decodes manifest bytes.
    public init(decoding data: Data) throws(DecodeError) {
        let probe: Probe
        do { probe = try JSONDecoder().decode(Probe.self, from: data) } catch {
            throw DecodeError(reason: "not a JSON object of the OCI manifest form (\(error))")
        }
        guard probe.schemaVersion == 2 else { throw DecodeError(reason: "schemaVersion must be 2") }
        do {
            switch probe.mediaType {
            case MediaType.imageIndex?, MediaType.dockerManifestList?:
                self = .index(try JSONDecoder().decode(ImageIndex.self, from: data))
            case MediaType.imageManifest?, MediaType.dockerManifest?:
                self = .image(try JSONDecoder().decode(ImageManifest.self, from: data))
            case nil where probe.manifests != nil:
                self = .index(try JSONDecoder().decode(ImageIndex.self, from: data))
            case nil where probe.layers != nil:
                self = .image(try JSONDecoder().decode(ImageManifest.self, from: data))
            default:
                throw DecodeError(reason: "unsupported manifest media type '\(probe.mediaType ?? "none")'")
            }
        } catch let error as DecodeError {
            throw error
        } catch {
            throw DecodeError(reason: "malformed manifest (\(error))")
        }
    }

    /// The media type to serve the manifest with.
    public var mediaType: String {
        switch self {
        case .image(let m): return m.mediaType ?? MediaType.imageManifest
        case .index(let i): return i.mediaType ?? MediaType.imageIndex
        }
    }

    /// Every descriptor the manifest references directly (config and layers, or child manifests).
    public var references: [Descriptor] {
        switch self {
        case .image(let m): return contents + (m.subject.map { [$0] } ?? [])
        case .index: return contents
        }
    }

    /// What the manifest is made of: config and layers, or child manifests (not the subject it refers to).
    public var contents: [Descriptor] {
        switch self {
        case .image(let m): return [m.config] + m.layers
        case .index(let i): return i.manifests
        }
    }
}
