import ArgumentParser
import Foundation
import OCI

/// How a command writes its result: for people, or as one JSON document for scripts.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text
    case json
}

/// `--format text|json`, shared by the commands whose output scripts read. With `json`, standard output
/// carries exactly one JSON document (keys sorted, the shapes the README documents) and nothing else;
/// progress and notes go to standard error.
struct FormatOptions: ParsableArguments {
    @Option(name: .long, help: "text, or json: one JSON document on standard output (its shape is in the README).")
    var format: OutputFormat = .text

    var json: Bool { format == .json }
}

/// Writes `value` as the command's one JSON document.
func printJSONDocument<T: Encodable>(_ value: T) throws {
    FileHandle.standardOutput.write(try CanonicalJSON.encodePretty(value) + Data("\n".utf8))
}

/// The documents `--format json` writes, one type per command.
enum JSONOutput {
    /// `imgbuild images`.
    struct Images: Encodable {
        struct Repository: Encodable {
            var name: String
            var versions: Int
            /// The highest version and its digest; null for a repository that holds only pinned images.
            var latest: Tag?

            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(name, forKey: .name)
                try container.encode(versions, forKey: .versions)
                try container.encode(latest, forKey: .latest)
            }
            enum CodingKeys: String, CodingKey { case name, versions, latest }
        }
        var repositories: [Repository]
    }

    /// One version of a repository.
    struct Tag: Encodable {
        var version: String
        var digest: Digest
        var mediaType: String
        var size: Int64
    }

    /// `imgbuild tags NAME`.
    struct Tags: Encodable {
        var repository: String
        /// In precedence order, lowest first.
        var tags: [Tag]
    }

    /// `imgbuild resolve NAME@RANGE`.
    struct Resolved: Encodable {
        var repository: String
        var range: String
        var version: String
        var digest: Digest
    }

    /// `imgbuild push`, `pull` and `copy`.
    struct Copied: Encodable {
        var source: String
        var destination: String
        var digest: Digest
        var mediaType: String
        var size: Int64
        /// The tag written at the destination as it holds it (a registry's with '+' as '_'); null for an
        /// image copied by digest (pinned).
        var tag: String?
        var blobs: Blobs
        /// Signatures, SBOMs and attestations that refer to the image, copied with it.
        var referrers: Int

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(source, forKey: .source)
            try container.encode(destination, forKey: .destination)
            try container.encode(digest, forKey: .digest)
            try container.encode(mediaType, forKey: .mediaType)
            try container.encode(size, forKey: .size)
            // Written as null, not left out: the key is always there.
            try container.encode(tag, forKey: .tag)
            try container.encode(blobs, forKey: .blobs)
            try container.encode(referrers, forKey: .referrers)
        }
        enum CodingKeys: String, CodingKey { case source, destination, digest, mediaType, size, tag, blobs, referrers }

        struct Blobs: Encodable {
            /// Sent to the destination, with their bytes.
            var sent: Int
            var bytesSent: Int64
            /// Already there (or mounted from another repository of the same registry): not sent.
            var skipped: Int
        }
    }
}
