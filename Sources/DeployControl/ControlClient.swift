import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOFoundationCompat
import ReleaseSpec
import UnpackedReleases
import DeployerCore

/// What the control client reports.
public enum ControlError: Error, CustomStringConvertible {
    /// The daemon's socket does not answer.
    case daemonUnreachable(socket: String, reason: String)
    /// The daemon refused the request, saying why.
    case refused(String)
    /// The daemon's answer could not be read.
    case badAnswer(String)

    public var description: String {
        switch self {
        case let .daemonUnreachable(socket, reason):
            return "cannot reach the imgdeploy daemon at \(socket) (\(reason)): start it with `imgdeploy up` (as root), or point --state at its folder"
        case .refused(let message): return message
        case .badAnswer(let message): return "the daemon's answer cannot be read: \(message)"
        }
    }
}

/// Talks to `imgdeploy up` over its Unix socket.
public struct ControlClient: Sendable {
    public let socket: String

    public init(socket: String) {
        self.socket = socket
    }

    public func apply(_ spec: ReleaseSpec) async throws(ControlError) -> RolloutRecord {
        let body: Data
        do { body = try DeployJSON.encoder.encode(spec) } catch { throw .badAnswer("\(error)") }
        return try await send(.POST, "/v1/apply", body: body)
    }

    public func status(_ service: String?) async throws(ControlError) -> [ServiceStatus] {
        try await send(.GET, "/v1/status" + (service.map { "?service=\(escape($0))" } ?? ""))
    }

    public func history(_ service: String) async throws(ControlError) -> [RolloutRecord] {
        try await send(.GET, "/v1/history/\(escape(service))")
    }

    public func rollback(_ service: String, to digest: String?) async throws(ControlError) -> RolloutRecord {
        try await send(.POST, "/v1/rollback/\(escape(service))" + (digest.map { "?to=\(escape($0))" } ?? ""))
    }

    /// The fronts' metrics (of `service`, or of all), in the Prometheus text format.
    public func metrics(_ service: String?) async throws(ControlError) -> String {
        String(decoding: try await sendForData(.GET, "/v1/metrics" + (service.map { "?service=\(escape($0))" } ?? "")), as: UTF8.self)
    }

    /// Lets the canary of `service` in its steps skip the rest.
    public func promote(_ service: String) async throws(ControlError) {
        let _: [String: String] = try await send(.POST, "/v1/promote/\(escape(service))")
    }

    /// Stops the canary of `service` in its steps.
    public func abort(_ service: String) async throws(ControlError) {
        let _: [String: String] = try await send(.POST, "/v1/abort/\(escape(service))")
    }

    public func down(_ service: String) async throws(ControlError) {
        let _: [String: String] = try await send(.POST, "/v1/down/\(escape(service))")
    }

    public func verify(_ service: String) async throws(ControlError) -> [ReleaseCheck] {
        try await send(.POST, "/v1/verify/\(escape(service))")
    }

    public func upgradeFront(_ service: String) async throws(ControlError) -> FrontUpgrade {
        try await send(.POST, "/v1/upgrade-front/\(escape(service))")
    }

    /// Removes the releases outside every rollback window (with `dryRun`, lists them).
    public func collectReleases(dryRun: Bool) async throws(ControlError) -> ReleaseCollection {
        try await send(.POST, "/v1/gc" + (dryRun ? "?dry-run=true" : ""))
    }

    private func escape(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?&="))) ?? text
    }

    private func send<T: Decodable>(_ method: HTTPMethod, _ path: String, body: Data? = nil) async throws(ControlError) -> T {
        let data = try await sendForData(method, path, body: body)
        do { return try DeployJSON.decoder.decode(T.self, from: data) } catch { throw .badAnswer("\(error)") }
    }

    /// The answer's body, when the daemon answered 200.
    private func sendForData(_ method: HTTPMethod, _ path: String, body: Data? = nil) async throws(ControlError) -> Data {
        guard let url = URL(httpURLWithSocketPath: socket, uri: path) else { throw .daemonUnreachable(socket: socket, reason: "not a usable socket path") }
        guard FileManager.default.fileExists(atPath: socket) else { throw .daemonUnreachable(socket: socket, reason: "no such socket") }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(timeout: .init(connect: .seconds(3))))
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = method
        if let body {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: body))
        }
        let status: UInt
        let data: Data
        do {
            // A rollout waits for health checks and draining: allow it an hour.
            let response = try await client.execute(request, timeout: .hours(1))
            status = response.status.code
            data = Data(buffer: try await response.body.collect(upTo: 64 << 20))
            try? await client.shutdown()
        } catch {
            try? await client.shutdown()
            throw .daemonUnreachable(socket: socket, reason: "\(error)")
        }
        guard status == 200 else {
            let message = (try? DeployJSON.decoder.decode(ControlFailure.self, from: data))?.error ?? "HTTP \(status): \(String(decoding: data, as: UTF8.self))"
            throw .refused(message)
        }
        return data
    }
}
