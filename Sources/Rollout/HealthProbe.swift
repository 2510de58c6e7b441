import AsyncHTTPClient
import NIOCore
import NIOPosix
import ReleaseSpec

/// Checks one instance: an HTTP GET answered with 2xx or 3xx, or, without a path, a TCP connection accepted.
public struct HealthProbe: Sendable {
    let client: HTTPClient

    public init(client: HTTPClient) {
        self.client = client
    }

    /// Nil when healthy, else what went wrong.
    public func check(host: String, port: Int, path: String?, timeout: Duration) async -> String? {
        guard let path else {
            do {
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connectTimeout(.milliseconds(timeout.milliseconds))
                    .connect(host: host, port: port).get()
                try? await channel.close()
                return nil
            } catch {
                return "no connection to \(host):\(port): \(error)"
            }
        }
        do {
            var request = HTTPClientRequest(url: "http://\(host):\(port)\(path)")
            request.headers.add(name: "user-agent", value: "imgdeploy-health")
            let response = try await client.execute(request, timeout: .milliseconds(timeout.milliseconds))
            _ = try? await response.body.collect(upTo: 1 << 20)
            guard (200..<400).contains(response.status.code) else {
                return "GET \(path) answered \(response.status.code) \(response.status.reasonPhrase)"
            }
            return nil
        } catch {
            return "GET \(path) on port \(port) failed: \(error)"
        }
    }
}
