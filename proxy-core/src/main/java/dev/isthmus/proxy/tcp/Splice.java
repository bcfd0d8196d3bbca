package dev.isthmus.proxy.tcp;

import io.micrometer.core.instrument.Counter;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.socket.ChannelInputShutdownEvent;
import io.netty.channel.socket.DuplexChannel;

/**
 * Writes what one side of a relayed connection reads to the other side, and reads again only once
 * the write is flushed (backpressure). Half-closes are passed on; both sides close once both are done.
 */
public final class Splice extends ChannelInboundHandlerAdapter {
    private final Channel peer;
    private final Counter bytes;

    public Splice(Channel peer, Counter bytes) {
        this.peer = peer;
        this.bytes = bytes;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (msg instanceof ByteBuf buf) {
            bytes.increment(buf.readableBytes());
        }
        peer.writeAndFlush(msg).addListener((ChannelFutureListener) f -> {
            if (f.isSuccess()) {
                ctx.channel().read();
            } else {
                f.channel().close();
                ctx.channel().close();
            }
        });
    }

    /** One side finished sending: pass the half-close on, and close once both sides are done. */
    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
        if (evt instanceof ChannelInputShutdownEvent) {
            if (peer instanceof DuplexChannel duplex && peer.isActive()) {
                peer.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener((ChannelFutureListener) f ->
                        duplex.shutdownOutput().addListener(done -> closeIfBothShut(ctx.channel(), peer)));
            } else {
                ctx.close();
            }
        } else {
            ctx.fireUserEventTriggered(evt);
        }
    }

    private static void closeIfBothShut(Channel a, Channel b) {
        if (a instanceof DuplexChannel da && b instanceof DuplexChannel db && da.isInputShutdown() && db.isInputShutdown()) {
            a.close();
            b.close();
        }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        if (peer.isActive()) {
            peer.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(ChannelFutureListener.CLOSE);
        }
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        ctx.close();
    }
}
