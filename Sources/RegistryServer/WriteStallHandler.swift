import NIOCore

/// Closes a connection whose client has stopped reading. Hummingbird's idle timeout stops counting once a
/// response is being written, so a client that asks for a large blob and never reads it would hold its
/// connection (one of `--max-connections`) for ever. Here, once the server has had more to send than the
/// socket takes (the channel not writable) for `timeout` without a byte leaving, the connection is closed.
final class WriteStallHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    let timeout: TimeAmount
    private var stall: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            stall?.cancel()
            stall = nil
        } else if stall == nil {
            let channel = context.channel
            stall = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        }
        context.fireChannelWritabilityChanged()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stall?.cancel()
        stall = nil
    }
}
