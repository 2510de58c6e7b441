import NIOCore

/// What the kernel counted on a backend connection: request bytes the backend's kernel acknowledged,
/// and answer bytes received. Read from `TCP_INFO` (RFC 4898's counters, Linux 4.1 and later).
///
/// A request none of whose bytes were acknowledged cannot have been read by the backend: TCP hands an
/// application only bytes its kernel has taken, and a fresh connection acknowledges at once (quick-ack).
/// (Only an acknowledgement lost on the way, followed by a reset, could hide a byte the backend read; on
/// loopback and in a host's network namespaces nothing is lost.)
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

    /// The counters of `channel`'s socket, read on its event loop; nil if they cannot be read, or read as
    /// zero (a kernel or sandbox that does not fill them in: a connected socket has at least its SYN
    /// acknowledged). `finReceived`: the backend closed its side, which the kernel counts as a byte received.
    static func read(_ channel: any Channel, finReceived: Bool = false) -> DeliveredBytes? {
        #if os(Linux)
        guard let provider = channel as? any SocketOptionProvider, channel.eventLoop.inEventLoop else { return nil }
        var delivered: DeliveredBytes?
        let info: EventLoopFuture<KernelTCPInfo> = provider.unsafeGetSocketOption(level: .tcp, name: .tcp_info)
        info.assumeIsolated().whenSuccess { info in
            guard info.bytesAcked > 0, !finReceived || info.bytesReceived > 0 else { return }
            // The SYN counts as one acknowledged byte, and a FIN as one received.
            delivered = DeliveredBytes(requestBytesAcknowledged: info.bytesAcked - 1,
                                       answerBytesReceived: info.bytesReceived - (finReceived ? 1 : 0))
        }
        return delivered
        #else
        return nil
        #endif
    }
}
