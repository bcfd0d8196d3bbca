package dev.isthmus.proxy.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.proxy.EventLoops;
import dev.isthmus.proxy.config.xds.XdsTranslator;
import dev.isthmus.proxy.tcp.RelayManager;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerInterceptor;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** A grpc-java client and server (h2c) with the proxy between them: unary, bidi streaming, error status in trailers. */
class GrpcThroughProxyTest {

    static final MethodDescriptor.Marshaller<String> TEXT = new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(String value) {
            return new ByteArrayInputStream(value.getBytes(StandardCharsets.UTF_8));
        }

        @Override
        public String parse(InputStream stream) {
            try {
                return new String(stream.readAllBytes(), StandardCharsets.UTF_8);
            } catch (java.io.IOException e) {
                throw new IllegalStateException(e);
            }
        }
    };
    static final MethodDescriptor<String, String> UNARY = MethodDescriptor.<String, String>newBuilder(TEXT, TEXT)
            .setType(MethodDescriptor.MethodType.UNARY).setFullMethodName("test.Echo/Say").build();
    /** Answered only when the test says so ({@link #hanging}). */
    static final MethodDescriptor<String, String> HANG = MethodDescriptor.<String, String>newBuilder(TEXT, TEXT)
            .setType(MethodDescriptor.MethodType.UNARY).setFullMethodName("test.Echo/Hang").build();
    static final MethodDescriptor<String, String> CHAT = MethodDescriptor.<String, String>newBuilder(TEXT, TEXT)
            .setType(MethodDescriptor.MethodType.BIDI_STREAMING).setFullMethodName("test.Echo/Chat").build();

    private final EventLoops loops = EventLoops.create("grpc-test", 2);
    private final SimpleMeterRegistry meters = new SimpleMeterRegistry();
    private Server server;
    private RelayManager manager;
    private ManagedChannel channel;
    private final AtomicReference<String> seenCaller = new AtomicReference<>("unset");
    private final LinkedBlockingQueue<StreamObserver<String>> hanging = new LinkedBlockingQueue<>();
    /** The gRPC server's SETTINGS_MAX_CONCURRENT_STREAMS (0: grpc-java's default, no limit). */
    private int maxCallsPerConnection;

    private final List<AutoCloseable> others = new java.util.ArrayList<>();

    @AfterEach
    void stop() throws Exception {
        for (var o : others) {
            o.close();
        }
        if (channel != null) {
            channel.shutdownNow();
        }
        if (manager != null) {
            manager.close();
        }
        if (server != null) {
            server.shutdownNow();
        }
        var workers = new java.util.ArrayList<io.netty.channel.EventLoop>();
        loops.workers().forEach(e -> workers.add((io.netty.channel.EventLoop) e));
        boolean used = workers.stream().anyMatch(Http2Relay::hasConnectionsOf);
        loops.close();
        // the relay's static map of upstream connections lets go of a loop once it has terminated
        long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(5);
        while (workers.stream().anyMatch(Http2Relay::hasConnectionsOf) && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        assertFalse(workers.stream().anyMatch(Http2Relay::hasConnectionsOf), "terminated loops still in the relay's map (used: " + used + ")");
    }

    int startServer() throws Exception {
        var key = Metadata.Key.of(HttpProxy.CALLER_HEADER, Metadata.ASCII_STRING_MARSHALLER);
        ServerInterceptor callerSeen = new ServerInterceptor() {
            @Override
            public <Q, R> io.grpc.ServerCall.Listener<Q> interceptCall(io.grpc.ServerCall<Q, R> call, Metadata headers,
                    io.grpc.ServerCallHandler<Q, R> next) {
                seenCaller.set(String.valueOf(headers.get(key)));
                return next.startCall(call, headers);
            }
        };
        var service = ServerServiceDefinition.builder("test.Echo")
                .addMethod(UNARY, ServerCalls.asyncUnaryCall((String req, StreamObserver<String> out) -> {
                    if (req.equals("fail")) {
                        out.onError(Status.FAILED_PRECONDITION.withDescription("asked to fail").asRuntimeException());
                        return;
                    }
                    out.onNext("hello " + req);
                    out.onCompleted();
                }))
                .addMethod(HANG, ServerCalls.asyncUnaryCall((String req, StreamObserver<String> out) -> hanging.add(out)))
                .addMethod(CHAT, ServerCalls.asyncBidiStreamingCall((StreamObserver<String> out) -> new StreamObserver<String>() {
                    @Override
                    public void onNext(String value) {
                        out.onNext("echo " + value);
                    }

                    @Override
                    public void onError(Throwable t) {
                    }

                    @Override
                    public void onCompleted() {
                        out.onCompleted();
                    }
                })).build();
        var builder = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0));
        if (maxCallsPerConnection > 0) {
            builder.maxConcurrentCallsPerConnection(maxCallsPerConnection);
        }
        server = builder.addService(io.grpc.ServerInterceptors.intercept(service, callerSeen)).build().start();
        return server.getPort();
    }

    @Test
    void unaryAndBidiStreamingCallsAndErrorStatusesPassThrough() throws Exception {
        int port = startProxy();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
        unaryAndStreaming("null");
    }

    @Test
    void largeMessagesBothWaysOnConcurrentStreamsPassTheFlowControlWindows() throws Exception {
        int port = startProxy();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
        // 4 x 3 MiB each way on one upstream connection: far beyond HTTP/2's initial 64 KiB windows, so the
        // relay must give the bytes it forwarded back to each side's windows, or the calls stall
        String big = "x".repeat(3 * 1024 * 1024);
        var calls = new java.util.ArrayList<com.google.common.util.concurrent.ListenableFuture<String>>();
        for (int i = 0; i < 4; i++) {
            calls.add(ClientCalls.futureUnaryCall(channel.newCall(UNARY, CallOptions.DEFAULT.withDeadlineAfter(30, TimeUnit.SECONDS)), big + i));
        }
        for (int i = 0; i < 4; i++) {
            assertEquals("hello " + big + i, calls.get(i).get(40, TimeUnit.SECONDS), "call " + i);
        }
    }

    int startProxy() throws Exception {
        return startProxy("", "");
    }

    /** @param routeOptions more fields of the route's {@code route} ({@code , timeout: 1s}); {@code clusterOptions} lines of the cluster's */
    int startProxy(String routeOptions, String clusterOptions) throws Exception {
        int backend = startServer();
        int port = dev.isthmus.proxy.Loopback.freePort();
        String yaml = """
                static_resources:
                  listeners:
                  - name: grpc-out
                    address: { socket_address: { address: 127.0.0.1, port_value: %d } }
                    filter_chains:
                    - filters:
                      - name: envoy.filters.network.http_connection_manager
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                          stat_prefix: grpc
                          route_config:
                            name: grpc
                            virtual_hosts:
                            - { name: all, domains: [ "*" ], routes: [ { match: { prefix: "/test.Echo/" }, route: { cluster: echo %s } } ] }
                  clusters:
                  - name: echo
                    type: STATIC
                    connect_timeout: 1s
                %s
                    typed_extension_protocol_options:
                      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
                        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
                        explicit_http_config: { http2_protocol_options: {} }
                    load_assignment:
                      cluster_name: echo
                      endpoints:
                      - lb_endpoints:
                        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: %d } } }
                """.formatted(port, routeOptions, clusterOptions, backend);
        var b = XdsTranslator.parseBootstrap(yaml, "grpc.yaml");
        manager = new RelayManager(loops, meters, null);
        manager.apply(XdsTranslator.translate("t", b.getStaticResources().getListenersList(), b.getStaticResources().getClustersList(), List.of()));
        return port;
    }

    void unaryAndStreaming(String expectedCaller) throws Exception {
        unaryAndStreaming(expectedCaller, "echo");
    }

    void unaryAndStreaming(String expectedCaller, String clusterName) throws Exception {

        var callerKey = Metadata.Key.of(HttpProxy.CALLER_HEADER, Metadata.ASCII_STRING_MARSHALLER);
        var forged = new Metadata();
        forged.put(callerKey, "spiffe://forged/ns/x/sa/y");
        var withForgedHeader = io.grpc.stub.MetadataUtils.newAttachHeadersInterceptor(forged);
        var intercepted = io.grpc.ClientInterceptors.intercept(channel, withForgedHeader);
        assertEquals("hello mesh", ClientCalls.blockingUnaryCall(intercepted, UNARY, CallOptions.DEFAULT.withDeadlineAfter(5, TimeUnit.SECONDS), "mesh"));
        assertEquals(expectedCaller, seenCaller.get(), "the caller header from the app is removed (and set from mTLS on an inbound listener)");

        var e = org.junit.jupiter.api.Assertions.assertThrows(StatusRuntimeException.class,
                () -> ClientCalls.blockingUnaryCall(channel, UNARY, CallOptions.DEFAULT.withDeadlineAfter(5, TimeUnit.SECONDS), "fail"));
        assertEquals(Status.Code.FAILED_PRECONDITION, e.getStatus().getCode(), "the status travels in the trailers");
        assertEquals("asked to fail", e.getStatus().getDescription());

        var answers = new LinkedBlockingQueue<String>();
        var done = new java.util.concurrent.CountDownLatch(1);
        var call = channel.newCall(CHAT, CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS));
        var requests = ClientCalls.asyncBidiStreamingCall(call, collecting(answers, done));
        for (int i = 0; i < 5; i++) {
            requests.onNext("m" + i);
            assertEquals("echo m" + i, answers.poll(5, TimeUnit.SECONDS), "each message is answered while the stream stays open");
        }
        requests.onCompleted();
        assertTrue(done.await(5, TimeUnit.SECONDS));
        java.util.function.DoubleSupplier ok = () -> {
            return meters.find("isthmus_requests").tags("destination_service", clusterName, "response_code", "200").counters().stream()
                    .mapToDouble(io.micrometer.core.instrument.Counter::count).sum();
        };
        for (int i = 0; i < 40 && ok.getAsDouble() < 3; i++) {
            Thread.sleep(50); // a stream is counted when its channel closes, just after the client saw the end
        }
        assertTrue(ok.getAsDouble() >= 3, "counted: " + ok.getAsDouble());
    }

    /**
     * The route's timeout starts when the caller's stream ends (Envoy's rule): a unary call the server
     * leaves unanswered is answered 504 by the proxy, while a bidirectional stream that lasts longer
     * than the timeout, but is still sending, is not cut.
     */
    @Test
    void theRouteTimeoutAnswersAStalledCallButDoesNotCutAStreamStillSending() throws Exception {
        int port = startProxy(", timeout: 0.4s", "");
        channel = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
        long start = System.nanoTime();
        var e = org.junit.jupiter.api.Assertions.assertThrows(StatusRuntimeException.class,
                () -> ClientCalls.blockingUnaryCall(channel, HANG, CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS), "x"));
        long ms = (System.nanoTime() - start) / 1_000_000;
        assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode(), e.toString()); // grpc-java's reading of HTTP 504
        assertTrue(e.getStatus().getDescription().contains("504") && e.getMessage().contains("upstream_timeout"), e.toString());
        assertTrue(ms >= 350 && ms < 5000, "answered after " + ms + " ms");

        var answers = new LinkedBlockingQueue<String>();
        var done = new java.util.concurrent.CountDownLatch(1);
        var requests = ClientCalls.asyncBidiStreamingCall(channel.newCall(CHAT, CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS)),
                collecting(answers, done));
        for (int i = 0; i < 4; i++) { // 4 x 300 ms: three times the route's timeout
            requests.onNext("m" + i);
            assertEquals("echo m" + i, answers.poll(5, TimeUnit.SECONDS));
            Thread.sleep(300);
        }
        requests.onCompleted();
        assertTrue(done.await(5, TimeUnit.SECONDS) && answers.isEmpty(), "the stream ends normally: " + answers);
    }

    /** A call's answers into {@code answers} (an error as {@code "error ..."}); {@code done} counts down when it ends either way. */
    static StreamObserver<String> collecting(LinkedBlockingQueue<String> answers, java.util.concurrent.CountDownLatch done) {
        return new StreamObserver<>() {
            @Override
            public void onNext(String value) {
                answers.add(value);
            }

            @Override
            public void onError(Throwable t) {
                answers.add("error " + t);
                done.countDown();
            }

            @Override
            public void onCompleted() {
                done.countDown();
            }
        };
    }

    /**
     * {@code max_requests} counts HTTP/2 streams in flight: with 1, a second call while one hangs is
     * answered 503 naming the breaker; once the first is answered, calls go through again.
     */
    @Test
    void theMaxRequestsBreakerRefusesStreamsOverTheLimitAndFreesItsSlot() throws Exception {
        int port = startProxy("", "    circuit_breakers: { thresholds: [ { max_requests: 1 } ] }");
        channel = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
        var first = ClientCalls.futureUnaryCall(channel.newCall(HANG, CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS)), "first");
        var server = hanging.poll(5, TimeUnit.SECONDS);
        assertTrue(server != null, "the first call reached the server");
        var e = org.junit.jupiter.api.Assertions.assertThrows(StatusRuntimeException.class,
                () -> ClientCalls.blockingUnaryCall(channel, UNARY, CallOptions.DEFAULT.withDeadlineAfter(5, TimeUnit.SECONDS), "second"));
        assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode(), e.toString());
        assertTrue(e.getMessage().contains("503") && e.getMessage().contains("max_requests"), e.toString());
        server.onNext("answered");
        server.onCompleted();
        assertEquals("answered", first.get(5, TimeUnit.SECONDS));
        String third = null;
        for (int i = 0; i < 50 && third == null; i++) { // the slot is given back as the first stream's answer ends
            try {
                third = ClientCalls.blockingUnaryCall(channel, UNARY, CallOptions.DEFAULT.withDeadlineAfter(5, TimeUnit.SECONDS), "third");
            } catch (StatusRuntimeException refused) {
                Thread.sleep(20);
            }
        }
        assertEquals("hello third", third);
    }

    /**
     * A stream whose first endpoint refuses the connection goes to the next one when the route
     * retries connect failures (gRPC's POST too: nothing had left the proxy); without a retry policy
     * the caller gets 503 upstream_connect_failure. Both clusters: a dead endpoint at priority 0, the
     * server at priority 1.
     */
    @Test
    void aRefusedConnectionIsRetriedOnTheNextEndpointWhenTheRouteSaysSo() throws Exception {
        int backend = startServer();
        int dead = dev.isthmus.proxy.Loopback.freePort();
        int retrying = dev.isthmus.proxy.Loopback.freePort();
        int plain = dev.isthmus.proxy.Loopback.freePort();
        String yaml = "static_resources:\n  listeners:\n" + retryingProxy("retrying", retrying, "connect-failure") + listener("plain", plain, "")
                + "  clusters:\n" + twoLevelCluster("retrying", dead, backend) + twoLevelCluster("plain", dead, backend);
        manager = new RelayManager(loops, meters, null);
        manager.apply(config(yaml));

        channel = NettyChannelBuilder.forAddress("127.0.0.1", plain).usePlaintext().build();
        var e = org.junit.jupiter.api.Assertions.assertThrows(StatusRuntimeException.class,
                () -> ClientCalls.blockingUnaryCall(channel, UNARY, CallOptions.DEFAULT.withDeadlineAfter(5, TimeUnit.SECONDS), "plain"));
        assertTrue(e.getMessage().contains("503") && e.getMessage().contains("upstream_connect_failure"), e.toString());
        channel.shutdownNow();

        channel = NettyChannelBuilder.forAddress("127.0.0.1", retrying).usePlaintext().build();
        assertEquals("hello retried", ClientCalls.blockingUnaryCall(channel, UNARY, CallOptions.DEFAULT.withDeadlineAfter(5, TimeUnit.SECONDS), "retried"));
        assertEquals(1.0, meters.get(dev.isthmus.proxy.ProxyMetrics.UPSTREAM_RETRIES).tag("listener", "retrying").counter().count());
    }

    @Test
    void aRapidResetFloodClosesThatConnectionAndOthersAreServed() throws Exception {
        int port = startProxy();
        var parent = new io.netty.bootstrap.Bootstrap().group(loops.workers()).channel(loops.channelType())
                .handler(new io.netty.channel.ChannelInitializer<io.netty.channel.Channel>() {
                    @Override
                    protected void initChannel(io.netty.channel.Channel ch) {
                        ch.pipeline().addLast(io.netty.handler.codec.http2.Http2FrameCodecBuilder.forClient().build(),
                                new io.netty.handler.codec.http2.Http2MultiplexHandler(new io.netty.channel.ChannelInboundHandlerAdapter()),
                                new io.netty.channel.ChannelInboundHandlerAdapter() {
                                    @Override
                                    public void exceptionCaught(io.netty.channel.ChannelHandlerContext ctx, Throwable cause) {
                                        ctx.close();
                                    }
                                });
                    }
                }).connect("127.0.0.1", port).sync().channel();
        for (int i = 0; i < 400 && parent.isActive(); i++) {
            var opened = new io.netty.handler.codec.http2.Http2StreamChannelBootstrap(parent).open().await();
            if (!opened.isSuccess()) {
                break; // the proxy closed the connection under us: what the test wants to see
            }
            var stream = opened.getNow();
            var headers = new io.netty.handler.codec.http2.DefaultHttp2Headers().method("POST").path("/test.Echo/Say").scheme("http")
                    .authority("x").set("content-type", "application/grpc");
            stream.write(new io.netty.handler.codec.http2.DefaultHttp2HeadersFrame(headers, false));
            stream.writeAndFlush(new io.netty.handler.codec.http2.DefaultHttp2ResetFrame(io.netty.handler.codec.http2.Http2Error.CANCEL));
        }
        assertTrue(parent.closeFuture().await(10, TimeUnit.SECONDS), "the flooding connection is closed by the proxy");
        channel = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
        unaryAndStreaming("null");
    }

    static final String H2_CLUSTER_OPTIONS = """
                typed_extension_protocol_options:
                  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
                    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
                    explicit_http_config: { http2_protocol_options: {} }
            """;


    static dev.isthmus.proxy.config.xds.ProxyConfig config(String yaml) throws Exception {
        var b = XdsTranslator.parseBootstrap(yaml, "test.yaml");
        return XdsTranslator.translate("t", b.getStaticResources().getListenersList(), b.getStaticResources().getClustersList(), List.of());
    }

    /** Two sidecars: the caller's (h2c from the app, HTTP/2 over mTLS out) and the callee's (mTLS in, h2c to the gRPC server). */
    @Test
    void grpcBetweenTwoSidecarsOverMtlsKeepsStreamingAndCarriesTheCallersIdentity() throws Exception {
        int backend = startServer();
        var east = dev.isthmus.proxy.identity.SpiffeTlsTest.root("us-east.acme.isthmus");
        var west = dev.isthmus.proxy.identity.SpiffeTlsTest.root("eu-west.acme.isthmus");
        var bundle = java.util.Map.of("us-east.acme.isthmus", List.of(east.cert()), "eu-west.acme.isthmus", List.of(west.cert()));
        String ordersId = "spiffe://us-east.acme.isthmus/ns/shop/sa/orders";
        String catalogId = "spiffe://eu-west.acme.isthmus/ns/shop/sa/product-catalog";
        var orders = dev.isthmus.proxy.identity.SpiffeTlsTest.leaf(east, ordersId, bundle);
        var catalog = dev.isthmus.proxy.identity.SpiffeTlsTest.leaf(west, catalogId, bundle);
        int inbound = dev.isthmus.proxy.Loopback.freePort();
        int outbound = dev.isthmus.proxy.Loopback.freePort();
        var callee = new RelayManager(loops, meters, () -> java.util.Optional.of(catalog));
        callee.apply(config("""
                static_resources:
                  listeners:
                  - name: inbound
                    address: { socket_address: { address: 127.0.0.1, port_value: %d } }
                    filter_chains:
                    - transport_socket:
                        name: envoy.transport_sockets.tls
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
                          require_client_certificate: true
                      filters:
                      - name: envoy.filters.network.http_connection_manager
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                          stat_prefix: inbound
                          route_config:
                            virtual_hosts: [ { name: app, domains: [ "*" ], routes: [ { match: { prefix: "/" }, route: { cluster: app } } ] } ]
                  clusters:
                  - name: app
                    type: STATIC
                %s    load_assignment:
                      cluster_name: app
                      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: %d } } } } ] } ]
                """.formatted(inbound, H2_CLUSTER_OPTIONS, backend)));
        manager = new RelayManager(loops, meters, () -> java.util.Optional.of(orders));
        manager.apply(config("""
                static_resources:
                  listeners:
                  - name: outbound
                    address: { socket_address: { address: 127.0.0.1, port_value: %d } }
                    filter_chains:
                    - filters:
                      - name: envoy.filters.network.http_connection_manager
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                          stat_prefix: outbound
                          route_config:
                            virtual_hosts: [ { name: catalog, domains: [ "*" ], routes: [ { match: { prefix: "/" }, route: { cluster: catalog } } ] } ]
                  clusters:
                  - name: catalog
                    type: STATIC
                %s    transport_socket:
                      name: envoy.transport_sockets.tls
                      typed_config:
                        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
                        common_tls_context:
                          validation_context:
                            match_typed_subject_alt_names: [ { san_type: URI, matcher: { exact: "%s" } } ]
                    load_assignment:
                      cluster_name: catalog
                      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: %d } } } } ] } ]
                """.formatted(outbound, H2_CLUSTER_OPTIONS, catalogId, inbound)));
        try {
            channel = NettyChannelBuilder.forAddress("127.0.0.1", outbound).usePlaintext().build();
            unaryAndStreaming(ordersId, "catalog");
            var inboundCount = meters.find("isthmus_requests").tags("listener", "inbound", "source_cluster", "us-east").counters();
            assertTrue(!inboundCount.isEmpty(), "the callee's proxy labels the requests with the caller's cluster");
            var alpn = meters.find("isthmus_tls_alpn").tags("listener", "inbound", "protocol", "h2").counter();
            assertTrue(alpn != null && alpn.count() >= 1, "the sidecars agreed on h2 by ALPN over their mTLS");
        } finally {
            callee.close();
        }
    }

    /** curl as an h2c client (prior knowledge), a real gRPC request by hand: HTTP/2 200 and the answer framed by gRPC. */
    @Test
    void curlSpeaksH2cThroughTheProxy() throws Exception {
        int port = startProxy();
        byte[] message = "curl".getBytes(StandardCharsets.UTF_8);
        var frame = new java.io.ByteArrayOutputStream();
        frame.write(0);
        frame.write(new byte[] {0, 0, 0, (byte) message.length});
        frame.write(message);
        var p = new ProcessBuilder("curl", "-s", "--http2-prior-knowledge", "-X", "POST", "-H", "content-type: application/grpc", "-H", "te: trailers",
                "--data-binary", "@-", "-D", "-", "http://127.0.0.1:" + port + "/test.Echo/Say").redirectErrorStream(true).start();
        p.getOutputStream().write(frame.toByteArray());
        p.getOutputStream().close();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.ISO_8859_1);
        assertTrue(p.waitFor(10, TimeUnit.SECONDS));
        assertTrue(out.startsWith("HTTP/2 200"), out);
        assertTrue(out.contains("hello curl"), out);
    }

    /** A listener whose one route goes to the cluster of its name and retries {@code retryOn} (2 retries). */
    static String retryingProxy(String name, int port, String retryOn) {
        return listener(name, port, ", retry_policy: { retry_on: \"%s\", num_retries: 2 }".formatted(retryOn));
    }

    /** A listener whose one route goes to the cluster of its name, with {@code routeOptions} (", timeout: 1s"). */
    static String listener(String name, int port, String routeOptions) {
        return """
                  - name: %1$s
                    address: { socket_address: { address: 127.0.0.1, port_value: %2$d } }
                    filter_chains:
                    - filters:
                      - name: envoy.filters.network.http_connection_manager
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                          stat_prefix: %1$s
                          route_config:
                            name: %1$s
                            virtual_hosts:
                            - { name: all, domains: [ "*" ], routes: [ { match: { prefix: "/" }, route: { cluster: %1$s %3$s } } ] }
                """.formatted(name, port, routeOptions);
    }

    /** An HTTP/2 cluster of {@code first} at priority 0 and {@code second} at priority 1. */
    static String twoLevelCluster(String name, int first, int second) {
        return """
                  - name: %1$s
                    type: STATIC
                    connect_timeout: 1s
                %2$s    load_assignment:
                      cluster_name: %1$s
                      endpoints:
                      - priority: 0
                        lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: %3$d } } } } ]
                      - priority: 1
                        lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: %4$d } } } } ]
                """.formatted(name, H2_CLUSTER_OPTIONS, first, second);
    }

    String unary(int port, String message) {
        if (channel != null) {
            channel.shutdownNow();
        }
        channel = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
        return ClientCalls.blockingUnaryCall(channel, UNARY, CallOptions.DEFAULT.withDeadlineAfter(5, TimeUnit.SECONDS), message);
    }

    double retries(String listener) {
        var c = meters.find(dev.isthmus.proxy.ProxyMetrics.UPSTREAM_RETRIES).tag("listener", listener).counter();
        return c == null ? 0 : c.count();
    }

    /**
     * After the stream was sent: a trailers-only gRPC answer whose status the route names
     * ({@code unavailable}) and a stream the upstream refuses (RST_STREAM REFUSED_STREAM) go to the
     * next endpoint, for gRPC's POST too; a status the route does not name reaches the caller. At
     * priority 0 a gRPC server that answers every call UNAVAILABLE, or an HTTP/2 server that refuses
     * every stream; at priority 1 the echo server.
     */
    @Test
    void aRetriableGrpcStatusOrARefusedStreamIsRetriedOnTheNextEndpoint() throws Exception {
        int backend = startServer();
        var unavailable = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0)).addService(ServerServiceDefinition.builder("test.Echo")
                .addMethod(UNARY, ServerCalls.asyncUnaryCall((String req, StreamObserver<String> out) -> out.onError(
                        Status.UNAVAILABLE.withDescription("draining").asRuntimeException()))).build()).build().start();
        others.add(unavailable::shutdownNow);
        var refusing = new io.netty.bootstrap.ServerBootstrap().group(loops.workers()).channel(loops.serverChannelType())
                .childHandler(new io.netty.channel.ChannelInitializer<io.netty.channel.Channel>() {
                    @Override
                    protected void initChannel(io.netty.channel.Channel ch) {
                        ch.pipeline().addLast(io.netty.handler.codec.http2.Http2FrameCodecBuilder.forServer().build(),
                                new io.netty.channel.ChannelInboundHandlerAdapter() {
                                    @Override
                                    public void channelRead(io.netty.channel.ChannelHandlerContext ctx, Object msg) {
                                        if (msg instanceof io.netty.handler.codec.http2.Http2HeadersFrame h && h.headers().method() != null) {
                                            ctx.writeAndFlush(new io.netty.handler.codec.http2.DefaultHttp2ResetFrame(
                                                    io.netty.handler.codec.http2.Http2Error.REFUSED_STREAM).stream(h.stream()));
                                        }
                                        io.netty.util.ReferenceCountUtil.release(msg);
                                    }
                                });
                    }
                }).bind("127.0.0.1", 0).sync().channel();
        others.add(() -> refusing.close().sync());
        int refusingPort = ((InetSocketAddress) refusing.localAddress()).getPort();
        int onUnavailable = dev.isthmus.proxy.Loopback.freePort();
        int on5xx = dev.isthmus.proxy.Loopback.freePort();
        int onRefused = dev.isthmus.proxy.Loopback.freePort();
        int onConnectFailure = dev.isthmus.proxy.Loopback.freePort();
        String yaml = "static_resources:\n  listeners:\n"
                + retryingProxy("unavailable", onUnavailable, "unavailable") + retryingProxy("fivexx", on5xx, "5xx")
                + retryingProxy("refused", onRefused, "refused-stream") + retryingProxy("connectonly", onConnectFailure, "connect-failure")
                + "  clusters:\n" + twoLevelCluster("unavailable", unavailable.getPort(), backend) + twoLevelCluster("fivexx", unavailable.getPort(), backend)
                + twoLevelCluster("refused", refusingPort, backend) + twoLevelCluster("connectonly", refusingPort, backend);
        manager = new RelayManager(loops, meters, null);
        manager.apply(config(yaml));

        assertEquals("hello again", unary(onUnavailable, "again"), "UNAVAILABLE at priority 0, retried at priority 1");
        assertEquals(1.0, retries("unavailable"));
        var e = org.junit.jupiter.api.Assertions.assertThrows(StatusRuntimeException.class, () -> unary(on5xx, "x"));
        assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode(), "5xx does not cover a gRPC status: " + e);
        assertEquals("draining", e.getStatus().getDescription(), "the upstream's own status, passed through");
        assertEquals(0.0, retries("fivexx"));

        assertEquals("hello refused", unary(onRefused, "refused"), "a refused stream is retried whatever the method");
        assertEquals(1.0, retries("refused"));
        e = org.junit.jupiter.api.Assertions.assertThrows(StatusRuntimeException.class, () -> unary(onConnectFailure, "x"));
        assertEquals(0.0, retries("connectonly"), "connect-failure alone does not retry a refused stream: " + e);
    }

    /**
     * A stream whose upstream connection is lost before the answer (the endpoint closes it once the
     * request has arrived) is retried with {@code reset} for idempotent methods only: curl's GET over
     * h2c gets the echo server's answer, gRPC's POST gets 503 upstream_reset.
     */
    @Test
    void aStreamLostBeforeItsAnswerIsRetriedForIdempotentMethodsOnly() throws Exception {
        int backend = startServer();
        var closing = new java.net.ServerSocket(0, 50, java.net.InetAddress.getLoopbackAddress());
        others.add(closing);
        Thread.ofVirtual().start(() -> {
            while (!closing.isClosed()) {
                try {
                    var socket = closing.accept();
                    Thread.ofVirtual().start(() -> {
                        try (socket) {
                            socket.setSoTimeout(200);
                            var in = socket.getInputStream();
                            byte[] buf = new byte[4096];
                            int total = 0;
                            try {
                                for (int n; (n = in.read(buf)) > 0;) {
                                    total += n; // the preface, SETTINGS, then the stream's HEADERS: read until quiet
                                }
                            } catch (java.net.SocketTimeoutException quiet) {
                                // all there is
                            }
                        } catch (java.io.IOException ignored) {
                            // closed: what this endpoint does
                        }
                    });
                } catch (java.io.IOException stopped) {
                    return;
                }
            }
        });
        int port = dev.isthmus.proxy.Loopback.freePort();
        manager = new RelayManager(loops, meters, null);
        manager.apply(config("static_resources:\n  listeners:\n" + retryingProxy("reset", port, "reset") + "  clusters:\n"
                + twoLevelCluster("reset", closing.getLocalPort(), backend)));

        var e = org.junit.jupiter.api.Assertions.assertThrows(StatusRuntimeException.class, () -> unary(port, "post"));
        assertTrue(e.getMessage().contains("503") && e.getMessage().contains("upstream_reset"), "POST is not retried after a reset: " + e);
        assertEquals(0.0, retries("reset"));

        var p = new ProcessBuilder("curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-D", "-", "http://127.0.0.1:" + port + "/test.Echo/Say")
                .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.ISO_8859_1);
        assertTrue(p.waitFor(10, TimeUnit.SECONDS));
        assertTrue(out.startsWith("HTTP/2 ") && !out.contains("upstream_reset"), "GET went on to the echo server: " + out);
        assertEquals(1.0, retries("reset"));
    }

    /** Waits up to 5 s for {@code n} calls of {@link #HANG} at the server; how many there are. */
    int awaitHanging(int n) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (hanging.size() < n && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        return hanging.size();
    }

    double upstreamConnections() {
        return meters.get("isthmus_circuit_breaker_in_use").tag("cluster", "echo").tag("kind", "connections").gauge().value();
    }

    /**
     * A burst of calls before the upstream connection is up shares that one connection (before, each
     * stream that found it still connecting opened another, kept until the server closed it); the
     * connection, once without streams for the idle time, is closed, and the next call opens one.
     */
    @Test
    void aBurstSharesOneUpstreamConnectionWhichClosesWhenIdle() throws Exception {
        long idleBefore = Http2Relay.idleNanos;
        Http2Relay.idleNanos = TimeUnit.MILLISECONDS.toNanos(600);
        try {
            int port = startProxy();
            channel = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
            var answers = new java.util.ArrayList<com.google.common.util.concurrent.ListenableFuture<String>>();
            for (int i = 0; i < 5; i++) {
                answers.add(ClientCalls.futureUnaryCall(channel.newCall(HANG, CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS)), "wait " + i));
            }
            assertEquals(5, awaitHanging(5), "every call reached the server");
            assertEquals(1.0, upstreamConnections(), "over one connection");
            for (StreamObserver<String> out : hanging) {
                out.onNext("done");
                out.onCompleted();
            }
            for (var a : answers) {
                assertEquals("done", a.get(5, TimeUnit.SECONDS));
            }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            while (upstreamConnections() > 0 && System.nanoTime() < deadline) {
                Thread.sleep(50);
            }
            assertEquals(0.0, upstreamConnections(), "connections without streams closed after the idle time");
            assertEquals("hello again", ClientCalls.blockingUnaryCall(channel, UNARY, CallOptions.DEFAULT.withDeadlineAfter(5, TimeUnit.SECONDS), "again"));
        } finally {
            Http2Relay.idleNanos = idleBefore;
        }
    }

    /**
     * Calls that do not end (watches) fill the streams the server allows on the proxy's upstream
     * connection (2 here), and a third call waits in the codec behind them: once no stream has ended
     * there for the stall time it is moved to a second connection, and the next call goes there too.
     */
    @Test
    void callsWaitingBehindStreamsThatDoNotEndGoOnAnotherConnection() throws Exception {
        maxCallsPerConnection = 2;
        int port = startProxy();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
        var answers = new java.util.ArrayList<com.google.common.util.concurrent.ListenableFuture<String>>();
        for (int i = 0; i < 3; i++) {
            answers.add(ClientCalls.futureUnaryCall(channel.newCall(HANG, CallOptions.DEFAULT.withDeadlineAfter(20, TimeUnit.SECONDS)), "watch " + i));
            awaitHanging(Math.min(i + 1, 2)); // the server's SETTINGS (2 streams) are in force once the first calls have come
        }
        assertEquals(2, hanging.size());
        assertEquals(3, awaitHanging(3), "the third call reached the server, over another connection");
        assertEquals(2.0, upstreamConnections());
        assertEquals("hello next", ClientCalls.blockingUnaryCall(channel, UNARY, CallOptions.DEFAULT.withDeadlineAfter(5, TimeUnit.SECONDS), "next"));
        for (StreamObserver<String> out : hanging) {
            out.onNext("done");
            out.onCompleted();
        }
        for (var a : answers) {
            assertEquals("done", a.get(5, TimeUnit.SECONDS));
        }
    }
}
