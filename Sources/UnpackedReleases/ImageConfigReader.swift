import Distribution
import Foundation
import OCI
import ReleaseSpec
import Store
import NIOConcurrencyHelpers

/// The configs of an image pinned by digest, read from where a release spec fetches it, without its
/// layers and without writing anything: what a description of how the image runs elsewhere (Kubernetes
/// manifests) needs to know about it. Every byte is checked against its digest.
public enum ImageConfigReader {
    /// Registry options for a look that should not hold its caller long when the source is down: two
    /// attempts of at most 3 seconds to connect each (rather than four of 10).
    public static var options: RegistryOptions {
        var options = RegistryOptions()
        options.attempts = 2
        options.connectTimeout = .seconds(3)
        return options
    }

    /// The config of the image `image` names; for an index, the config of each of its linux images, in
    /// the index's order.
    ///
    /// Throws ``ReleaseError/fetchFailed(image:source:reason:)`` when the source cannot be reached or does
    /// not hold the image, and ``ReleaseError/notAnImage(image:reason:)`` when what it holds does not
    /// match its digest or is not an image.
    public static func configs(of image: PinnedImage, from source: ReleaseSpec.Source,
                               options: RegistryOptions = ImageConfigReader.options) async throws(ReleaseError) -> [ImageConfig] {
        // Errors of the reading itself are ReleaseErrors already; any other is the source's opening.
        do {
            return try await source.withImage(image, options: options) { origin in
                try await configs(of: image, in: origin, source: source)
            }
        } catch let error as ReleaseError {
            throw error
        } catch {
            throw .fetchFailed(image: "\(image)", source: "\(source)", reason: "\(error)")
        }
    }

    private static func configs(of image: PinnedImage, in origin: any ImageSource, source: ReleaseSpec.Source) async throws(ReleaseError) -> [ImageConfig] {
        /// A failure to read, or bytes that do not match what was asked for (never a network fault).
        func classify(_ error: any Error, _ what: String) -> ReleaseError {
            switch error as? DistributionError {
            case .digestMismatch?, .sizeMismatch?, .manifestTooLarge?:
                return .notAnImage(image: "\(image)", reason: "\(what): \(error)")
            default:
                return .fetchFailed(image: "\(image)", source: "\(source)", reason: "\(what): \(error)")
            }
        }
        func manifest(_ digest: Digest) async throws(ReleaseError) -> AnyManifest {
            let data: Data
            do { data = try await origin.manifest(.digest(digest)).data } catch { throw classify(error, "its manifest \(digest)") }
            let actual = Digest.of(data)
            guard actual == digest else {
                throw .notAnImage(image: "\(image)", reason: "the manifest \(digest) read from \(source) hashes to \(actual)")
            }
            do { return try AnyManifest(decoding: data) } catch {
                throw .notAnImage(image: "\(image)", reason: "\(digest) is not a manifest: \(error)")
            }
        }
        func config(_ manifest: ImageManifest, _ digest: Digest) async throws(ReleaseError) -> ImageConfig {
            guard manifest.config.mediaType == MediaType.imageConfig || manifest.config.mediaType == MediaType.dockerConfig else {
                throw .notAnImage(image: "\(image)", reason: "\(digest) is an artifact of type \(manifest.config.mediaType), not an image")
            }
            let data: Data
            do { data = try await origin.smallBlob(manifest.config) } catch { throw classify(error, "its config \(manifest.config.digest)") }
            do { return try JSONDecoder().decode(ImageConfig.self, from: data) } catch {
                throw .notAnImage(image: "\(image)", reason: "its config blob is not an OCI image config: \(error)")
            }
        }

        switch try await manifest(image.digest) {
        case .image(let single):
            let found = try await config(single, image.digest)
            guard found.os == "linux" else { throw .notAnImage(image: "\(image)", reason: "it is built for \(found.os), not linux") }
            return [found]
        case .index(let index):
            let linux = index.manifests.filter { $0.platform?.os == "linux" }
            guard linux.count <= 64 else { throw .notAnImage(image: "\(image)", reason: "its index lists \(linux.count) linux images, more than the 64 read") }
            var found: [ImageConfig] = []
            for child in linux {
                guard case .image(let single) = try await manifest(child.digest) else {
                    throw .notAnImage(image: "\(image)", reason: "its index entry \(child.digest) is not an image manifest")
                }
                found.append(try await config(single, child.digest))
            }
            guard !found.isEmpty else { throw .notAnImage(image: "\(image)", reason: "its index has no linux image") }
            return found
        }
    }
}

extension ImageConfigReader {
    /// The image's configs, or a `fetchFailed` once `deadline` has passed, however slowly the source
    /// answers (a request's own timeouts do not bound a body that drips in byte by byte).
    public static func configs(of image: PinnedImage, from source: ReleaseSpec.Source, within deadline: Duration) async throws(ReleaseError) -> [ImageConfig] {
        let first = FirstResult<[ImageConfig], ReleaseError>()
        let reading = Task {
            do throws(ReleaseError) { first.set(.success(try await configs(of: image, from: source))) } catch {
                first.set(.failure(error))
            }
        }
        let timer = Task {
            try? await Task.sleep(for: deadline)
            first.set(.failure(.fetchFailed(image: "\(image)", source: "\(source)", reason: "no complete answer within \(deadline)")))
        }
        let result = await first.value()
        reading.cancel()
        timer.cancel()
        return try result.get()
    }
}

/// The first of several results, for whoever waits for it.
private final class FirstResult<Success: Sendable, Failure: Error>: Sendable {
    private struct State {
        var result: Result<Success, Failure>?
        var waiter: CheckedContinuation<Result<Success, Failure>, Never>?
    }

    private let state = NIOLockedValueBox(State())

    func set(_ value: Result<Success, Failure>) {
        // Only the first result is kept; its waiter, if one is waiting already, is woken with it.
        let waiter = state.withLockedValue { state -> CheckedContinuation<Result<Success, Failure>, Never>? in
            guard state.result == nil else { return nil }
            state.result = value
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: value)
    }

    func value() async -> Result<Success, Failure> {
        await withCheckedContinuation { continuation in
            let ready = state.withLockedValue { state -> Result<Success, Failure>? in
                if let result = state.result { return result }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
