package dev.isthmus.gateway;

import dev.isthmus.proxy.EventLoops;
import dev.isthmus.proxy.ProxyMetrics;
import dev.isthmus.proxy.tcp.Splice;
import dev.isthmus.proxy.tcp.UpstreamSelector;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.netty.bootstrap.Bootstrap;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.handler.codec.ByteToMessageDecoder;
import io.netty.handler.ssl.AbstractSniHandler;
import io.netty.util.concurrent.Future;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The gateway's listener: reads the TLS ClientHello's SNI without terminating TLS, looks the name up
 * in the routes in force, connects to that endpoint and splices bytes both ways (the ClientHello
 * included). Anything else — not TLS, no SNI, an unknown name — is closed at once and counted.
 *
 * <p>Limits ({@link Limits}): connections overall and per source address (over them: closed at
 * once, counted as {@code too_many_connections} / {@code too_many_from_source}); a flow with no
 * bytes either way for the idle timeout is closed. {@link #close} drains: it stops accepting, lets
 * the flows in progress finish for up to the drain timeout, then closes what is left.
 */
public final class SniPassthrough implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(SniPassthrough.class);
    private static final int MAX_CLIENT_HELLO = 16 * 1024;
    private static final long LOG_INTERVAL_NANOS = Duration.ofSeconds(10).toNanos();

    private static final io.netty.util.AttributeKey<Boolean> REJECTED = io.netty.util.AttributeKey.valueOf("isthmus.rejected");
    /** The SNI a connection asked for, once its ClientHello is read. */
    private static final io.netty.util.AttributeKey<String> ROUTED_SNI = io.netty.util.AttributeKey.valueOf("isthmus.sni");

    /** The gateway's limits; {@link #DEFAULT}: 10,000 connections, 1,000 per source, 1 h idle, 30 s drain. */
    public record Limits(int maxConnections, int maxPerSource, Duration idleTimeout, Duration drainTimeout) {
        public static final Limits DEFAULT = new Limits(10_000, 1_000, Duration.ofHours(1), Duration.ofSeconds(30));
    }

    private final Channel server;
    private final io.netty.channel.group.ChannelGroup accepted;
    private final Limits limits;
    private final Counter closedByDrop;

    private SniPassthrough(Channel server, io.netty.channel.group.ChannelGroup accepted, Limits limits, Counter closedByDrop) {
        this.server = server;
        this.accepted = accepted;
        this.limits = limits;
        this.closedByDrop = closedByDrop;
    }

    public static SniPassthrough start(EventLoops loops, InetSocketAddress listen, Supplier<SniRoutes> routes,
            Duration helloTimeout, MeterRegistry meters) throws InterruptedException {
        return start(loops, listen, routes, helloTimeout, meters, Limits.DEFAULT);
    }

    public static SniPassthrough start(EventLoops loops, InetSocketAddress listen, Supplier<SniRoutes> routes,
            Duration helloTimeout, MeterRegistry meters, Limits limits) throws InterruptedException {
        var accepted = new io.netty.channel.group.DefaultChannelGroup("gateway", io.netty.util.concurrent.GlobalEventExecutor.INSTANCE);
        var perSource = new ConcurrentHashMap<java.net.InetAddress, java.util.concurrent.atomic.AtomicInteger>();
        var total = new java.util.concurrent.atomic.AtomicInteger();
        meters.gauge("isthmus_gateway_active_connections", total);
        var rejected = new EnumMap<Rejection, Counter>(Rejection.class);
        for (Rejection r : Rejection.values()) {
            rejected.put(r, Counter.builder(ProxyMetrics.CONNECTIONS_REJECTED)
                    .tag(ProxyMetrics.LABEL_LISTENER, "gateway").tag(ProxyMetrics.LABEL_REASON, r.label()).register(meters));
        }
        var lastLogged = new ConcurrentHashMap<Rejection, Long>();
        var sniMeters = new ConcurrentHashMap<String, SniMeters>();
        var opened = Counter.builder(ProxyMetrics.CONNECTIONS_OPENED).tag(ProxyMetrics.LABEL_LISTENER, "gateway").register(meters);
        var received = Counter.builder(ProxyMetrics.BYTES_RECEIVED).tag(ProxyMetrics.LABEL_LISTENER, "gateway").register(meters);
        var sent = Counter.builder(ProxyMetrics.BYTES_SENT).tag(ProxyMetrics.LABEL_LISTENER, "gateway").register(meters);

        Rejecter reject = (ch, reason, detail) -> {
            if (ch.attr(REJECTED).setIfAbsent(Boolean.TRUE) != null) {
                return; // already rejected: the handshake may report more than once before the close lands
            }
            rejected.get(reason).increment();
            long now = System.nanoTime();
            Long last = lastLogged.get(reason);
            if (last == null || now - last > LOG_INTERVAL_NANOS) {
                lastLogged.put(reason, now);
                log.warn("event=connection_rejected reason={} source={} detail={} (logged once per 10s per reason)",
                        reason.label(), ch.remoteAddress(), detail);
            }
            ch.close();
        };

        Channel server = new ServerBootstrap()
                .group(loops.boss(), loops.workers())
                .channel(loops.serverChannelType())
                .option(ChannelOption.SO_BACKLOG, 1024)
                .childOption(ChannelOption.TCP_NODELAY, true)
                .childOption(ChannelOption.ALLOW_HALF_CLOSURE, true)
                .childHandler(new ChannelInitializer<>() {
                    @Override
                    protected void initChannel(Channel ch) {
                        opened.increment();
                        var source = ((InetSocketAddress) ch.remoteAddress()).getAddress();
                        var fromSource = perSource.computeIfAbsent(source, a -> new java.util.concurrent.atomic.AtomicInteger());
                        int now = total.incrementAndGet();
                        int mine = fromSource.incrementAndGet();
                        ch.closeFuture().addListener(f -> {
                            total.decrementAndGet();
                            if (fromSource.decrementAndGet() == 0) {
                                perSource.remove(source, fromSource);
                            }
                        });
                        if (now > limits.maxConnections()) {
                            reject.reject(ch, Rejection.TOO_MANY_CONNECTIONS, now + " open, at most " + limits.maxConnections());
                            return;
                        }
                        if (mine > limits.maxPerSource()) {
                            reject.reject(ch, Rejection.TOO_MANY_FROM_SOURCE, mine + " open from " + source + ", at most " + limits.maxPerSource());
                            return;
                        }
                        accepted.add(ch);
                        ch.pipeline().addLast("idle", new io.netty.handler.timeout.IdleStateHandler(0, 0, limits.idleTimeout().toMillis(),
                                java.util.concurrent.TimeUnit.MILLISECONDS));
                        ch.pipeline().addLast("idle-close", new io.netty.channel.ChannelInboundHandlerAdapter() {
                            @Override
                            public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
                                if (evt instanceof io.netty.handler.timeout.IdleStateEvent) {
                                    Counter.builder(ProxyMetrics.CONNECTIONS_CLOSED).tag(ProxyMetrics.LABEL_LISTENER, "gateway")
                                            .tag(ProxyMetrics.LABEL_REASON, "idle_timeout").register(meters).increment();
                                    ctx.close();
                                } else {
                                    ctx.fireUserEventTriggered(evt);
                                }
                            }
                        });
                        ch.pipeline().addLast("tls-check", new TlsRecordCheck(reject));
                        ch.pipeline().addLast("sni", new SniRouter(loops, routes, reject, sent, received, helloTimeout, meters, sniMeters));
                        // The SNI handler reports a ClientHello it gives up on (read timeout, over the size cap,
                        // malformed) to the handler after it, and closes the connection before it throws: the
                        // rejection is counted here, before the caller can see the close.
                        ch.pipeline().addLast("hello-failed", new io.netty.channel.ChannelInboundHandlerAdapter() {
                            @Override
                            public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
                                if (evt instanceof io.netty.handler.ssl.SniCompletionEvent sni && sni.cause() != null) {
                                    if (sni.cause() instanceof io.netty.handler.ssl.SslHandshakeTimeoutException timeout) {
                                        reject.reject(ctx.channel(), Rejection.CLIENT_HELLO_TIMEOUT, timeout.getMessage());
                                    } else if (!(sni.cause() instanceof RouteException)) {
                                        reject.reject(ctx.channel(), Rejection.CLIENT_HELLO_INVALID, sni.cause().toString());
                                    }
                                }
                                ctx.fireUserEventTriggered(evt);
                            }
                        });
                    }
                })
                .bind(listen).sync().channel();
        log.info("event=listener_started listener=gateway address={} transport={}", server.localAddress(), loops.transportDescription());
        return new SniPassthrough(server, accepted, limits, Counter.builder(ProxyMetrics.CONNECTIONS_CLOSED)
                .tag(ProxyMetrics.LABEL_LISTENER, "gateway").tag(ProxyMetrics.LABEL_REASON, Rejection.DROP_OVERLOAD.label()).register(meters));
    }

    public InetSocketAddress address() {
        return (InetSocketAddress) server.localAddress();
    }

    /** Flows in progress. */
    public int activeFlows() {
        return accepted.size();
    }

    /**
     * Closes the flows in progress whose route now drops all of its traffic ({@code routes}, just put
     * in force: a cluster isolated for a drill); counted in {@code isthmus_tcp_connections_closed_total}
     * with reason {@code drop_overload}. New connections to such a route are refused as they come.
     *
     * @return how many flows were closed
     */
    public int closeDropped(SniRoutes routes) {
        int closed = 0;
        for (Channel ch : accepted) {
            String sni = ch.attr(ROUTED_SNI).get();
            if (sni != null && routes.lookup(sni).filter(r -> r instanceof dev.isthmus.proxy.lb.ClusterLoadBalancer lb
                    && lb.spec().dropsAll().isPresent()).isPresent()
                    // taken out of the flows in progress here, not when its close has run on its event loop:
                    // a config applied before then (the next xDS response's) neither closes nor counts it again
                    && accepted.remove(ch)) {
                closedByDrop.increment();
                ch.close();
                closed++;
            }
        }
        if (closed > 0) {
            log.warn("event=flows_closed reason=drop_overload flows={}", closed);
        }
        return closed;
    }

    /** Drains: stops accepting, waits up to the drain timeout for the flows in progress, then closes the rest. */
    @Override
    public void close() {
        server.close().syncUninterruptibly();
        int atStart = accepted.size();
        long deadline = System.nanoTime() + limits.drainTimeout().toNanos();
        log.info("event=drain_started flows={} deadline_s={}", atStart, limits.drainTimeout().toSeconds());
        while (!accepted.isEmpty() && System.nanoTime() < deadline) {
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        int left = accepted.size();
        accepted.close().awaitUninterruptibly();
        log.info("event=drain_finished flows_at_start={} closed_at_deadline={}", atStart, left);
    }

    @FunctionalInterface
    interface Rejecter {
        void reject(Channel ch, Rejection reason, String detail);
    }

    /** Closes connections whose first byte is not a TLS handshake record; steps aside otherwise. */
    private static final class TlsRecordCheck extends ByteToMessageDecoder {
        private final Rejecter reject;

        TlsRecordCheck(Rejecter reject) {
            this.reject = reject;
        }

        @Override
        protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
            if (!in.isReadable()) {
                return;
            }
            if (in.getUnsignedByte(in.readerIndex()) != 0x16) {
                in.skipBytes(in.readableBytes());
                reject.reject(ctx.channel(), Rejection.NOT_TLS, "first byte 0x" + Integer.toHexString(in.getUnsignedByte(0)));
                return;
            }
            ctx.pipeline().remove(this);
        }
    }

    /** Resolves the SNI to a route and connects; the ClientHello bytes follow once connected. */
    private static final class SniRouter extends AbstractSniHandler<Channel> {
        private final EventLoops loops;
        private final Supplier<SniRoutes> routes;
        private final Rejecter reject;
        private final Counter sent;
        private final Counter received;
        private final MeterRegistry meters;
        private final Map<String, SniMeters> sniMeters;

        SniRouter(EventLoops loops, Supplier<SniRoutes> routes, Rejecter reject, Counter sent, Counter received, Duration timeout,
                MeterRegistry meters, Map<String, SniMeters> sniMeters) {
            super(MAX_CLIENT_HELLO, timeout.toMillis());
            this.loops = loops;
            this.routes = routes;
            this.reject = reject;
            this.sent = sent;
            this.received = received;
            this.meters = meters;
            this.sniMeters = sniMeters;
        }

        /** The meters of one SNI's flows, made once per name (names reach here only when a route has them). */
        private SniMeters meters(String sni) {
            return sniMeters.computeIfAbsent(sni, n -> new SniMeters(
                    Counter.builder("isthmus_gateway_connections").tag("sni", n).register(meters),
                    io.micrometer.core.instrument.Timer.builder("isthmus_gateway_flow_duration").tag("sni", n).register(meters),
                    both(Counter.builder("isthmus_gateway_bytes").tag("sni", n).tag("direction", "to_endpoint").register(meters), received),
                    both(Counter.builder("isthmus_gateway_bytes").tag("sni", n).tag("direction", "to_caller").register(meters), sent)));
        }

        /** Counts into one SNI's counter and the listener's total. */
        private static Counter both(Counter perSni, Counter listenerTotal) {
            return new io.micrometer.core.instrument.Counter() {
                @Override
                public void increment(double amount) {
                    perSni.increment(amount);
                    listenerTotal.increment(amount);
                }

                @Override
                public double count() {
                    return perSni.count();
                }

                @Override
                public Id getId() {
                    return perSni.getId();
                }
            };
        }

        @Override
        protected Future<Channel> lookup(ChannelHandlerContext ctx, String hostname) {
            var promise = ctx.executor().<Channel>newPromise();
            if (hostname == null) {
                return promise.setFailure(new RouteException(Rejection.NO_SNI, "ClientHello carries no server_name"));
            }
            // Marked before the routes are read: a set applied after this read finds the connection
            // in closeDropped, so no flow slips past an isolation between the two.
            ctx.channel().attr(ROUTED_SNI).set(hostname.toLowerCase());
            var target = routes.get().lookup(hostname);
            if (target.isEmpty()) {
                return promise.setFailure(new RouteException(Rejection.UNKNOWN_SNI, "sni=" + hostname));
            }
            var selector = target.get();
            String dropped = selector.dropped();
            if (dropped != null) {
                return promise.setFailure(new RouteException(Rejection.DROP_OVERLOAD, "sni=" + hostname + " category=" + dropped));
            }
            String refused = selector.admit();
            if (refused != null) {
                return promise.setFailure(new RouteException(Rejection.UPSTREAM_UNREACHABLE, "sni=" + hostname + " circuit breaker " + refused + " is open"));
            }
            ctx.channel().closeFuture().addListener(f -> selector.leave());
            connect(ctx.channel(), hostname, selector, new java.util.HashSet<>(), promise, null);
            return promise;
        }

        /** Connects to an endpoint the load balancer picks; a failed attempt is reported and another endpoint tried (at most 3). */
        private void connect(Channel downstream, String hostname, UpstreamSelector selector, java.util.Set<InetSocketAddress> tried,
                io.netty.util.concurrent.Promise<Channel> promise, String lastFailure) {
            var pick = tried.size() >= 3 ? java.util.Optional.<InetSocketAddress>empty() : selector.pick(tried);
            if (pick.isEmpty()) {
                promise.setFailure(new RouteException(Rejection.UPSTREAM_UNREACHABLE, "sni=" + hostname
                        + (lastFailure == null ? " has no healthy endpoint" : " " + lastFailure)));
                return;
            }
            InetSocketAddress address = pick.get();
            tried.add(address);
            ChannelFuture attempt = new Bootstrap()
                    .group(downstream.eventLoop())
                    .channel(loops.channelType())
                    .option(ChannelOption.AUTO_READ, false)
                    .option(ChannelOption.TCP_NODELAY, true)
                    .option(ChannelOption.ALLOW_HALF_CLOSURE, true)
                    .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, 2000)
                    .handler(new Splice(downstream, meters(hostname).toCaller()))
                    .connect(address);
            attempt.addListener(f -> {
                if (f.isSuccess()) {
                    selector.connected(address);
                    selector.succeeded(address);
                    attempt.channel().closeFuture().addListener(c -> selector.released(address));
                    if (!promise.trySuccess(attempt.channel())) {
                        attempt.channel().close();
                    }
                } else {
                    if (dev.isthmus.proxy.tcp.UpstreamSelector.definitive(f.cause())) {
                        selector.refused(address);
                    } else {
                        selector.failed(address);
                    }
                    if (!downstream.isActive()) {
                        promise.tryFailure(new RouteException(Rejection.UPSTREAM_UNREACHABLE, "caller left"));
                        return;
                    }
                    connect(downstream, hostname, selector, tried, promise, "endpoint=" + address + " cause=" + f.cause());
                }
            });
        }

        /** A ClientHello over the size cap, malformed, or not complete within the read timeout. */
        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            Throwable c = cause instanceof io.netty.handler.codec.DecoderException && cause.getCause() != null ? cause.getCause() : cause;
            if (c instanceof io.netty.handler.ssl.SslHandshakeTimeoutException) {
                reject.reject(ctx.channel(), Rejection.CLIENT_HELLO_TIMEOUT, c.getMessage());
            } else {
                reject.reject(ctx.channel(), Rejection.CLIENT_HELLO_INVALID, c.toString());
            }
        }

        @Override
        protected void onLookupComplete(ChannelHandlerContext ctx, String hostname, Future<Channel> future) {
            if (!future.isSuccess()) {
                if (future.cause() instanceof RouteException re) {
                    reject.reject(ctx.channel(), re.reason, re.getMessage());
                } else {
                    reject.reject(ctx.channel(), Rejection.CLIENT_HELLO_INVALID, String.valueOf(future.cause()));
                }
                return;
            }
            Channel upstream = future.getNow();
            var m = meters(hostname);
            m.connections().increment();
            long start = System.nanoTime();
            var duration = m.duration();
            ctx.channel().closeFuture().addListener(f -> duration.record(System.nanoTime() - start, java.util.concurrent.TimeUnit.NANOSECONDS));
            ctx.channel().config().setAutoRead(false);
            ctx.pipeline().addLast("splice", new Splice(upstream, m.toEndpoint()));
            // Removing this handler passes the buffered ClientHello on to the splice.
            ctx.pipeline().remove(this);
            ctx.channel().read();
            upstream.read();
        }
    }

    private record SniMeters(Counter connections, io.micrometer.core.instrument.Timer duration, Counter toEndpoint, Counter toCaller) {
    }

    private static final class RouteException extends Exception {
        final Rejection reason;

        RouteException(Rejection reason, String message) {
            super(message, null, false, false);
            this.reason = reason;
        }
    }
}
