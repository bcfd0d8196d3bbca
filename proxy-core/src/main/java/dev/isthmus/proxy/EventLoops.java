package dev.isthmus.proxy;

import io.netty.channel.EventLoopGroup;
import io.netty.channel.ServerChannel;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollEventLoopGroup;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.util.concurrent.DefaultThreadFactory;

/**
 * The event loops of one proxy process: epoll where the native transport loads (Linux), NIO
 * otherwise. Accepted connections and their upstream connections share a loop, so a request stays
 * on one thread from accept to upstream write.
 */
public final class EventLoops implements AutoCloseable {

    private final EventLoopGroup boss;
    private final EventLoopGroup workers;
    private final boolean epoll;

    private EventLoops(EventLoopGroup boss, EventLoopGroup workers, boolean epoll) {
        this.boss = boss;
        this.workers = workers;
        this.epoll = epoll;
    }

    /** Creates loops; {@code threads} 0 means one per available processor. */
    public static EventLoops create(String name, int threads) {
        int n = threads > 0 ? threads : Runtime.getRuntime().availableProcessors();
        if (Epoll.isAvailable()) {
            return new EventLoops(new EpollEventLoopGroup(1, new DefaultThreadFactory(name + "-accept")),
                    new EpollEventLoopGroup(n, new DefaultThreadFactory(name + "-io")), true);
        }
        return new EventLoops(new NioEventLoopGroup(1, new DefaultThreadFactory(name + "-accept")),
                new NioEventLoopGroup(n, new DefaultThreadFactory(name + "-io")), false);
    }

    public EventLoopGroup boss() {
        return boss;
    }

    public EventLoopGroup workers() {
        return workers;
    }

    public boolean isEpoll() {
        return epoll;
    }

    /** Why epoll is not in use, or "in use". */
    public String transportDescription() {
        return epoll ? "epoll" : "nio (epoll unavailable: " + Epoll.unavailabilityCause() + ")";
    }

    public Class<? extends ServerChannel> serverChannelType() {
        return epoll ? EpollServerSocketChannel.class : NioServerSocketChannel.class;
    }

    public Class<? extends SocketChannel> channelType() {
        return epoll ? EpollSocketChannel.class : NioSocketChannel.class;
    }

    @Override
    public void close() {
        boss.shutdownGracefully(0, 2, java.util.concurrent.TimeUnit.SECONDS).syncUninterruptibly();
        workers.shutdownGracefully(0, 2, java.util.concurrent.TimeUnit.SECONDS).syncUninterruptibly();
    }
}
