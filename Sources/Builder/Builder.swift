import Foundation
import Imagefile
import Layers
import OCI
import SemVer
import Store
import Synchronization

/// Turns an Imagefile into an image in the store: dependencies → runtime → code, one layer per
/// non-empty section, then the config and the manifest, then the immutable version tag.
///
/// Everything is checked before the store is touched: the Imagefile, every dependency's digest, and
/// every file of the context. A build that fails on bad input leaves the store as it was, with one
/// exception: a large section whose snapshot says it is unchanged is presumed so while the snapshot is
/// checked, and if it did change after all, it is read after the other layers were written; a failure
/// then leaves only blobs that nothing refers to, which `gc` removes.
public struct Builder: Sendable {
    public var options: BuildOptions
    /// Receives one line per step, for people (the CLI prints it on stderr).
    public var progress: @Sendable (String) -> Void

    /// Whether this build walked a context section or wrote a layer anew (a build that did neither is a
    /// no-op, which ``WrittenImage/rebuiltNothing`` tells).
    private let activity = Activity()

    final class Activity: Sendable {
        let readOrWrote = Atomic<Bool>(false)
        func note() { readOrWrote.store(true, ordering: .relaxed) }
    }

    public init(options: BuildOptions, progress: @escaping @Sendable (String) -> Void = { _ in }) {
        self.options = options
        self.progress = progress
    }

    /// A section of the Imagefile, ready to be written as a layer.
    struct PlannedLayer {
        var section: String
        /// The section's `copy` instructions, the context they read, and the key of the section's
        /// snapshot (none for `dependencies`).
        var copies: [Imagefile.Copy] = []
        var context: ContextReader?
        var snapshotKey: Digest?
        /// What the section's snapshot vouched for, when the section was not read (``ContextSnapshotUse``).
        var vouched: Digest?
        var contents: Contents

        enum Contents {
            /// Read: the tree, its entries finalized once (sorted, with parents), and, for the context's
            /// sections, what the walk saw.
            case read(tree: LayerTree, entries: [LayerEntry], snapshot: ContextSnapshot?)
            /// Not read: the section's context files stat as they did when a layer was last built from
            /// them (``ContextSnapshot``), so that layer's fingerprint still holds.
            case unchanged(fingerprint: Digest)
            /// Not read, and taken as unchanged while its snapshot is checked in the background: a large
            /// section's check (thousands of `stat` calls) runs while the rest of the image is written,
            /// and the image is assembled again if the section turns out to have changed.
            case presumedUnchanged(fingerprint: Digest, BackgroundCheck)
        }

        var presumedCheck: BackgroundCheck? {
            if case .presumedUnchanged(_, let check) = contents { return check }
            return nil
        }
    }

    /// Writes the image's layers, config and manifest into the store (for a multi-platform Imagefile, an
    /// image manifest per platform and the index of them). The version is not tagged yet: the returned
    /// image holds the store's write lease until it is tagged (see `BuildPipeline`).
    public func build() async throws(BuildError) -> WrittenImage {
        var imagefile = try loadImagefile()
        let epoch = try sourceDateEpoch(imagefile)
        let version = options.version ?? imagefile.version
        let created = RFC3339.string(fromEpochSeconds: epoch)
        progress("building \(imagefile.name):\(version) from \(imagefile.path)")

        let targets = try targets(imagefile)
        if !imagefile.packages.isEmpty {
            imagefile.dependencies = try LockedPackages(imagefile: imagefile, environment: options.environment, cacheDirectory: options.cacheDirectory).dependencies(for: targets.map(\.platform))
                + imagefile.dependencies
        }
        let settings = LayerSettings(compression: options.compression, mtime: epoch)
        let dependencyLayers = try await planDependencies(imagefile, for: targets)
        // The context's sections are the same bytes for every platform: planned once, written once.
        var contextLayers = try planContextLayers(imagefile, settings: settings)

        let store: Store
        let lease: Store.WriteLease
        do {
            store = try Store.open(at: options.storePath)
            // Held from the first blob to the tag, so a concurrent gc never removes what this build writes.
            lease = try store.acquireWriteLease()
        } catch {
            throw .store(error)
        }
        let parts = targets.map { ImageParts(imagefile: imagefile, version: version, created: created, platform: $0.platform, base: $0.base) }
        let writer = LayerWriter(compression: options.compression, mtime: epoch, zstdThreads: options.zstdThreads)
        func assembleAll(_ contextLayers: [PlannedLayer], report: (String) -> Void) throws(BuildError) -> (Descriptor, [Descriptor]) {
            try assemble(parts, dependencies: dependencyLayers, context: contextLayers, multiPlatform: imagefile.platforms != nil,
                         with: writer, settings: settings, into: store, report: report)
        }
        var written: (image: Descriptor, platformImages: [Descriptor])
        if contextLayers.allSatisfy({ $0.presumedCheck == nil }) {
            written = try assembleAll(contextLayers, report: progress)
        } else {
            // Progress waits until every presumption is confirmed, so it never tells of a layer that is
            // then built again. Each pass tells the same lines, in the same order.
            var lines: [String] = []
            written = try assembleAll(contextLayers) { lines.append($0) }
            var changed: Set<Int> = []
            for index in contextLayers.indices {
                guard let check = contextLayers[index].presumedCheck, await !check.isUnchanged(), let context = contextLayers[index].context else { continue }
                changed.insert(index)
                let (tree, entries, snapshot) = try Self.read(contextLayers[index].copies, from: context)
                contextLayers[index].contents = .read(tree: tree, entries: entries, snapshot: snapshot)
            }
            if !changed.isEmpty {
                var again: [String] = []
                written = try assembleAll(contextLayers) { again.append($0) }
                // The other layers were written by the first pass: what it told of them stands. Each
                // platform tells a line per layer: its dependencies' (if any), then the context's.
                let retold = dependencyLayers.perTarget.flatMap { dependencies in
                    (dependencies == nil ? [] : [false]) + contextLayers.indices.map { changed.contains($0) }
                }
                lines = zip(zip(lines, again), retold).map { pair, isRetold in isRetold ? pair.1 : pair.0 }
            }
            lines.forEach(progress)
        }
        var contextFiles: [String]?
        if options.listContextFiles {
            contextFiles = contextLayers.filter { $0.context != nil }.flatMap { layer -> [String] in
                guard case .read(_, let entries, _) = layer.contents else { preconditionFailure("a context section was not read") }
                return entries.compactMap { entry in
                    if case .regularFile(.file(let path, _, _)) = entry.kind { return path }
                    return nil
                }
            }
        }
        return WrittenImage(imagefile: imagefile, version: version, manifest: written.image, store: store, lease: lease, epoch: epoch,
                            platform: targets[0].platform, platformImages: written.platformImages, compression: options.compression,
                            baseDigest: baseReferenceDigest(imagefile),
                            contextFiles: contextFiles, rebuiltNothing: !activity.readOrWrote.load(ordering: .relaxed),
                            contextSnapshots: contextLayers.compactMap { layer in
                                layer.snapshotKey.flatMap { key in layer.vouched.map { ContextSnapshotUse(key: key, contents: $0) } }
                            })
    }

    /// One platform the version is built for, and the base image it builds on there.
    struct Target {
        var platform: Platform
        var base: BaseImage?
    }

    /// Each platform's `dependencies` layer: the distinct layers, and which one each target has (nil: none).
    /// Platforms that get the same dependencies share one layer.
    struct DependencyLayers {
        var layers: [PlannedLayer] = []
        var perTarget: [Int?] = []
    }

    /// Writes every platform's image; with `multiPlatform`, then the index of them, whose descriptor is
    /// returned with the images' (each carrying its platform). A layer two platforms share (the context's
    /// sections, and the same dependencies) is written once.
    func assemble(_ parts: [ImageParts], dependencies: DependencyLayers, context: [PlannedLayer], multiPlatform: Bool, with writer: LayerWriter,
                  settings: LayerSettings, into store: Store, report: (String) -> Void) throws(BuildError) -> (Descriptor, [Descriptor]) {
        var images: [Descriptor] = []
        var contextWritten: [WrittenLayer]?
        var dependenciesWritten: [Int: (WrittenLayer, first: Platform)] = [:]
        for (image, dependencyIndex) in zip(parts, dependencies.perTarget) {
            let prefix = multiPlatform ? "\(image.platform): " : ""
            var layers: [(section: String, written: WrittenLayer)] = []
            if let dependencyIndex {
                if let (written, first) = dependenciesWritten[dependencyIndex] {
                    report(prefix + "layer dependencies: the same as \(first)'s (\(written.digest))")
                    layers.append(("dependencies", written))
                } else {
                    let written = try write(dependencies.layers[dependencyIndex], with: writer, settings: settings, into: store) { report(prefix + $0) }
                    dependenciesWritten[dependencyIndex] = (written, image.platform)
                    layers.append(("dependencies", written))
                }
            }
            if let contextWritten {
                for (layer, written) in zip(context, contextWritten) {
                    report(prefix + "layer \(layer.section): the same as \(parts[0].platform)'s (\(written.digest))")
                    layers.append((layer.section, written))
                }
            } else {
                var written: [WrittenLayer] = []
                for layer in context {
                    written.append(try write(layer, with: writer, settings: settings, into: store) { report(prefix + $0) })
                }
                contextWritten = written
                layers += zip(context.map(\.section), written).map { ($0, $1) }
            }
            var manifest = try assemble(image, from: layers, into: store)
            manifest.platform = image.platform
            images.append(manifest)
        }
        guard multiPlatform, let first = parts.first else {
            images[0].platform = nil
            return (images[0], [])
        }
        let annotations = [AnnotationKey.created: first.created, AnnotationKey.version: first.version.description]
        let indexData: Data
        do { indexData = try CanonicalJSON.encode(ImageIndex(manifests: images, annotations: annotations)) } catch {
            throw .imageNotEncoded(reason: "\(error)")
        }
        do {
            let digest = try store.writeBlob(indexData)
            return (Descriptor(mediaType: MediaType.imageIndex, digest: digest, size: Int64(indexData.count)), images)
        } catch {
            throw .store(error)
        }
    }

    /// What an image's config and manifest are made of besides its layers.
    struct ImageParts {
        var imagefile: Imagefile
        var version: Version
        var created: String
        var platform: Platform
        var base: BaseImage?
    }

    /// Writes the config and the manifest of an image of `layers` (its sections, written) into the store;
    /// returns the manifest.
    func assemble(_ image: ImageParts, from layers: [(section: String, written: WrittenLayer)], into store: Store) throws(BuildError) -> Descriptor {
        let imagefile = image.imagefile
        let base = image.base
        let created = image.created
        var descriptors = base?.manifest.layers ?? []
        var diffIDs = base?.config.rootfs.diffIDs ?? []
        var history = base?.config.history ?? []
        for (section, written) in layers {
            descriptors.append(Descriptor(mediaType: written.mediaType, digest: written.digest, size: written.size))
            diffIDs.append(written.diffID)
            history.append(.init(created: created, createdBy: "imgbuild: \(section)"))
        }
        if !imagefile.config.isEmpty {
            history.append(.init(created: created, createdBy: "imgbuild: config", emptyLayer: true))
        }

        var execution = ConfigMerger.execution(imagefile.config, over: base?.config.config)
        if !imagefile.tests.isEmpty {
            // The suite travels in the image, so `imgbuild test` can run it again at any time.
            var labels = execution?.labels ?? [:]
            do { labels[ImageTestSuite.label] = try imagefile.tests.labelValue() } catch { throw .imageNotEncoded(reason: "\(error)") }
            if execution == nil { execution = ImageConfig.Execution() }
            execution?.labels = labels
        }
        let config = ImageConfig(created: created, platform: image.platform, config: execution,
                                 rootfs: .init(diffIDs: diffIDs), history: history)
        var annotations = [AnnotationKey.created: created, AnnotationKey.version: image.version.description]
        if let base { annotations[AnnotationKey.baseDigest] = base.digest.description }
        let configData: Data
        let manifestData: Data
        do {
            configData = try CanonicalJSON.encode(config)
            let configDescriptor = Descriptor(mediaType: MediaType.imageConfig, digest: Digest.of(configData), size: Int64(configData.count))
            manifestData = try CanonicalJSON.encode(ImageManifest(config: configDescriptor, layers: descriptors, annotations: annotations))
        } catch {
            throw .imageNotEncoded(reason: "\(error)")
        }
        do {
            _ = try store.writeBlob(configData)
            let digest = try store.writeBlob(manifestData)
            return Descriptor(mediaType: MediaType.imageManifest, digest: digest, size: Int64(manifestData.count))
        } catch {
            throw .store(error)
        }
    }

    // MARK: Steps

    func loadImagefile() throws(BuildError) -> Imagefile {
        try Self.loadImagefile(at: options.path)
    }

    /// The Imagefile at `path`, or in the folder `path` (named `Imagefile`), read and validated.
    public static func loadImagefile(at path: String) throws(BuildError) -> Imagefile {
        var path = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw .missingImagefile(path: path) }
        if isDirectory.boolValue {
            path = (path as NSString).appendingPathComponent("Imagefile")
            guard FileManager.default.fileExists(atPath: path) else { throw .missingImagefile(path: path) }
        }
        do { return try Imagefile.load(path: path) } catch { throw .imagefile(error) }
    }

    /// The flag, else the Imagefile, else `$SOURCE_DATE_EPOCH`, else 0.
    func sourceDateEpoch(_ imagefile: Imagefile) throws(BuildError) -> Int64 {
        if let epoch = options.sourceDateEpoch { return epoch }
        if let epoch = imagefile.sourceDateEpoch { return epoch }
        if let text = options.environment["SOURCE_DATE_EPOCH"], !text.isEmpty {
            guard let epoch = Int64(text), epoch >= 0 else {
                throw .invalidEnvironment(name: "SOURCE_DATE_EPOCH", value: text, expected: "a whole number of seconds since 1970")
            }
            return epoch
        }
        return 0
    }

    struct BaseImage {
        var digest: Digest
        var manifest: ImageManifest
        var config: ImageConfig
    }

    /// The digest the Imagefile's `base` names, if it names an image.
    func baseReferenceDigest(_ imagefile: Imagefile) -> Digest? {
        guard case .image(let reference) = imagefile.base, case .digest(let digest) = reference.target else { return nil }
        return digest
    }

    /// The platforms to build, each with the image it builds on: the base's manifest, or, when the base is
    /// an index, its image for that platform. A platform left open (no `platform`) is the base's, else the
    /// host's. A dependency for no platform that is built is refused.
    func targets(_ imagefile: Imagefile) throws(BuildError) -> [Target] {
        let base = try loadBase(imagefile)
        var targets: [Target] = []
        for wanted in imagefile.targets {
            switch base {
            case nil:
                targets.append(Target(platform: wanted ?? Platform.host))
            case .image(let image):
                let basePlatform = image.config.platform
                if let wanted, basePlatform.os != wanted.os || basePlatform.architecture != wanted.architecture {
                    throw .platformMismatch(imagefile: imagefile.path, platform: wanted, base: basePlatform)
                }
                targets.append(Target(platform: wanted ?? basePlatform, base: image))
            case .index(let reference, let store, let index):
                let platform = wanted ?? Platform.host
                let offered = index.platforms.map(\.description).joined(separator: ", ")
                let candidates = index.images(for: platform)
                guard let child = candidates.first else {
                    throw .unusableBase(imagefile: imagefile.path, base: "\(reference)",
                                        reason: "its index has no image for \(platform) (it has \(offered.isEmpty ? "no platform" : offered)): build the base for \(platform) too, or build only for platforms it has ('platform' or 'platforms')")
                }
                guard candidates.count == 1 else {
                    throw .unusableBase(imagefile: imagefile.path, base: "\(reference)",
                                        reason: "its index has \(candidates.count) images for \(platform) (it has \(offered)): name the platform with its variant in 'platform' or 'platforms', or name one image as base by its digest (\(candidates.map(\.digest.description).joined(separator: ", ")))")
                }
                let image = try loadImage(child.digest, reference: reference, in: store, imagefile: imagefile)
                // The entry's label is the index's word; the image's own config has the last say.
                guard image.config.platform.matches(platform) else {
                    throw .unusableBase(imagefile: imagefile.path, base: "\(reference)",
                                        reason: "its index lists \(child.digest) as \(platform), but that image's config says \(image.config.platform)")
                }
                // Unnamed, the platform is the base's image's own, as with a one-platform base.
                targets.append(Target(platform: wanted ?? image.config.platform, base: image))
            }
        }
        if imagefile.platforms != nil, !imagefile.tests.commands.isEmpty, !targets.contains(where: { $0.platform.matches(Platform.host) }) {
            throw .commandTestsNeedHost(imagefile: imagefile.path, host: Platform.host)
        }
        for dependency in imagefile.dependencies {
            guard let platform = dependency.platform, !targets.contains(where: { dependency.applies(to: $0.platform) }) else { continue }
            throw .entry(dependency.location, "this dependency is for \(platform), which is not built (this build is for \(targets.map(\.platform.description).joined(separator: ", "))): set 'platform' or 'platforms' to build it, or remove the dependency")
        }
        return targets
    }

    enum LoadedBase {
        case image(BaseImage)
        case index(Reference, Store, ImageIndex)
    }

    func loadBase(_ imagefile: Imagefile) throws(BuildError) -> LoadedBase? {
        guard case .image(let reference) = imagefile.base, case .digest(let digest) = reference.target else { return nil }
        do {
            let store = try Store.open(at: options.storePath, create: false)
            _ = try store.resolve(reference)
            if case .index(let index) = try store.manifest(digest).manifest { return .index(reference, store, index) }
            return .image(try loadImage(digest, reference: reference, in: store, imagefile: imagefile))
        } catch let error as BuildError {
            throw error
        } catch {
            throw .unusableBase(imagefile: imagefile.path, base: "\(reference)", reason: "\(error)", cause: error)
        }
    }

    /// An image manifest of the base (the base itself, or its image for one platform) and its config.
    func loadImage(_ digest: Digest, reference: Reference, in store: Store, imagefile: Imagefile) throws(BuildError) -> BaseImage {
        do {
            guard case .image(let manifest) = try store.manifest(digest).manifest else {
                throw BuildError.unusableBase(imagefile: imagefile.path, base: "\(reference)", reason: "\(digest) is an index inside an index; name an image or an index of images")
            }
            let config = try store.imageConfig(manifest.config.digest).config
            return BaseImage(digest: digest, manifest: manifest, config: config)
        } catch let error as BuildError {
            throw error
        } catch {
            throw .unusableBase(imagefile: imagefile.path, base: "\(reference)", reason: "\(error)", cause: error)
        }
    }

    /// What a layer's bytes depend on besides its entries: the writer's settings.
    struct LayerSettings {
        var compression: Compression
        var mtime: Int64

        var description: String { "compression=\(compression.rawValue) mtime=\(mtime)" }
    }

    /// Reads each platform's `dependencies` into a layer tree: every digest is checked first, for every
    /// platform, before anything is unpacked; platforms with the same dependencies share one tree.
    func planDependencies(_ imagefile: Imagefile, for targets: [Target]) async throws(BuildError) -> DependencyLayers {
        let reader = DependencyLayer(imagefile: imagefile, cacheDirectory: options.cacheDirectory, progress: progress)
        let used = imagefile.dependencies.indices.filter { index in targets.contains { imagefile.dependencies[index].applies(to: $0.platform) } }
        let verified = Dictionary(uniqueKeysWithValues: zip(used, try await reader.verifiedFiles(used.map { imagefile.dependencies[$0] })))
        var result = DependencyLayers()
        var byList: [[Int]: Int] = [:]
        for target in targets {
            let list = used.filter { imagefile.dependencies[$0].applies(to: target.platform) }
            if list.isEmpty {
                result.perTarget.append(nil)
            } else if let known = byList[list] {
                result.perTarget.append(known)
            } else {
                let (tree, entries) = try reader.read(list.map { verified[$0]! }, dpkgStatus: !imagefile.packages.isEmpty)
                result.layers.append(PlannedLayer(section: "dependencies", contents: .read(tree: tree, entries: entries, snapshot: nil)))
                byList[list] = result.layers.count - 1
                result.perTarget.append(result.layers.count - 1)
            }
        }
        return result
    }

    /// Reads the context's sections (`runtime`, `code`) into layer trees, checking the context's rules. A
    /// section whose files all stat as they did when its layer was last built is not read again.
    func planContextLayers(_ imagefile: Imagefile, settings: LayerSettings) throws(BuildError) -> [PlannedLayer] {
        var planned: [PlannedLayer] = []
        let context = try Self.contextReader(imagefile)
        let cache = LayerCache(cacheDirectory: options.cacheDirectory)
        for (section, copies) in Self.contextSections(imagefile) {
            let key = LayerCache.snapshotKey(section: section, copies: copies, context: context.root)
            if options.listContextFiles || key == nil {
                // Every file must be named, or who reads cannot be told: the context is walked.
            } else if let key, let (contents, size) = cache.snapshotContents(key), size >= Self.presumptionThreshold {
                // The check, with the reading of the snapshot, runs while the build goes on.
                let check = BackgroundCheck { cache.snapshot(key)?.isUnchanged(from: contents) ?? false }
                planned.append(PlannedLayer(section: section, copies: copies, context: context, snapshotKey: key, vouched: contents,
                                            contents: .presumedUnchanged(fingerprint: LayerFingerprint.combining(contents, settings: settings.description), check)))
                continue
            }
            else if let key, let record = cache.snapshot(key), record.snapshot.isUnchanged() {
                planned.append(PlannedLayer(section: section, copies: copies, context: context, snapshotKey: key, vouched: record.contents,
                                            contents: .unchanged(fingerprint: LayerFingerprint.combining(record.contents, settings: settings.description))))
                continue
            }
            let (tree, entries, snapshot) = try Self.read(copies, from: context)
            planned.append(PlannedLayer(section: section, copies: copies, context: context, snapshotKey: key,
                                        contents: .read(tree: tree, entries: entries, snapshot: snapshot)))
        }
        return planned
    }

    /// Sections whose snapshot is at least this large (about 2,000 files) are checked in the background
    /// (milliseconds of `stat` calls); smaller ones are checked before anything is written.
    static let presumptionThreshold = 128 << 10

    /// The sections that copy files of the context, in layer order.
    static func contextSections(_ imagefile: Imagefile) -> [(section: String, copies: [Imagefile.Copy])] {
        [("runtime", imagefile.runtime), ("code", imagefile.code)].filter { !$0.copies.isEmpty }
    }

    static func contextReader(_ imagefile: Imagefile) throws(BuildError) -> ContextReader {
        do { return try ContextReader(root: imagefile.contextDirectory) } catch { throw .layer(error) }
    }

    /// Walks the context for one section's `copy` instructions.
    static func read(_ copies: [Imagefile.Copy], from context: ContextReader) throws(BuildError) -> (LayerTree, [LayerEntry], ContextSnapshot) {
        var tree = LayerTree()
        var snapshot = ContextSnapshot()
        for copy in copies {
            let spec = ContextCopy(source: copy.source, destination: copy.destination, excludes: copy.excludes,
                                   fileMode: copy.fileMode, owner: copy.owner.map { ($0.uid, $0.gid) })
            do { try context.add(spec, to: &tree, recording: &snapshot) } catch { throw .entry(copy.location, error.description) }
        }
        do { return (tree, try tree.finalizedEntries(), snapshot) } catch { throw .entry(copies[0].location, error.description) }
    }

    func write(_ layer: PlannedLayer, with writer: LayerWriter, settings: LayerSettings, into store: Store,
               report: (String) -> Void) throws(BuildError) -> WrittenLayer {
        let cache = LayerCache(cacheDirectory: options.cacheDirectory)
        let tree: LayerTree
        let entries: [LayerEntry]
        let snapshot: ContextSnapshot?
        switch layer.contents {
        case .unchanged(let fingerprint), .presumedUnchanged(let fingerprint, _):
            if let cached = cache.lookup(fingerprint, in: store) {
                report("layer \(layer.section): unchanged since it was last built (\(cached.digest))")
                return cached
            }
            // The layer is not in this store (another store, or collected since): read the section now.
            guard let context = layer.context else { preconditionFailure("a context section without its context") }
            activity.note()
            (tree, entries, snapshot) = try Self.read(layer.copies, from: context)
        case .read(let read, let finalized, let walked):
            if layer.context != nil { activity.note() }
            (tree, entries, snapshot) = (read, finalized, walked)
        }
        let contents: Digest?
        do {
            contents = try LayerFingerprint.contents(of: entries, spool: tree.spool,
                                                     walkStarted: snapshot?.started ?? Int(Date().timeIntervalSince1970))
        } catch {
            throw .layer(error)
        }
        let fingerprint = contents.map { LayerFingerprint.combining($0, settings: settings.description) }
        let written: WrittenLayer
        if let fingerprint, let cached = cache.lookup(fingerprint, in: store) {
            report("layer \(layer.section): unchanged since it was last built (\(cached.digest))")
            written = cached
        } else {
            activity.note()
            written = try writeAnew(entries, spool: tree.spool, with: writer, into: store)
            report("layer \(layer.section): \(entries.count) entries, \(written.uncompressedSize) bytes tar, \(written.size) bytes \(writer.compression.rawValue), \(written.digest)")
            if let fingerprint { cache.remember(written, as: fingerprint) }
        }
        if let contents, let snapshot, let key = layer.snapshotKey, !snapshot.isRacy {
            cache.remember(snapshot, contents: contents, as: key)
        }
        return written
    }

    func writeAnew(_ entries: [LayerEntry], spool: Spool?, with writer: LayerWriter, into store: Store) throws(BuildError) -> WrittenLayer {
        let upload: BlobUpload
        do { upload = try store.beginBlob() } catch { throw .store(error) }
        let written: WrittenLayer
        do { written = try writer.write(entries, spool: spool, to: upload.fd) } catch {
            upload.abandon()
            throw .layer(error)
        }
        do { try upload.commit(as: written.digest) } catch { throw .store(error) }
        return written
    }
}

extension Imagefile.RunConfig {
    var isEmpty: Bool { self == Imagefile.RunConfig() }
}
