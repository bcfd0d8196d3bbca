package dev.isthmus.proxy.tcp;

import dev.isthmus.proxy.EventLoops;
import dev.isthmus.proxy.ProxyMetrics;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.netty.bootstrap.Bootstrap;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslHandler;
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
 *
 * <p>Either side may be TLS ({@link Tls}): a downstream context terminates TLS from callers (the
 * sidecar's inbound mTLS listener; the upstream is dialled only after the caller's handshake
 * succeeded), an upstream context originates TLS to the upstream (an upstream listener dialling
 * another sidecar; the caller's bytes flow only once that handshake succeeded). Handshake results
 * are counted in {@code isthmus_tls_handshakes_total{listener,side,result}}.
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

    /**
     * TLS for a relay.
     *
     * @param downstream terminates TLS from callers, or null for plain TCP
     * @param upstream originates TLS to the upstream, or null for plain TCP
     * @param upstreamSni the server name sent to the upstream (null: none)
     */
    public record Tls(SslContext downstream, SslContext upstream, String upstreamSni) {
        public static final Tls NONE = new Tls(null, null, null);
    }

    /** Starts relaying {@code listen} to {@code upstream}, in plain TCP. */
    public static TcpRelay start(String name, EventLoops loops, InetSocketAddress listen, InetSocketAddress upstream,
            Duration connectTimeout, MeterRegistry meters) throws InterruptedException {
        return start(name, loops, listen, upstream, connectTimeout, meters, Tls.NONE);
    }

    /** Starts relaying {@code listen} to {@code upstream}, with TLS as {@code tls} says. */
    public static TcpRelay start(String name, EventLoops loops, InetSocketAddress listen, InetSocketAddress upstream,
            Duration connectTimeout, MeterRegistry meters, Tls tls) throws InterruptedException {
        Objects.requireNonNull(upstream, "upstream");
        return start(name, loops, listen, UpstreamSelector.fixed(upstream), upstream.toString(), 1, connectTimeout, meters, tls);
    }

    /**
     * Starts relaying {@code listen} to the endpoints {@code upstreams} picks, with TLS as {@code tls}
     * says. A connection whose connect or upstream handshake fails is tried on another endpoint, up
     * to {@code attempts} endpoints in all, before the caller's connection is closed.
     */
    public static TcpRelay start(String name, EventLoops loops, InetSocketAddress listen, UpstreamSelector upstreams, String upstreamName,
            int attempts, Duration connectTimeout, MeterRegistry meters, Tls tls) throws InterruptedException {
        String upstream = upstreamName;
        var retries = Counter.builder(ProxyMetrics.UPSTREAM_RETRIES).tag(ProxyMetrics.LABEL_LISTENER, name).register(meters);
        var noUpstream = Counter.builder(ProxyMetrics.CONNECTIONS_REJECTED).tag(ProxyMetrics.LABEL_LISTENER, name)
                .tag(ProxyMetrics.LABEL_REASON, "no_healthy_upstream").register(meters);
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
                        String dropped = upstreams.dropped();
                        if (dropped != null) {
                            Counter.builder(ProxyMetrics.CONNECTIONS_REJECTED).tag(ProxyMetrics.LABEL_LISTENER, name)
                                    .tag(ProxyMetrics.LABEL_REASON, "drop_overload").register(meters).increment();
                            downstream.close();
                            return;
                        }
                        String breaker = upstreams.admit();
                        if (breaker != null) {
                            Counter.builder(ProxyMetrics.CONNECTIONS_REJECTED).tag(ProxyMetrics.LABEL_LISTENER, name)
                                    .tag(ProxyMetrics.LABEL_REASON, "circuit_open_" + breaker).register(meters).increment();
                            downstream.close();
                            return;
                        }
                        downstream.closeFuture().addListener(f -> upstreams.leave());
                        if (tls.downstream() == null) {
                            connectUpstream(downstream, new java.util.HashSet<>());
                            return;
                        }
                        SslHandler ssl = tls.downstream().newHandler(downstream.alloc());
                        ssl.setHandshakeTimeoutMillis(10_000);
                        downstream.pipeline().addLast("tls", ssl);
                        downstream.pipeline().addLast(HoldBack.NAME, new HoldBack());
                        ssl.handshakeFuture().addListener(f -> {
                            if (f.isSuccess()) {
                                handshakes(meters, name, "downstream", "success").increment();
                                if (log.isDebugEnabled()) {
                                    log.debug("event=tls_accepted listener={} peer={}", name,
                                            dev.isthmus.proxy.identity.SpiffeSslContexts.peerId(ssl).orElse("none"));
                                }
                                connectUpstream(downstream, new java.util.HashSet<>());
                            } else {
                                handshakes(meters, name, "downstream", "failure").increment();
                                log.debug("event=tls_handshake_failed listener={} side=downstream remote={} cause={}", name,
                                        downstream.remoteAddress(), f.cause().toString());
                                downstream.close();
                            }
                        });
                    }

                    private void connectUpstream(Channel downstream, java.util.Set<InetSocketAddress> tried) {
                        var picked = upstreams.pick(tried);
                        if (picked.isEmpty()) {
                            noUpstream.increment();
                            log.debug("event=no_healthy_upstream listener={} tried={}", name, tried);
                            downstream.close();
                            return;
                        }
                        InetSocketAddress target = picked.get();
                        if (!tried.isEmpty()) {
                            retries.increment();
                        }
                        tried.add(target);
                        Runnable tryNext = () -> {
                            upstreams.failed(target);
                            if (tried.size() < attempts && downstream.isActive()) {
                                connectUpstream(downstream, tried);
                            } else {
                                downstream.close();
                            }
                        };
                        new Bootstrap()
                                .group(downstream.eventLoop())
                                .channel(loops.channelType())
                                .option(ChannelOption.AUTO_READ, false)
                                .option(ChannelOption.TCP_NODELAY, true)
                                .option(ChannelOption.ALLOW_HALF_CLOSURE, true)
                                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, (int) connectTimeout.toMillis())
                                .handler(new ChannelInitializer<>() {
                                    @Override
                                    protected void initChannel(Channel up) {
                                        if (tls.upstream() != null) {
                                            SslHandler ssl = tls.upstream().newHandler(up.alloc(), tls.upstreamSni() != null
                                                    ? tls.upstreamSni() : target.getHostString(), target.getPort());
                                            ssl.setHandshakeTimeoutMillis(10_000);
                                            dev.isthmus.proxy.identity.SpiffeSslContexts.serverName(ssl, tls.upstreamSni());
                                            up.pipeline().addLast("tls", ssl);
                                            up.pipeline().addLast(HoldBack.NAME, new HoldBack());
                                        }
                                    }
                                })
                                .connect(target)
                                .addListener((ChannelFutureListener) f -> {
                                    if (!f.isSuccess()) {
                                        connectFailures.increment();
                                        log.debug("event=upstream_connect_failed listener={} upstream={} cause={}",
                                                name, target, f.cause().toString());
                                        tryNext.run();
                                        return;
                                    }
                                    Channel up = f.channel();
                                    SslHandler ssl = up.pipeline().get(SslHandler.class);
                                    if (ssl == null) {
                                        established(downstream, up, target);
                                        return;
                                    }
                                    ssl.handshakeFuture().addListener(h -> {
                                        if (h.isSuccess()) {
                                            handshakes(meters, name, "upstream", "success").increment();
                                            established(downstream, up, target);
                                        } else {
                                            handshakes(meters, name, "upstream", "failure").increment();
                                            log.warn("event=tls_handshake_failed listener={} side=upstream upstream={} cause=\"{}\"", name,
                                                    target, h.cause().toString());
                                            up.close();
                                            tryNext.run();
                                        }
                                    });
                                });
                    }

                    private void established(Channel downstream, Channel up, InetSocketAddress target) {
                        if (!downstream.isActive()) {
                            up.close();
                            return;
                        }
                        open.add(up);
                        upstreams.connected(target);
                        upstreams.succeeded(target);
                        up.closeFuture().addListener(c -> upstreams.released(target));
                        up.pipeline().addLast(new Splice(downstream, sent));
                        if (up.pipeline().get(HoldBack.NAME) instanceof HoldBack held) {
                            held.release(); // what the upstream sent with its last handshake message
                        }
                        splice(downstream, up);
                    }

                    private void splice(Channel downstream, Channel up) {
                        downstream.pipeline().addLast(new Splice(up, received));
                        if (downstream.pipeline().get(HoldBack.NAME) instanceof HoldBack held) {
                            held.release(); // what the caller sent with its last handshake message
                        }
                        downstream.read();
                        up.read();
                    }
                })
                .bind(listen).sync().channel();
        log.info("event=listener_started listener={} address={} upstream={} transport={} tls_in={} tls_out={}",
                name, server.localAddress(), upstream, loops.transportDescription(), tls.downstream() != null, tls.upstream() != null);
        return new TcpRelay(name, server, open);
    }

    /**
     * Sits after the TLS handler of a connection: starts reading when it is active (AUTO_READ is
     * off: the ClientHello, or the ServerHello), keeps the bytes the peer sends together with its
     * last handshake message (TLS 1.3 lets a client send data at once) until the other side is
     * connected and the splice is in place, then passes them on; closes the connection on a TLS
     * error.
     */
    static final class HoldBack extends ChannelInboundHandlerAdapter {
        static final String NAME = "hold-back";
        private final java.util.ArrayDeque<Object> held = new java.util.ArrayDeque<>();
        private ChannelHandlerContext ctx;
        private boolean released;

        @Override
        public void handlerAdded(ChannelHandlerContext ctx) {
            this.ctx = ctx;
        }

        @Override
        public void channelActive(ChannelHandlerContext ctx) {
            ctx.fireChannelActive();
            ctx.read();
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (released) {
                ctx.fireChannelRead(msg);
            } else {
                held.add(msg);
            }
        }

        void release() {
            released = true;
            Object msg;
            while ((msg = held.poll()) != null) {
                ctx.fireChannelRead(msg);
            }
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            held.forEach(io.netty.util.ReferenceCountUtil::release);
            held.clear();
            ctx.fireChannelInactive();
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close(); // a failed handshake is counted and logged by the handshake listener
        }
    }

    private static Counter handshakes(MeterRegistry meters, String listener, String side, String result) {
        return Counter.builder(ProxyMetrics.TLS_HANDSHAKES).tag(ProxyMetrics.LABEL_LISTENER, listener).tag("side", side).tag("result", result)
                .register(meters);
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
