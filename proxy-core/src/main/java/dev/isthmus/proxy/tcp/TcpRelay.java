package dev.isthmus.proxy.tcp;

import dev.isthmus.proxy.EventLoops;
import dev.isthmus.proxy.ProxyMetrics;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.netty.bootstrap.Bootstrap;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.util.concurrent.GlobalEventExecutor;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A layer-4 listener that relays each accepted connection to one upstream address, byte for byte,
 * both ways. The upstream connection is made on the accepting connection's event loop; reading
 * pauses on either side while the other side's socket buffer is full (backpressure), so memory per
 * connection stays bounded.
 */
public final class TcpRelay implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(TcpRelay.class);

    private final String name;
    private final Channel server;
    private final ChannelGroup open;

    private TcpRelay(String name, Channel server, ChannelGroup open) {
        this.name = name;
        this.server = server;
        this.open = open;
    }

    /** Starts relaying {@code listen} to {@code upstream}. */
    public static TcpRelay start(String name, EventLoops loops, InetSocketAddress listen, InetSocketAddress upstream,
            Duration connectTimeout, MeterRegistry meters) throws InterruptedException {
        Objects.requireNonNull(upstream, "upstream");
        var open = new DefaultChannelGroup(name, GlobalEventExecutor.INSTANCE);
        var opened = Counter.builder(ProxyMetrics.CONNECTIONS_OPENED).tag(ProxyMetrics.LABEL_LISTENER, name).register(meters);
        var closed = Counter.builder(ProxyMetrics.CONNECTIONS_CLOSED).tag(ProxyMetrics.LABEL_LISTENER, name).register(meters);
        var connectFailures = Counter.builder(ProxyMetrics.UPSTREAM_CONNECT_FAILURES).tag(ProxyMetrics.LABEL_LISTENER, name).register(meters);
        var received = Counter.builder(ProxyMetrics.BYTES_RECEIVED).tag(ProxyMetrics.LABEL_LISTENER, name).register(meters);
        var sent = Counter.builder(ProxyMetrics.BYTES_SENT).tag(ProxyMetrics.LABEL_LISTENER, name).register(meters);

        Channel server = new ServerBootstrap()
                .group(loops.boss(), loops.workers())
                .channel(loops.serverChannelType())
                .option(ChannelOption.SO_BACKLOG, 1024)
                .childOption(ChannelOption.AUTO_READ, false)
                .childOption(ChannelOption.TCP_NODELAY, true)
                .childOption(ChannelOption.ALLOW_HALF_CLOSURE, true)
                .childHandler(new ChannelInitializer<>() {
                    @Override
                    protected void initChannel(Channel downstream) {
                        open.add(downstream);
                        opened.increment();
                        downstream.closeFuture().addListener(f -> closed.increment());
                        new Bootstrap()
                                .group(downstream.eventLoop())
                                .channel(loops.channelType())
                                .option(ChannelOption.AUTO_READ, false)
                                .option(ChannelOption.TCP_NODELAY, true)
                                .option(ChannelOption.ALLOW_HALF_CLOSURE, true)
                                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, (int) connectTimeout.toMillis())
                                .handler(new Splice(downstream, sent))
                                .connect(upstream)
                                .addListener((ChannelFutureListener) f -> {
                                    if (f.isSuccess()) {
                                        Channel up = f.channel();
                                        open.add(up);
                                        downstream.pipeline().addLast(new Splice(up, received));
                                        downstream.read();
                                        up.read();
                                    } else {
                                        connectFailures.increment();
                                        log.debug("event=upstream_connect_failed listener={} upstream={} cause={}",
                                                name, upstream, f.cause().toString());
                                        downstream.close();
                                    }
                                });
                    }
                })
                .bind(listen).sync().channel();
        log.info("event=listener_started listener={} address={} upstream={} transport={}",
                name, server.localAddress(), upstream, loops.transportDescription());
        return new TcpRelay(name, server, open);
    }

    public InetSocketAddress address() {
        return (InetSocketAddress) server.localAddress();
    }

    @Override
    public void close() {
        server.close().syncUninterruptibly();
        open.close().awaitUninterruptibly();
        log.info("event=listener_stopped listener={}", name);
    }
}
