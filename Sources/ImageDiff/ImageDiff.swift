import DebianArchive
import Foundation
import Layers
import OCI
import Store

/// What changed between two images of a store, as a reviewer wants it before a deploy: layers shared,
/// removed and added; regular files added, removed and changed (content, size or mode), whiteouts and
/// later layers applied; Debian packages added, removed, upgraded and downgraded (from the package
/// records in `var/lib/dpkg/status.d/` and `var/lib/dpkg/status`, ordered as dpkg orders versions); and
/// the run configuration's changes.
public struct ImageDiff: Encodable, Sendable, Equatable {
    public struct Side: Encodable, Sendable, Equatable {
        public var reference: String
        /// The image manifest compared (this machine's platform's, when the reference names an index).
        public var digest: Digest
    }

    public struct Layers: Encodable, Sendable, Equatable {
        public var shared: [Digest]
        public var removed: [Digest]
        public var added: [Digest]
    }

    public struct FileState: Encodable, Sendable, Equatable {
        public var size: Int64
        /// Octal permission bits, e.g. `0755`.
        public var mode: String
        public var sha256: String
    }

    public struct FileChange: Encodable, Sendable, Equatable {
        public enum Kind: String, Encodable, Sendable { case added, removed, changed }
        public var path: String
        public var change: Kind
        public var before: FileState?
        public var after: FileState?

        /// Every key written, `null` where a side has none.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(path, forKey: .path)
            try container.encode(change, forKey: .change)
            try container.encode(before, forKey: .before)
            try container.encode(after, forKey: .after)
        }
        enum CodingKeys: String, CodingKey { case path, change, before, after }
    }

    public struct PackageChange: Encodable, Sendable, Equatable {
        public enum Kind: String, Encodable, Sendable { case added, removed, upgraded, downgraded, rebuilt }
        public var name: String
        public var change: Kind
        public var before: String?
        public var after: String?

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(name, forKey: .name)
            try container.encode(change, forKey: .change)
            try container.encode(before, forKey: .before)
            try container.encode(after, forKey: .after)
        }
        enum CodingKeys: String, CodingKey { case name, change, before, after }
    }

    public struct ConfigChange: Encodable, Sendable, Equatable {
        /// The config field, as the OCI image spec names it (`Env`, `Entrypoint`, `architecture`, …).
        public var field: String
        public var before: String?
        public var after: String?

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(field, forKey: .field)
            try container.encode(before, forKey: .before)
            try container.encode(after, forKey: .after)
        }
        enum CodingKeys: String, CodingKey { case field, before, after }
    }

    public var from: Side
    public var to: Side
    public var layers: Layers
    public var files: [FileChange]
    public var packages: [PackageChange]
    public var config: [ConfigChange]

    public var isEmpty: Bool { layers.added.isEmpty && layers.removed.isEmpty && files.isEmpty && packages.isEmpty && config.isEmpty }

    /// Compares the images `from` and `to` name in `store`.
    public static func compare(_ from: Reference, _ to: Reference, in store: Store) throws -> ImageDiff {
        let a = try Image(from, store: store), b = try Image(to, store: store)
        let aLayers = a.manifest.layers.map(\.digest), bLayers = b.manifest.layers.map(\.digest)
        let layers = Layers(shared: aLayers.filter(bLayers.contains), removed: aLayers.filter { !bLayers.contains($0) },
                            added: bLayers.filter { !aLayers.contains($0) })
        return ImageDiff(from: Side(reference: "\(from)", digest: a.digest), to: Side(reference: "\(to)", digest: b.digest), layers: layers,
                         files: fileChanges(a.files, b.files), packages: packageChanges(a.packages, b.packages),
                         config: configChanges(a.config, b.config))
    }

    /// One side: its manifest, config, files and packages.
    struct Image {
        /// The most bytes a package record (or the whole `status` file) may have: far beyond Debian's
        /// largest systems (a few MB), and bounded so a hostile image cannot make diff hold gigabytes.
        static let packageRecordLimit = 64 << 20

        var digest: Digest
        var manifest: ImageManifest
        var config: ImageConfig
        var files: [String: InventoryFile]
        var packages: [String: String]

        init(_ reference: Reference, store: Store) throws {
            var descriptor = try store.resolve(reference)
            if case .index(let index) = try store.manifest(descriptor.digest).manifest {
                guard let child = index.image(for: Platform.host) else {
                    throw ImageDiffError.noPlatform(reference: "\(reference)", platform: Platform.host.description)
                }
                descriptor = child
            }
            guard case .image(let manifest) = try store.manifest(descriptor.digest).manifest else {
                throw ImageDiffError.noPlatform(reference: "\(reference)", platform: Platform.host.description)
            }
            digest = descriptor.digest
            self.manifest = manifest
            config = try store.imageConfig(manifest.config.digest).config
            let records = ArchiveImporter.packageRecordFolder + "/"
            let (list, kept) = try LayerInventory.read(layers: manifest.layers.map { (store.blobPath($0.digest), $0.digest) },
                                                       keepLimit: Image.packageRecordLimit) { path in
                path.hasPrefix(records) || path == "var/lib/dpkg/status"
            }
            files = Dictionary(list.map { ($0.path, $0) }, uniquingKeysWith: { $1 })
            // A package record too large to keep would make its packages look removed: refuse instead.
            if let skipped = list.first(where: { ($0.path.hasPrefix(records) || $0.path == "var/lib/dpkg/status") && kept[$0.path] == nil }) {
                throw ImageDiffError.recordTooLarge(reference: "\(reference)", path: skipped.path, size: skipped.size, limit: Image.packageRecordLimit)
            }
            var packages: [String: String] = [:]
            for (path, bytes) in kept {
                // status.d holds one paragraph per file; the classic status file holds one per package.
                let text = String(decoding: bytes, as: UTF8.self)
                let paragraphs = path == "var/lib/dpkg/status" ? text.components(separatedBy: "\n\n") : [text]
                for paragraph in paragraphs {
                    let control = DebianControl(paragraph)
                    guard let name = control.field("Package"), let version = control.field("Version") else { continue }
                    if let status = control.field("Status"), !status.hasSuffix(" installed") { continue }
                    let architecture = control.field("Architecture").map { ":" + $0 } ?? ""
                    packages[name + architecture] = version
                }
            }
            self.packages = packages
        }
    }

    static func state(_ file: InventoryFile) -> FileState {
        FileState(size: file.size, mode: "0" + String(file.mode, radix: 8), sha256: file.sha256)
    }

    static func fileChanges(_ a: [String: InventoryFile], _ b: [String: InventoryFile]) -> [FileChange] {
        var changes: [FileChange] = []
        for path in Set(a.keys).union(b.keys).sorted(by: LayerPath.precedes) {
            switch (a[path], b[path]) {
            case (let old?, nil): changes.append(FileChange(path: path, change: .removed, before: state(old)))
            case (nil, let new?): changes.append(FileChange(path: path, change: .added, after: state(new)))
            case (let old?, let new?) where old.sha256 != new.sha256 || old.mode != new.mode:
                changes.append(FileChange(path: path, change: .changed, before: state(old), after: state(new)))
            default: break
            }
        }
        return changes
    }

    static func packageChanges(_ a: [String: String], _ b: [String: String]) -> [PackageChange] {
        var changes: [PackageChange] = []
        for name in Set(a.keys).union(b.keys).sorted() {
            switch (a[name], b[name]) {
            case (let old?, nil): changes.append(PackageChange(name: name, change: .removed, before: old))
            case (nil, let new?): changes.append(PackageChange(name: name, change: .added, after: new))
            case (let old?, let new?) where old != new:
                let order = DebianVersion(old).flatMap { o in DebianVersion(new).map { DebianVersion.compare(o, $0) } } ?? 0
                changes.append(PackageChange(name: name, change: order < 0 ? .upgraded : order > 0 ? .downgraded : .rebuilt, before: old, after: new))
            default: break
            }
        }
        return changes
    }

    static func configChanges(_ a: ImageConfig, _ b: ImageConfig) -> [ConfigChange] {
        func fields(_ config: ImageConfig) -> [String: String] {
            var fields: [String: String] = ["os": config.os, "architecture": config.architecture]
            fields["variant"] = config.variant
            fields["created"] = config.created
            let run = config.config ?? ImageConfig.Execution()
            fields["User"] = run.user
            fields["WorkingDir"] = run.workingDir
            fields["StopSignal"] = run.stopSignal
            fields["Entrypoint"] = run.entrypoint.map(json)
            fields["Cmd"] = run.cmd.map(json)
            for entry in run.env ?? [] {
                let name = entry.split(separator: "=", maxSplits: 1).first.map(String.init) ?? entry
                fields["Env." + name] = String(entry.dropFirst(name.count + 1))
            }
            for (key, value) in run.labels ?? [:] { fields["Labels." + key] = value }
            for port in (run.exposedPorts ?? [:]).keys { fields["ExposedPorts." + port] = "exposed" }
            for volume in (run.volumes ?? [:]).keys { fields["Volumes." + volume] = "declared" }
            return fields
        }
        let before = fields(a), after = fields(b)
        return Set(before.keys).union(after.keys).sorted().compactMap { field in
            before[field] == after[field] ? nil : ConfigChange(field: field, before: before[field], after: after[field])
        }
    }

    private static func json(_ list: [String]) -> String {
        (try? String(decoding: JSONSerialization.data(withJSONObject: list, options: [.withoutEscapingSlashes]), as: UTF8.self)) ?? "\(list)"
    }
}

/// Why two images could not be compared.
public enum ImageDiffError: Error, CustomStringConvertible {
    case noPlatform(reference: String, platform: String)
    case recordTooLarge(reference: String, path: String, size: Int64, limit: Int)

    public var description: String {
        switch self {
        case let .noPlatform(reference, platform): return "\(reference) has no \(platform) image to compare"
        case let .recordTooLarge(reference, path, size, limit):
            return "\(reference): its package record /\(path) is \(size) bytes, more than the \(limit) diff reads, so its packages cannot be compared"
        }
    }
}
