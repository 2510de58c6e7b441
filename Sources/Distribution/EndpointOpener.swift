import Foundation
import OCI
import Store

/// The one way to open an image source or destination from an ``ImageLocation``: the local store at
/// `storePath`, an OCI layout, or a registry (negotiating TLS for a docker-style name). Whoever opens
/// an endpoint closes it; `withEndpoints` and `withSource` do so whatever happens in between.
public struct EndpointOpener: Sendable {
    /// The store that `.store` locations name.
    public var storePath: String
    public var options: RegistryOptions
    /// Told when a registry answers only plain HTTP.
    public var progress: @Sendable (String) -> Void

    public init(storePath: String, options: RegistryOptions, progress: @escaping @Sendable (String) -> Void = { _ in }) {
        self.storePath = storePath
        self.options = options
        self.progress = progress
    }

    /// Opens `location` to read from. The store must exist.
    public func source(_ location: ImageLocation) async throws -> any ImageSource {
        switch location {
        case .store(let name, _):
            return try StoreEndpoint(store: Store.open(at: storePath, create: false), repository: name, writing: false)
        case .layout(let directory, _):
            return LayoutEndpoint(directory: directory)
        case .registry(let base, let repository, _, let style):
            return RegistryEndpoint(client: try await registry(base, repository, style, push: false))
        }
    }

    /// Opens `location` to write to. A store is created if it is missing, and its write lease is held
    /// until the destination is closed.
    public func destination(_ location: ImageLocation) async throws -> any ImageDestination {
        switch location {
        case .store(let name, _):
            return try StoreEndpoint(store: Store.open(at: storePath, create: true), repository: name, writing: true)
        case .layout(let directory, _):
            return LayoutEndpoint(directory: directory)
        case .registry(let base, let repository, _, let style):
            return RegistryEndpoint(client: try await registry(base, repository, style, push: true))
        }
    }

    /// Runs `body` with `location` open to read, and closes it afterwards.
    public func withSource<Result>(_ location: ImageLocation, _ body: (any ImageSource) async throws -> Result) async throws -> Result {
        let source = try await source(location)
        do {
            let result = try await body(source)
            await source.close()
            return result
        } catch {
            await source.close()
            throw error
        }
    }

    /// Runs `body` with `location` open to write to, and closes it afterwards.
    public func withDestination<Result>(_ location: ImageLocation, _ body: (any ImageDestination) async throws -> Result) async throws -> Result {
        let destination = try await destination(location)
        do {
            let result = try await body(destination)
            await destination.close()
            return result
        } catch {
            await destination.close()
            throw error
        }
    }

    /// Runs `body` with both locations open, and closes both afterwards (the source opened first).
    public func withEndpoints<Result>(from: ImageLocation, to: ImageLocation,
                                      _ body: (any ImageSource, any ImageDestination) async throws -> Result) async throws -> Result {
        try await withSource(from) { source in
            try await withDestination(to) { destination in try await body(source, destination) }
        }
    }

    private func registry(_ base: String, _ repository: String, _ style: ImageLocation.RegistryStyle, push: Bool) async throws -> RegistryClient {
        if style == .url { return try RegistryClient(base: base, repository: repository, push: push, options: options) }
        let client = try await RegistryClient.negotiating(base: base, repository: repository, push: push, options: options)
        if client.base.hasPrefix("http://") {
            progress("note: \(base.dropFirst("https://".count)) does not speak TLS: using plain HTTP"
                + (client.sendsCredentials ? "" : ", without credentials (they never travel in the clear to another machine)"))
        }
        return client
    }
}
