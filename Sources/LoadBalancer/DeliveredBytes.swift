import NIOCore

/// What the kernel counted on a backend connection: request bytes the backend's kernel acknowledged,
/// and answer bytes received. Read from `TCP_INFO` (RFC 4898's counters, Linux 4.1 and later).
///
/// A request none of whose bytes were acknowledged cannot have been read by the backend: TCP hands an
/// application only bytes its kernel has taken, and a fresh connection acknowledges at once (quick-ack).
/// That is what happens when an instance's accept queue overflows: its kernel completes the handshake
/// with a SYN cookie, then resets the connection without ever taking the request. Such a request may be
/// sent again, whatever its method.
struct DeliveredBytes: Sendable, Equatable {
    var requestBytesAcknowledged: UInt64
    var answerBytesReceived: UInt64

    /// Nothing of the request reached the backend, and nothing of an answer came back.
    var requestNeverReached: Bool { requestBytesAcknowledged == 0 && answerBytesReceived == 0 }

    /// The kernel's `struct tcp_info` up to `tcpi_bytes_received` (the kernel copies as much as is asked).
    private struct KernelTCPInfo: Sendable {
        /// Fields before `tcpi_bytes_acked`, at offset 120; not read here.
        var leading: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
        var bytesAcked: UInt64
        var bytesReceived: UInt64
    }

    /// The counters of `channel`'s socket, read on its event loop; nil if they cannot be read.
    static func read(_ channel: any Channel) -> DeliveredBytes? {
        #if os(Linux)
        guard let provider = channel as? any SocketOptionProvider, channel.eventLoop.inEventLoop else { return nil }
        var delivered: DeliveredBytes?
        let info: EventLoopFuture<KernelTCPInfo> = provider.unsafeGetSocketOption(level: .tcp, name: .tcp_info)
        info.assumeIsolated().whenSuccess { info in
            // The SYN counts as one acknowledged byte.
            delivered = DeliveredBytes(requestBytesAcknowledged: info.bytesAcked > 0 ? info.bytesAcked - 1 : 0,
                                       answerBytesReceived: info.bytesReceived)
        }
        return delivered
        #else
        return nil
        #endif
    }
}
