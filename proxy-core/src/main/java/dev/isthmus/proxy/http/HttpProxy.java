package dev.isthmus.proxy.http;

import dev.isthmus.proxy.EventLoops;
import dev.isthmus.proxy.ProxyMetrics;
import dev.isthmus.proxy.config.xds.ProxyConfig;
import dev.isthmus.proxy.identity.SpiffeTls;
import dev.isthmus.proxy.lb.CircuitBreakers;
import dev.isthmus.proxy.tcp.UpstreamSelector;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.netty.bootstrap.Bootstrap;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoop;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.handler.codec.TooLongFrameException;
import io.netty.handler.codec.http.DefaultFullHttpRequest;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpMessage;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpRequestDecoder;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseEncoder;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslHandler;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.GlobalEventExecutor;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An HTTP/1.1 proxy listener: routes each request by Host and path (an inline RouteConfiguration),
 * to one cluster or weighted clusters, over pooled keep-alive upstream connections (TLS per the
 * cluster), with per-route timeouts and retries onto other endpoints.
 *
 * <ul>
 *   <li>Requests are read whole (up to 1 MiB of body, else 413) so they can be retried; responses
 *       are streamed back as they arrive, upstream reads pausing while the caller is slow.</li>
 *   <li>Bad requests are refused before any upstream is dialled: a malformed request line or header
 *       400, headers over 16 KiB 431, both Content-Length and Transfer-Encoding (request smuggling)
 *       400, then the connection is closed.</li>
 *   <li>Retries (when the route has a retry policy): only idempotent methods (GET, HEAD, OPTIONS, PUT,
 *       DELETE, TRACE), on the conditions the policy names ({@code connect-failure}, {@code reset},
 *       {@code 5xx}, {@code gateway-error}), each on an endpoint not tried yet.</li>
 *   <li>The caller's identity: {@value #CALLER_HEADER} is removed from every request; on a listener
 *       that terminates mTLS it is set to the caller's verified SPIFFE ID.</li>
 *   <li>Answers the proxy makes itself carry {@value #REASON_HEADER}: {@code no_route},
 *       {@code no_healthy_upstream}, {@code upstream_connect_failure}, {@code upstream_reset},
 *       {@code upstream_timeout}.</li>
 * </ul>
 * Metrics: {@code isthmus_requests_total} and {@code isthmus_request_duration_seconds} by listener,
 * destination service (cluster) and response code.
 */
public final class HttpProxy implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(HttpProxy.class);

    public static final String CALLER_HEADER = "x-isthmus-peer-identity";
    public static final String REASON_HEADER = "x-isthmus-reason";
    static final int MAX_BODY = 1024 * 1024;
    static final Set<HttpMethod> IDEMPOTENT = Set.of(HttpMethod.GET, HttpMethod.HEAD, HttpMethod.OPTIONS, HttpMethod.PUT, HttpMethod.DELETE,
            HttpMethod.TRACE);
    /** As Netty's AsciiStrings, whose hash is computed once (a String's is computed again on every lookup in Netty's headers). */
    private static final List<io.netty.util.AsciiString> HOP_BY_HOP = java.util.stream.Stream.of("connection", "keep-alive", "proxy-connection", "te",
            "trailer", "upgrade", "proxy-authorization", "proxy-authenticate").map(io.netty.util.AsciiString::cached).toList();

    /**
     * What an idle upstream connection can be reused for: its cluster and endpoint. Not the address
     * alone: the subsets of a service in another region share one address (that region's east-west
     * gateway) and differ only in their TLS SNI, so a connection made for v1 would carry v2's requests
     * to v1 (found by the three-region e2e test: a 50/50 canary served 100% by one subset).
     */
    record PoolKey(String cluster, InetSocketAddress address) {
    }

    /** An upstream cluster as the HTTP proxy uses it. */
    public record Upstream(String name, UpstreamSelector endpoints, SslContext tls, String sni, Duration connectTimeout, CircuitBreakers breakers,
            boolean http2) {
        public Upstream(String name, UpstreamSelector endpoints, SslContext tls, String sni, Duration connectTimeout) {
            this(name, endpoints, tls, sni, connectTimeout, new CircuitBreakers(dev.isthmus.proxy.config.xds.ProxyConfig.Limits.DEFAULT), false);
        }

        /**
         * Puts the cluster's TLS (when it has any) first on a new connection to {@code endpoint}: the
         * cluster's SNI, else the endpoint's host, and a 10 s handshake deadline.
         */
        /**
         * A new connection to {@code endpoint}, as every HTTP upstream connection is made: no Nagle,
         * the cluster's connect timeout, its TLS first ({@link #addTls}), then {@code protocol}'s
         * handlers.
         */
        io.netty.channel.ChannelFuture connect(io.netty.channel.EventLoop loop, Class<? extends Channel> type, InetSocketAddress endpoint,
                java.util.function.Consumer<io.netty.channel.ChannelPipeline> protocol) {
            return new Bootstrap().group(loop).channel(type)
                    .option(ChannelOption.TCP_NODELAY, true)
                    .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, (int) connectTimeout.toMillis())
                    .handler(new ChannelInitializer<>() {
                        @Override
                        protected void initChannel(Channel ch) {
                            addTls(ch, endpoint);
                            protocol.accept(ch.pipeline());
                        }
                    })
                    .connect(endpoint);
        }

        void addTls(Channel ch, InetSocketAddress endpoint) {
            if (tls == null) {
                return;
            }
            SslHandler ssl = tls.newHandler(ch.alloc(), sni != null ? sni : endpoint.getHostString(), endpoint.getPort());
            ssl.setHandshakeTimeoutMillis(10_000);
            dev.isthmus.proxy.identity.SpiffeSslContexts.serverName(ssl, sni);
            ch.pipeline().addLast("tls", ssl);
        }
    }

    /** Names the circuit breaker that refused a request (with a 503). */
    public static final String OVERLOADED_HEADER = "x-isthmus-overloaded";

    private final String name;
    private final Channel server;
    private final ChannelGroup open;
    private final java.util.concurrent.atomic.AtomicReference<ProxyConfig.HttpSpec> spec;
    private final Shared shared;

    private HttpProxy(String name, Channel server, ChannelGroup open, java.util.concurrent.atomic.AtomicReference<ProxyConfig.HttpSpec> spec,
            Shared shared) {
        this.name = name;
        this.server = server;
        this.open = open;
        this.spec = spec;
        this.shared = shared;
    }

    /**
     * Replaces the routes (and RBAC) in place: the listener keeps its socket and its connections; the
     * next request on any connection is routed by the new ones. The clusters they name must already be
     * known to the cluster function.
     */
    public void update(ProxyConfig.HttpSpec next) {
        spec.set(next);
    }

    /**
     * Starts the listener.
     *
     * @param clusters the cluster of each name (looked up per request, so load balancers can change under a running listener)
     * @param downstreamTls terminates mTLS from callers (inbound), or null for plain HTTP (from the local app)
     */
    public static HttpProxy start(String name, EventLoops loops, InetSocketAddress listen, ProxyConfig.HttpSpec spec,
            Function<String, Upstream> clusters, SslContext downstreamTls, MeterRegistry meters) throws InterruptedException {
        return start(name, loops, listen, spec, clusters, downstreamTls, meters, "");
    }

    /** @param sourceCluster this proxy's cluster, for the {@code source_cluster} and {@code destination_cluster} labels */
    public static HttpProxy start(String name, EventLoops loops, InetSocketAddress listen, ProxyConfig.HttpSpec spec,
            Function<String, Upstream> clusters, SslContext downstreamTls, MeterRegistry meters, String sourceCluster) throws InterruptedException {
        return start(name, loops, listen, spec, clusters, downstreamTls, meters, Duration.ofSeconds(10), Duration.ofSeconds(60), sourceCluster);
    }

    /**
     * @param requestTimeout how long a caller has, from the first byte of a request, to send all of
     *     it (slowloris): then 408 and the connection is closed
     * @param idleTimeout how long a kept-alive connection may stay without a request
     */
    public static HttpProxy start(String name, EventLoops loops, InetSocketAddress listen, ProxyConfig.HttpSpec spec,
            Function<String, Upstream> clusters, SslContext downstreamTls, MeterRegistry meters, Duration requestTimeout, Duration idleTimeout,
            String sourceCluster) throws InterruptedException {
        return start(name, loops, listen, spec, clusters, downstreamTls, false, meters, requestTimeout, idleTimeout, sourceCluster);
    }

    /**
     * @param plaintextToo with {@code downstreamTls}: a connection whose first bytes are not a TLS
     *     record is served in plaintext, without a caller identity (MeshPolicy {@code PERMISSIVE});
     *     counted in {@code isthmus_plaintext_connections_total}
     */
    public static HttpProxy start(String name, EventLoops loops, InetSocketAddress listen, ProxyConfig.HttpSpec spec,
            Function<String, Upstream> clusters, SslContext downstreamTls, boolean plaintextToo, MeterRegistry meters, Duration requestTimeout,
            Duration idleTimeout, String sourceCluster) throws InterruptedException {
        var open = new DefaultChannelGroup(name, GlobalEventExecutor.INSTANCE);
        var pools = new ConcurrentHashMap<EventLoop, Map<PoolKey, ArrayDeque<Channel>>>();
        var routes = new java.util.concurrent.atomic.AtomicReference<>(spec);
        var shared = new Shared(name, loops, routes, clusters, meters, pools, open, sourceCluster, new ConcurrentHashMap<>(),
                new java.util.concurrent.atomic.AtomicReference<>(), new java.util.concurrent.ConcurrentLinkedQueue<>());
        Channel server = new ServerBootstrap()
                .group(loops.boss(), loops.workers())
                .channel(loops.serverChannelType())
                .option(ChannelOption.SO_BACKLOG, 1024)
                .childOption(ChannelOption.TCP_NODELAY, true)
                .childHandler(new ChannelInitializer<>() {
                    @Override
                    protected void initChannel(Channel ch) {
                        open.add(ch);
                        if (downstreamTls != null && plaintextToo) {
                            ch.pipeline().addLast("tls-or-plaintext", new io.netty.handler.ssl.OptionalSslHandler(downstreamTls) {
                                @Override
                                protected String newSslHandlerName() {
                                    return "tls";
                                }

                                @Override
                                protected SslHandler newSslHandler(io.netty.channel.ChannelHandlerContext ctx, SslContext context) {
                                    return downstreamTls(context.newHandler(ctx.alloc()), name, meters);
                                }

                                @Override
                                protected io.netty.channel.ChannelHandler newNonSslHandler(io.netty.channel.ChannelHandlerContext ctx) {
                                    Counter.builder(ProxyMetrics.PLAINTEXT_CONNECTIONS).tag(ProxyMetrics.LABEL_LISTENER, name).register(meters).increment();
                                    return null;
                                }
                            });
                        } else if (downstreamTls != null) {
                            ch.pipeline().addLast("tls", downstreamTls(downstreamTls.newHandler(ch.alloc()), name, meters));
                        }
                        ch.pipeline().addLast("sniff", new Http2Relay.PrefaceSniffer(shared));
                        ch.pipeline().addLast("guard", new SlowRequestGuard(requestTimeout, idleTimeout, name, meters));
                        ch.pipeline().addLast("decoder", new StrictRequestDecoder());
                        ch.pipeline().addLast("encoder", new HttpResponseEncoder());
                        ch.pipeline().addLast("aggregator", new HttpObjectAggregator(MAX_BODY, true));
                        ch.pipeline().addLast("proxy", new Frontend(shared));
                    }
                })
                .bind(listen).sync().channel();
        log.info("event=listener_started listener={} address={} protocol=http tls_in={} virtual_hosts={}", name, server.localAddress(),
                downstreamTls == null ? "none" : plaintextToo ? "permissive" : "strict", spec.virtualHosts().size());
        return new HttpProxy(name, server, open, routes, shared);
    }

    /** The handshake deadline and counters of a caller's TLS. */
    private static SslHandler downstreamTls(SslHandler ssl, String name, MeterRegistry meters) {
        ssl.setHandshakeTimeoutMillis(10_000);
        ssl.handshakeFuture().addListener(f -> {
            Counter.builder(ProxyMetrics.TLS_HANDSHAKES).tag(ProxyMetrics.LABEL_LISTENER, name)
                    .tag("side", "downstream").tag("result", f.isSuccess() ? "success" : "failure").register(meters).increment();
            if (f.isSuccess()) {
                // what the caller and this listener agreed by ALPN (h2, http/1.1, or none offered)
                Counter.builder("isthmus_tls_alpn").tag(ProxyMetrics.LABEL_LISTENER, name)
                        .tag("protocol", ssl.applicationProtocol() == null ? "none" : ssl.applicationProtocol()).register(meters).increment();
            }
        });
        return ssl;
    }

    public InetSocketAddress address() {
        return (InetSocketAddress) server.localAddress();
    }

    @Override
    public void close() {
        shared.sweeps().forEach(f -> f.cancel(false));
        server.close().syncUninterruptibly();
        open.close().awaitUninterruptibly();
        log.info("event=listener_stopped listener={}", name);
    }

    /**
     * Bounds slow callers: from the first byte of a request, the whole request must arrive within
     * the request timeout (else 408 and close: slowloris), and a kept-alive connection with no
     * request in progress is closed after the idle timeout. Counted in
     * {@code isthmus_tcp_connections_rejected_total{reason="request_timeout"|"idle_timeout"}}.
     */
    static final class SlowRequestGuard extends ChannelInboundHandlerAdapter {
        private final Duration requestTimeout;
        private final Duration idleTimeout;
        private final String listener;
        private final MeterRegistry meters;
        private ChannelHandlerContext ctx;
        /** One per request and one per idle spell: a {@link Deadlines} entry, not a task in the loop's scheduled-task heap. */
        private Deadlines.Timeout timer;
        private final Runnable requestExpired = () -> expire("request_timeout");
        private final Runnable idleExpired = () -> expire("idle_timeout");
        private boolean receiving;
        private boolean busy;

        SlowRequestGuard(Duration requestTimeout, Duration idleTimeout, String listener, MeterRegistry meters) {
            this.requestTimeout = requestTimeout;
            this.idleTimeout = idleTimeout;
            this.listener = listener;
            this.meters = meters;
        }

        @Override
        public void channelActive(ChannelHandlerContext ctx) {
            this.ctx = ctx;
            idle();
            ctx.fireChannelActive();
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (!receiving && !busy) {
                receiving = true;
                schedule(requestTimeout, requestExpired);
            }
            ctx.fireChannelRead(msg);
        }

        void requestComplete() {
            receiving = false;
            busy = true;
            cancel();
        }

        void idle() {
            busy = false;
            receiving = false;
            schedule(idleTimeout, idleExpired);
        }

        private void schedule(Duration after, Runnable expiry) {
            cancel();
            if (ctx == null) {
                return;
            }
            timer = Deadlines.schedule(ctx.executor(), after.toMillis(), expiry);
        }

        private void cancel() {
            if (timer != null) {
                timer.cancel();
                timer = null;
            }
        }

        private void expire(String reason) {
            Counter.builder(ProxyMetrics.CONNECTIONS_REJECTED).tag(ProxyMetrics.LABEL_LISTENER, listener).tag(ProxyMetrics.LABEL_REASON, reason)
                    .register(meters).increment();
            if (reason.equals("request_timeout")) {
                ctx.channel().writeAndFlush(plain(HttpResponseStatus.REQUEST_TIMEOUT, "request_timeout", "the request did not arrive within "
                        + requestTimeout.toMillis() + " ms", false)).addListener(ChannelFutureListener.CLOSE);
            } else {
                ctx.close();
            }
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            cancel();
            ctx.fireChannelInactive();
        }
    }

    /** Rejects a request with both Content-Length and Transfer-Encoding instead of dropping Content-Length (RFC 9112 allows either). */
    static final class StrictRequestDecoder extends HttpRequestDecoder {
        StrictRequestDecoder() {
            super(4096, 16 * 1024, 8192);
        }

        @Override
        protected void handleTransferEncodingChunkedWithContentLength(HttpMessage message) {
            throw new IllegalArgumentException("both Content-Length and Transfer-Encoding are set (request smuggling)");
        }
    }

    /** A request's counter and timer, looked up once per label set rather than built on every request. */
    record RequestMeters(Counter requests, Timer duration) {
    }

    /**
     * The labels of the last request counted, as {@link Shared#count} was given them, with their
     * meters: while requests keep the same labels (as they mostly do), counting one builds no key.
     */
    record CountedAs(String cluster, int status, String caller, String endpointRegion, RequestMeters meters) {
        boolean same(String cluster, int status, String caller, String endpointRegion) {
            return this.status == status && java.util.Objects.equals(this.cluster, cluster) && java.util.Objects.equals(this.caller, caller)
                    && java.util.Objects.equals(this.endpointRegion, endpointRegion);
        }
    }

    record Shared(String listener, EventLoops loops, java.util.concurrent.atomic.AtomicReference<ProxyConfig.HttpSpec> spec,
            Function<String, Upstream> clusters, MeterRegistry meters,
            Map<EventLoop, Map<PoolKey, ArrayDeque<Channel>>> pools, ChannelGroup open, String sourceCluster,
            Map<List<String>, RequestMeters> requestMeters, java.util.concurrent.atomic.AtomicReference<CountedAs> lastCounted,
            java.util.Queue<java.util.concurrent.Future<?>> sweeps) {

        Optional<ProxyConfig.Route> route(String host, String path) {
            return route(host, path, name -> null);
        }

        /** @param header a request header by lower-case name ({@code :method} included) */
        Optional<ProxyConfig.Route> route(String host, String path, java.util.function.Function<String, String> header) {
            // A domain with a port ("catalog.shop:9090", a service port's virtual host) is matched against the
            // whole host first; then the host without its port against the domains (Istio lists both forms).
            // the host is compared in place (its first hostEnd characters, without the port), not copied
            String full = host == null ? "" : host.toLowerCase(java.util.Locale.ROOT);
            int colon = full.lastIndexOf(':');
            int hostEnd = colon > 0 && !full.endsWith("]") ? colon : full.length();
            boolean withPort = hostEnd < full.length();
            ProxyConfig.VirtualHost best = null;
            int bestRank = 0;
            for (var vh : spec.get().virtualHosts()) {
                for (String d : vh.domains()) {
                    String dl = d.toLowerCase(java.util.Locale.ROOT);
                    int suffix = dl.length() - 1; // of a wildcard domain, after its '*', which stands for one character or more (as in Envoy)
                    int rank = withPort && dl.equals(full) ? 4
                            : dl.length() == hostEnd && full.regionMatches(0, dl, 0, hostEnd) ? 3
                            : suffix > 0 && dl.charAt(0) == '*' && suffix < hostEnd && full.regionMatches(hostEnd - suffix, dl, 1, suffix) ? 2
                            : dl.equals("*") ? 1 : 0;
                    if (rank > bestRank) {
                        best = vh;
                        bestRank = rank;
                    }
                }
            }
            if (best == null) {
                return Optional.empty();
            }
            for (var r : best.routes()) {
                if (r.matches(path, header)) {
                    return Optional.of(r);
                }
            }
            return Optional.empty();
        }

        /** The listener's RBAC (AuthorizationPolicy) verdict; a refusal is counted in {@code isthmus_rbac_denied_total}. */
        boolean permits(String caller, String method, String path) {
            var rbac = spec.get().rbac();
            if (rbac.isEmpty() || rbac.get().permits(caller, method, path)) {
                return true;
            }
            Counter.builder("isthmus_rbac_denied").tag(ProxyMetrics.LABEL_LISTENER, listener).register(meters).increment();
            log.debug("event=rbac_denied listener={} caller={} method={} path={}", listener, caller, method, path);
            return false;
        }

        void count(String cluster, int status, long startNanos) {
            count(cluster, status, startNanos, "", "");
        }

        /**
         * Counts a finished request. {@code source_cluster}: the caller's cluster (the first label of
         * its trust domain) when it proved an identity, else this proxy's; {@code destination_cluster}:
         * the region of the endpoint that answered, else this proxy's.
         */
        void count(String cluster, int status, long startNanos, String caller, String endpointRegion) {
            var last = lastCounted.get();
            RequestMeters m;
            if (last != null && last.same(cluster, status, caller, endpointRegion)) {
                m = last.meters();
            } else {
                m = meters(cluster, status, caller, endpointRegion);
                lastCounted.set(new CountedAs(cluster, status, caller, endpointRegion, m));
            }
            m.requests().increment();
            m.duration().record(System.nanoTime() - startNanos, TimeUnit.NANOSECONDS);
        }

        /** The meters of one label set, made on its first request. */
        private RequestMeters meters(String cluster, int status, String caller, String endpointRegion) {
            String source = caller != null && caller.startsWith("spiffe://") ? SpiffeTls.trustDomain(caller).split("\\.")[0] : sourceCluster;
            String destination = endpointRegion == null || endpointRegion.isEmpty() ? sourceCluster : endpointRegion;
            return requestMeters.computeIfAbsent(List.of(cluster, Integer.toString(status), source, destination), k -> {
                var tags = io.micrometer.core.instrument.Tags.of(ProxyMetrics.LABEL_LISTENER, listener, ProxyMetrics.LABEL_DESTINATION_SERVICE, k.get(0),
                        ProxyMetrics.LABEL_RESPONSE_CODE, k.get(1), ProxyMetrics.LABEL_SOURCE_CLUSTER, k.get(2), ProxyMetrics.LABEL_DESTINATION_CLUSTER,
                        k.get(3));
                return new RequestMeters(Counter.builder(ProxyMetrics.REQUESTS).tags(tags).register(meters),
                        Timer.builder(ProxyMetrics.REQUEST_DURATION).tags(tags).publishPercentileHistogram().register(meters));
            });
        }
    }

    /** One caller connection: requests one at a time, in order. */
    private static final class Frontend extends ChannelInboundHandlerAdapter {
        private final Shared shared;
        private final ArrayDeque<FullHttpRequest> queued = new ArrayDeque<>();
        private Exchange current;
        private Channel channel;
        private String caller;

        Frontend(Shared shared) {
            this.shared = shared;
        }

        @Override
        public void handlerAdded(ChannelHandlerContext ctx) {
            channel = ctx.channel();
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (!(msg instanceof FullHttpRequest req)) {
                ReferenceCountUtil.release(msg);
                return;
            }
            if (req.decoderResult().isFailure()) {
                Throwable cause = req.decoderResult().cause();
                req.release();
                boolean tooLong = cause instanceof TooLongFrameException;
                var status = tooLong ? HttpResponseStatus.REQUEST_HEADER_FIELDS_TOO_LARGE : HttpResponseStatus.BAD_REQUEST;
                shared.count("none", status.code(), System.nanoTime());
                log.debug("event=bad_request listener={} remote={} cause=\"{}\"", shared.listener(), ctx.channel().remoteAddress(), cause.getMessage());
                var res = plain(status, tooLong ? "request_headers_too_large" : "bad_request", cause.getMessage() == null ? "" : cause.getMessage(), false);
                ctx.writeAndFlush(res).addListener(ChannelFutureListener.CLOSE);
                return;
            }
            if (queued.size() >= 16) {
                req.release();
                ctx.close(); // a pipelining client that does not wait for answers
                return;
            }
            if (ctx.pipeline().get(SlowRequestGuard.class) instanceof SlowRequestGuard guard) {
                guard.requestComplete();
            }
            queued.add(req);
            if (current == null) {
                next();
            }
        }

        void next() {
            FullHttpRequest req = queued.poll();
            if (req == null) {
                return;
            }
            if (caller == null) {
                caller = callerOf(channel);
            }
            current = new Exchange(this, req);
            current.begin();
        }

        void finished(boolean keepAlive) {
            current = null;
            if (!keepAlive) {
                channel.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(ChannelFutureListener.CLOSE);
                queued.forEach(FullHttpRequest::release);
                queued.clear();
                return;
            }
            if (!queued.isEmpty()) {
                next();
            } else if (channel.pipeline().get(SlowRequestGuard.class) instanceof SlowRequestGuard guard) {
                guard.idle();
            }
        }

        @Override
        public void channelWritabilityChanged(ChannelHandlerContext ctx) {
            if (current != null) {
                current.downstreamWritable(ctx.channel().isWritable());
            }
            ctx.fireChannelWritabilityChanged();
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            if (current != null) {
                current.callerGone();
            }
            queued.forEach(FullHttpRequest::release);
            queued.clear();
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close();
        }
    }

    /** The verified SPIFFE ID of the caller on an mTLS connection, empty otherwise. */
    static String callerOf(Channel ch) {
        return ch.pipeline().get(SslHandler.class) instanceof SslHandler ssl
                ? dev.isthmus.proxy.identity.SpiffeSslContexts.peerId(ssl).orElse("") : "";
    }

    static DefaultFullHttpResponse plain(HttpResponseStatus status, String reason, String detail, boolean keepAlive) {
        byte[] body = (reason + (detail.isEmpty() ? "" : ": " + detail) + "\n").getBytes(StandardCharsets.UTF_8);
        var res = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, status, Unpooled.wrappedBuffer(body));
        res.headers().set(HttpHeaderNames.CONTENT_TYPE, "text/plain; charset=utf-8").set(HttpHeaderNames.CONTENT_LENGTH, body.length)
                .set(REASON_HEADER, reason);
        if (!keepAlive) {
            res.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
        }
        return res;
    }

    static void stripHopByHop(HttpHeaders headers) {
        String connection = headers.get(HttpHeaderNames.CONNECTION);
        if (connection != null) {
            for (String token : connection.split(",")) {
                headers.remove(token.strip());
            }
        }
        for (var name : HOP_BY_HOP) {
            headers.remove(name);
        }
    }

    /** One request: route, pick, send, maybe retry, stream the answer back. */
    private static final class Exchange {
        private final Frontend front;
        private final FullHttpRequest request;
        private final long start = System.nanoTime();
        private final boolean keepAlive;
        private final Set<InetSocketAddress> tried = new HashSet<>();
        private ProxyConfig.Route route;
        private Upstream upstream;
        private Channel upstreamChannel;
        private InetSocketAddress endpoint;
        /** The pool of {@link #endpoint}'s connections of this cluster: made once per attempt, used to take and to give back. */
        private PoolKey poolKey;
        private int attempts;
        /** The current attempt went on a kept-alive connection from the pool (else on a new one). */
        private boolean reused;
        /** Sent again on a new connection after a kept-alive one closed under it ({@link #upstreamReset}). */
        private boolean staleResent;
        /** An answer's head came on the current attempt. */
        private boolean answered;
        private boolean headersSent;
        private boolean done;
        private boolean discarding;
        private boolean upstreamKeepAlive;
        private boolean holdsRequest;
        private int heldRetries;
        private boolean upgrade;
        private int status;
        private Deadlines.Timeout timeout;
        /** The answer's head, held until its first content comes in the same read ({@link #onContent}) or the read ends ({@link #writeHead}). */
        private HttpResponse head;

        Exchange(Frontend front, FullHttpRequest request) {
            this.front = front;
            this.request = request;
            this.keepAlive = HttpUtil.isKeepAlive(request);
        }

        private EventLoop loop() {
            return front.channel.eventLoop();
        }

        void begin() {
            // An app that uses the sidecar as its HTTP proxy sends the absolute form (GET http://host/path):
            // route on its host, and pass the origin form upstream.
            String uri = request.uri();
            if (uri.regionMatches(true, 0, "http://", 0, 7)) {
                int slash = uri.indexOf('/', 7);
                String authority = slash < 0 ? uri.substring(7) : uri.substring(7, slash);
                request.setUri(slash < 0 ? "/" : uri.substring(slash));
                if (!authority.isEmpty()) {
                    request.headers().set(HttpHeaderNames.HOST, authority);
                }
            }
            String path = request.uri();
            int q = path.indexOf('?');
            if (q >= 0) {
                path = path.substring(0, q);
            }
            if (!front.shared.permits(front.caller, request.method().name(), path)) {
                local(HttpResponseStatus.FORBIDDEN, "rbac_denied", "caller '" + (front.caller == null || front.caller.isEmpty() ? "anonymous" : front.caller)
                        + "' may not " + request.method().name() + " " + path, "none");
                return;
            }
            var r = front.shared.route(request.headers().get(HttpHeaderNames.HOST), path,
                    name -> name.equals(":method") ? request.method().name() : request.headers().get(name));
            if (r.isEmpty()) {
                local(HttpResponseStatus.NOT_FOUND, "no_route", "no route for host '" + request.headers().get(HttpHeaderNames.HOST) + "' path '" + path + "'",
                        "none");
                return;
            }
            route = r.get();
            String cluster = route.pickCluster();
            upstream = front.shared.clusters().apply(cluster);
            if (upstream == null) {
                local(HttpResponseStatus.SERVICE_UNAVAILABLE, "no_healthy_upstream", "cluster '" + cluster + "' is not known", cluster);
                return;
            }
            String dropped = upstream.endpoints().dropped();
            if (dropped != null) {
                local(HttpResponseStatus.SERVICE_UNAVAILABLE, "drop_overload", "cluster '" + cluster + "' drops this request (category '" + dropped + "')",
                        cluster);
                return;
            }
            String open = upstream.breakers().tryRequest();
            if (open != null) {
                overloaded(open);
                return;
            }
            holdsRequest = true;
            if (!route.timeout().isZero()) {
                timeout = Deadlines.schedule(loop(), route.timeout().toMillis(), this::timedOut);
            }
            upgrade = "websocket".equalsIgnoreCase(request.headers().get(HttpHeaderNames.UPGRADE))
                    && request.headers().containsValue(HttpHeaderNames.CONNECTION, HttpHeaderValues.UPGRADE, true);
            stripHopByHop(request.headers());
            if (upgrade) {
                request.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.UPGRADE).set(HttpHeaderNames.UPGRADE, HttpHeaderValues.WEBSOCKET);
            }
            request.headers().remove(CALLER_HEADER);
            if (front.caller != null && !front.caller.isEmpty()) {
                request.headers().set(CALLER_HEADER, front.caller);
            }
            HttpUtil.setContentLength(request, request.content().readableBytes());
            attempt();
        }

        /**
         * Whether to try another endpoint after {@code condition} ({@code connect-failure},
         * {@code reset} or {@code 5xx} with its {@code status}), by the route's retry policy
         * ({@link ProxyConfig.RetrySpec#retries}), the method, the attempts left and the retry budget.
         */
        private boolean mayRetry(String condition, int status) {
            boolean safe = ProxyConfig.RetrySpec.anyMethod(condition) || IDEMPOTENT.contains(request.method());
            if (!(route.retry().retries(condition, status) && attempts <= route.retry().numRetries() && safe && !done && front.channel.isActive())) {
                return false;
            }
            String open = upstream.breakers().tryRetry();
            if (open != null) {
                Counter.builder("isthmus_retries_refused").tag(ProxyMetrics.LABEL_LISTENER, front.shared.listener())
                        .tag(ProxyMetrics.LABEL_REASON, open).register(front.shared.meters()).increment();
                return false;
            }
            heldRetries++;
            return true;
        }

        private void overloaded(String breaker) {
            status = 503;
            var res = plain(HttpResponseStatus.SERVICE_UNAVAILABLE, "overloaded", "circuit breaker " + breaker + " of cluster '" + upstream.name()
                    + "' is open", keepAlive);
            res.headers().set(OVERLOADED_HEADER, breaker);
            front.channel.writeAndFlush(res);
            finish(keepAlive, upstream.name());
        }

        private void releaseSlots() {
            if (holdsRequest) {
                holdsRequest = false;
                upstream.breakers().endRequest();
            }
            for (; heldRetries > 0; heldRetries--) {
                upstream.breakers().endRetry();
            }
        }

        void attempt() {
            if (done) {
                return;
            }
            answered = false;
            var picked = upstream.endpoints().pick(tried);
            if (picked.isEmpty()) {
                local(HttpResponseStatus.SERVICE_UNAVAILABLE, tried.isEmpty() ? "no_healthy_upstream" : "upstream_connect_failure",
                        tried.isEmpty() ? "no healthy endpoint in cluster '" + upstream.name() + "'" : "every endpoint tried failed", upstream.name());
                return;
            }
            endpoint = picked.get();
            poolKey = new PoolKey(upstream.name(), endpoint);
            tried.add(endpoint);
            attempts++;
            if (attempts > 1) {
                Counter.builder(ProxyMetrics.UPSTREAM_RETRIES).tag(ProxyMetrics.LABEL_LISTENER, front.shared.listener()).register(front.shared.meters())
                        .increment();
            }
            var pool = upgrade ? null : pool(front.shared, loop(), poolKey);
            Channel idle = null;
            long now = System.nanoTime();
            while (pool != null && (idle = pool.pollLast()) != null && !usable(idle, now)) {
                idle.close(); // closed, or idle too long: the server may be closing it (an upgrade always gets a connection of its own)
            }
            if (idle != null) {
                reused = true;
                send(idle, endpoint);
                return;
            }
            connectTo(endpoint);
        }

        /** A new connection to {@code target} for this attempt. */
        private void connectTo(InetSocketAddress target) {
            reused = false;
            String full = upstream.breakers().tryConnection();
            if (full != null) {
                overloaded(full);
                return;
            }
            var breakers = upstream.breakers();
            upstream.connect(loop(), front.shared.loops().channelType(), target,
                    p -> p.addLast("codec", new HttpClientCodec(4096, 16 * 1024, 8192)).addLast("backend", new Backend()))
                    .addListener((ChannelFutureListener) f -> {
                        f.channel().closeFuture().addListener(c -> breakers.endConnection());
                        if (!f.isSuccess()) {
                            connectFailed(target, f.cause());
                            return;
                        }
                        var ssl = f.channel().pipeline().get(SslHandler.class);
                        if (ssl == null) {
                            send(f.channel(), target);
                        } else {
                            ssl.handshakeFuture().addListener(h -> {
                                if (h.isSuccess()) {
                                    send(f.channel(), target);
                                } else {
                                    f.channel().close();
                                    connectFailed(target, h.cause());
                                }
                            });
                        }
                    });
        }

        private void connectFailed(InetSocketAddress target, Throwable cause) {
            if (dev.isthmus.proxy.tcp.UpstreamSelector.definitive(cause)) {
                upstream.endpoints().refused(target);
            } else {
                upstream.endpoints().failed(target);
            }
            log.debug("event=upstream_connect_failed listener={} upstream={} cause={}", front.shared.listener(), target, cause.toString());
            if (mayRetry("connect-failure", 0)) {
                attempt();
            } else {
                local(HttpResponseStatus.SERVICE_UNAVAILABLE, "upstream_connect_failure", target + ": " + cause.getMessage(), upstream.name());
            }
        }

        private void send(Channel ch, InetSocketAddress target) {
            if (done) {
                release(ch, true);
                return;
            }
            upstreamChannel = ch;
            upstream.endpoints().connected(target);
            ch.pipeline().get(Backend.class).exchange = this;
            // the request's own headers, not a copy: what differs from the caller's (hop-by-hop headers,
            // the caller identity, the length) was set in begin() and is the same for every attempt
            var copy = new DefaultFullHttpRequest(HttpVersion.HTTP_1_1, request.method(), request.uri(), request.content().retainedDuplicate(),
                    request.headers(), request.trailingHeaders());
            ch.writeAndFlush(copy).addListener((ChannelFutureListener) f -> {
                if (!f.isSuccess()) {
                    upstreamReset(ch);
                }
            });
        }

        /** The upstream connection closed before the answer ended. */
        void upstreamReset(Channel ch) {
            if (ch != upstreamChannel || done) {
                return;
            }
            upstream.endpoints().released(endpoint);
            upstreamChannel = null;
            if (reused && !answered && !staleResent && IDEMPOTENT.contains(request.method()) && front.channel.isActive()) {
                // a kept-alive connection the server closed as the request went out (its idle timeout): not the
                // endpoint's failure; sent again once, on a new connection to the same endpoint, as HTTP clients do
                staleResent = true;
                log.debug("event=stale_connection_resent listener={} cluster={} endpoint={}", front.shared.listener(), upstream.name(), endpoint);
                Counter.builder(ProxyMetrics.STALE_CONNECTION_RESENDS).tag(ProxyMetrics.LABEL_LISTENER, front.shared.listener())
                        .register(front.shared.meters()).increment();
                connectTo(endpoint);
                return;
            }
            upstream.endpoints().failed(endpoint);
            if (!headersSent && mayRetry("reset", 0)) {
                attempt();
            } else if (!headersSent) {
                local(HttpResponseStatus.SERVICE_UNAVAILABLE, "upstream_reset", "the upstream closed the connection before answering", upstream.name());
            } else {
                finish(false);
                front.channel.close();
            }
        }

        void onResponse(HttpResponse res) {
            if (done) {
                return;
            }
            status = res.status().code();
            answered = true;
            upstreamKeepAlive = HttpUtil.isKeepAlive(res);
            if (status >= 500) {
                upstream.endpoints().failed(endpoint); // outlier detection: consecutive 5xx
            } else {
                upstream.endpoints().succeeded(endpoint);
            }
            if (upgrade && status == HttpResponseStatus.SWITCHING_PROTOCOLS.code()) {
                tunnel(res);
                return;
            }
            if (status >= 500 && mayRetry("5xx", status)) {
                discarding = true; // read the rest and drop it, then retry elsewhere
                return;
            }
            // the decoder's head itself goes on (it is not used after this), less the hop-by-hop headers
            res.setProtocolVersion(HttpVersion.HTTP_1_1);
            stripHopByHop(res.headers());
            if (!keepAlive) {
                res.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
            }
            headersSent = true;
            head = res;
        }

        /**
         * Writes the head held back by {@link #onResponse}: its content did not come in the same read
         * (called at the end of each read of the upstream connection), so the caller gets it now.
         */
        void writeHead() {
            HttpResponse h = head;
            if (h != null) {
                head = null;
                if (!done) {
                    front.channel.writeAndFlush(h);
                }
            }
        }

        /**
         * The upstream accepted a WebSocket upgrade: the 101 goes to the caller, then both connections
         * stop speaking HTTP and carry bytes both ways (with backpressure) until either side closes.
         * Bytes a side sent right behind the handshake are kept by the decoders and handed on.
         */
        private void tunnel(HttpResponse res) {
            cancelTimeout();
            Channel down = front.channel;
            Channel up = upstreamChannel;
            var out = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.SWITCHING_PROTOCOLS);
            out.headers().set(res.headers());
            headersSent = true;
            down.writeAndFlush(out);
            var bytes = Counter.builder(ProxyMetrics.BYTES_RECEIVED).tag(ProxyMetrics.LABEL_LISTENER, front.shared.listener()).register(front.shared.meters());
            down.config().setAutoRead(false);
            up.config().setAutoRead(false);
            var dp = down.pipeline();
            for (String handler : List.of("proxy", "aggregator", "guard")) {
                if (dp.get(handler) != null) {
                    dp.remove(handler);
                }
            }
            dp.addLast(new BytesOnly());
            dp.addLast(new dev.isthmus.proxy.tcp.Splice(up, bytes));
            dp.remove("encoder");
            dp.remove("decoder");
            var upp = up.pipeline();
            upp.remove(Backend.class);
            upp.addLast(new BytesOnly());
            upp.addLast(new dev.isthmus.proxy.tcp.Splice(down, bytes));
            upp.remove("codec");
            InetSocketAddress used = endpoint;
            up.closeFuture().addListener(f -> upstream.endpoints().released(used));
            upstreamChannel = null;
            done = true;
            releaseSlots();
            front.shared.count(upstream.name(), status, start, front.caller, upstream.endpoints().region(endpoint));
            request.release();
            down.read();
            up.read();
        }

        void onContent(HttpContent content, Channel ch) {
            if (done) {
                content.release();
                return;
            }
            boolean last = content instanceof LastHttpContent;
            if (discarding) {
                content.release();
                if (last) {
                    discarding = false;
                    Channel used = upstreamChannel;
                    upstreamChannel = null;
                    upstream.endpoints().released(endpoint);
                    release(used, false);
                    attempt();
                }
                return;
            }
            HttpResponse h = head;
            if (h != null) {
                head = null;
                if (last) {
                    // the whole answer came in one read: one message, whose encoder puts a small body in
                    // the head's buffer, so the caller gets one buffer in one send instead of two
                    var whole = new DefaultFullHttpResponse(h.protocolVersion(), h.status(), content.content().retain(), h.headers(),
                            ((LastHttpContent) content).trailingHeaders());
                    content.release();
                    front.channel.writeAndFlush(whole);
                } else {
                    front.channel.write(h);
                    front.channel.writeAndFlush(content);
                }
            } else {
                front.channel.writeAndFlush(content.retain());
                content.release();
            }
            if (!front.channel.isWritable()) {
                ch.config().setAutoRead(false);
            }
            if (last) {
                Channel used = upstreamChannel;
                upstreamChannel = null;
                upstream.endpoints().released(endpoint);
                release(used, upstreamKeepAlive);
                finish(keepAlive);
            }
        }

        void downstreamWritable(boolean writable) {
            if (upstreamChannel != null) {
                upstreamChannel.config().setAutoRead(writable);
            }
        }

        void callerGone() {
            if (!done) {
                done = true;
                cancelTimeout();
                releaseSlots();
                if (upstreamChannel != null) {
                    upstream.endpoints().released(endpoint);
                    upstreamChannel.close();
                }
                request.release();
            }
        }

        private void timedOut() {
            if (done) {
                return;
            }
            if (upstreamChannel != null) {
                upstream.endpoints().released(endpoint);
                upstreamChannel.close();
                upstreamChannel = null;
            }
            if (!headersSent) {
                local(HttpResponseStatus.GATEWAY_TIMEOUT, "upstream_timeout", "no complete answer within " + route.timeout().toMillis() + " ms",
                        upstream.name());
            } else {
                finish(false);
                front.channel.close();
            }
        }

        /** Keeps a finished upstream connection for the next request to that endpoint, or closes it. */
        private void release(Channel ch, boolean reusable) {
            if (ch == null) {
                return;
            }
            if (ch.pipeline().get(Backend.class) instanceof Backend backend) {
                backend.exchange = null;
            }
            ch.config().setAutoRead(true);
            if (reusable && ch.isActive()) {
                if (ch.pipeline().get(Backend.class) instanceof Backend backend) {
                    backend.idleSince = System.nanoTime();
                }
                pool(front.shared, ch.eventLoop(), poolKey).addLast(ch); // taken last in, first out: the least idle first
            } else {
                ch.close();
            }
        }

        private void local(HttpResponseStatus s, String reason, String detail, String cluster) {
            if (done) {
                return;
            }
            status = s.code();
            front.channel.writeAndFlush(plain(s, reason, detail, keepAlive));
            log.debug("event=local_reply listener={} status={} reason={} detail=\"{}\"", front.shared.listener(), s.code(), reason, detail);
            finish(keepAlive, cluster);
        }

        private void finish(boolean keep) {
            finish(keep, upstream == null ? "none" : upstream.name());
        }

        private void finish(boolean keep, String cluster) {
            if (done) {
                return;
            }
            done = true;
            cancelTimeout();
            releaseSlots();
            front.shared.count(cluster, status, start, front.caller, upstream != null && endpoint != null ? upstream.endpoints().region(endpoint) : "");
            request.release();
            front.finished(keep);
        }

        private void cancelTimeout() {
            if (timeout != null) {
                timeout.cancel();
            }
        }
    }

    /** After an upgrade: drops what the HTTP decoders still emit for the handshake (its empty last content), passes bytes on. */
    private static final class BytesOnly extends ChannelInboundHandlerAdapter {
        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (msg instanceof io.netty.buffer.ByteBuf) {
                ctx.fireChannelRead(msg);
            } else {
                ReferenceCountUtil.release(msg);
            }
        }
    }

    /**
     * A kept-alive upstream connection unused for this long is closed (checked on the loop every half
     * of it, and when taken): servers close idle connections themselves, often after a few seconds,
     * and a request written as one does is lost with it. Envoy's default is an hour.
     */
    static volatile long idleNanos = java.util.concurrent.TimeUnit.SECONDS.toNanos(60);

    /** The loop's idle connections of a cluster to an endpoint (made with the loop's sweep of idle connections on first use). */
    private static ArrayDeque<Channel> pool(Shared shared, EventLoop loop, PoolKey key) {
        return shared.pools().computeIfAbsent(loop, l -> {
            var byKey = new HashMap<PoolKey, ArrayDeque<Channel>>();
            long idle = idleNanos;
            shared.sweeps().add(l.scheduleAtFixedRate(() -> closeIdle(byKey), idle / 2, idle / 2, java.util.concurrent.TimeUnit.NANOSECONDS));
            return byKey;
        }).computeIfAbsent(key, e -> new ArrayDeque<>());
    }

    /** Open, and not idle for longer than {@link #idleNanos}. */
    private static boolean usable(Channel ch, long now) {
        return ch.isActive() && ch.pipeline().get(Backend.class) instanceof Backend b && now - b.idleSince < idleNanos;
    }

    /**
     * The event loop's own map of pooled upstream connections in {@code byLoop} (a static map, one
     * entry per loop), made on first use with {@code sweep} run on the loop every {@code everyNanos};
     * the entry goes when the loop terminates, as its sweep does.
     */
    static <V> Map<PoolKey, V> loopPools(Map<EventLoop, Map<PoolKey, V>> byLoop, EventLoop loop, long everyNanos,
            java.util.function.Consumer<Map<PoolKey, V>> sweep) {
        Map<PoolKey, V> made = byLoop.get(loop);
        if (made != null) { // the usual case: no capturing lambda made for computeIfAbsent
            return made;
        }
        return byLoop.computeIfAbsent(loop, l -> {
            var pools = new HashMap<PoolKey, V>();
            l.scheduleAtFixedRate(() -> sweep.accept(pools), everyNanos, everyNanos, java.util.concurrent.TimeUnit.NANOSECONDS);
            l.terminationFuture().addListener(f -> byLoop.remove(l));
            return pools;
        });
    }

    /** Closes the loop's pooled connections idle for longer than {@link #idleNanos} (the oldest are first in each pool). */
    private static void closeIdle(Map<PoolKey, ArrayDeque<Channel>> byKey) {
        closeIdle(byKey, HttpProxy::usable);
    }

    /** Closes the pooled connections that are no longer {@code usable} (given the time now), from the oldest of each pool. */
    static void closeIdle(Map<PoolKey, ArrayDeque<Channel>> byKey, java.util.function.BiPredicate<Channel, Long> usable) {
        long now = System.nanoTime();
        for (var pool : byKey.values()) {
            Channel ch;
            while ((ch = pool.peekFirst()) != null && !usable.test(ch, now)) {
                pool.pollFirst();
                ch.close();
            }
        }
    }

    /** The handler on an upstream connection: passes the answer to the exchange that owns the connection now. */
    private static final class Backend extends ChannelInboundHandlerAdapter {
        Exchange exchange;
        /** When it was last given back to the pool. */
        long idleSince = System.nanoTime();

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            Exchange e = exchange;
            if (e == null) {
                ReferenceCountUtil.release(msg); // nothing asked: an idle connection talking
                ctx.close();
                return;
            }
            if (msg instanceof HttpResponse res) {
                if (res.decoderResult().isFailure()) {
                    ReferenceCountUtil.release(msg);
                    ctx.close();
                    return;
                }
                e.onResponse(res);
            }
            if (msg instanceof HttpContent content) {
                e.onContent(content, ctx.channel());
            } else {
                ReferenceCountUtil.release(msg);
            }
        }

        @Override
        public void channelReadComplete(ChannelHandlerContext ctx) {
            Exchange e = exchange;
            if (e != null) {
                e.writeHead();
            }
            ctx.fireChannelReadComplete();
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            Exchange e = exchange;
            if (e != null) {
                e.upstreamReset(ctx.channel());
            }
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close();
        }
    }
}
