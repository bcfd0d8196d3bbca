package dev.isthmus.proxy.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import dev.isthmus.proxy.EventLoops;
import dev.isthmus.proxy.config.xds.ProxyConfig;
import dev.isthmus.proxy.config.xds.XdsTranslator;
import dev.isthmus.proxy.tcp.RelayManager;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The HTTP/1.1 proxy with real HTTP servers behind it and real clients (the JDK's, and raw sockets for bad requests). */
class HttpProxyTest {

    private final EventLoops loops = EventLoops.create("http-test", 2);
    private final SimpleMeterRegistry meters = new SimpleMeterRegistry();
    private final List<HttpServer> servers = new ArrayList<>();
    private final HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(2)).build();
    private RelayManager manager;

    @AfterEach
    void stop() throws InterruptedException {
        if (manager != null) {
            manager.close();
        }
        servers.forEach(s -> s.stop(0));
        var workers = new ArrayList<io.netty.channel.EventLoop>();
        loops.workers().forEach(e -> workers.add((io.netty.channel.EventLoop) e));
        loops.close();
        // the HTTP/2-to-HTTP/1.1 bridge's static pool map lets go of a loop once it has terminated
        long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(5);
        while (workers.stream().anyMatch(Http1Bridge::hasPoolOf) && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        assertTrue(workers.stream().noneMatch(Http1Bridge::hasPoolOf), "terminated loops still in the bridge's pool map");
    }

    /** An app answering every request with {@code status} and {@code body} after {@code delayMs}; counts its requests. */
    private int app(int status, String body, long delayMs, AtomicInteger hits) throws Exception {
        var s = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        s.createContext("/", ex -> {
            hits.incrementAndGet();
            try {
                Thread.sleep(delayMs);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            byte[] b = (body + " caller=" + ex.getRequestHeaders().getFirst(HttpProxy.CALLER_HEADER)).getBytes(StandardCharsets.UTF_8);
            ex.getRequestBody().readAllBytes();
            ex.sendResponseHeaders(status, b.length);
            ex.getResponseBody().write(b);
            ex.close();
        });
        s.setExecutor(java.util.concurrent.Executors.newVirtualThreadPerTaskExecutor());
        s.start();
        servers.add(s);
        return s.getAddress().getPort();
    }


    /** A virtual host for every host whose one route sends every path to {@code route} (the route's fields). */
    static String everythingTo(String route) {
        return """
                          - name: all
                            domains: [ "*" ]
                            routes:
                            - match: { prefix: "/" }
                              route: { %s }""".formatted(route);
    }

    static String cluster(String name, int... ports) {
        var eps = new StringBuilder();
        for (int p : ports) {
            eps.append("        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ").append(p).append(" } } }\n");
        }
        return """
                  - name: %s
                    type: STATIC
                    connect_timeout: 0.5s
                    load_assignment:
                      cluster_name: %s
                      endpoints:
                      - lb_endpoints:
                """.formatted(name, name) + eps.toString().replace("        - endpoint", "        - endpoint");
    }

    private int start(String routes, String clusters) throws Exception {
        int port = dev.isthmus.proxy.Loopback.freePort();
        String yaml = """
                static_resources:
                  listeners:
                  - name: http-out
                    address: { socket_address: { address: 127.0.0.1, port_value: %d } }
                    filter_chains:
                    - filters:
                      - name: envoy.filters.network.http_connection_manager
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                          stat_prefix: out
                          http_filters: [ { name: envoy.filters.http.router } ]
                          route_config:
                            name: out
                            virtual_hosts:
                %s
                  clusters:
                %s""".formatted(port, routes.stripIndent().indent(12), clusters);
        var b = XdsTranslator.parseBootstrap(yaml, "test.yaml");
        ProxyConfig config = XdsTranslator.translate("t", b.getStaticResources().getListenersList(), b.getStaticResources().getClustersList(), List.of());
        manager = new RelayManager(loops, meters, null);
        manager.apply(config);
        return port;
    }

    private HttpResponse<String> get(int port, String path) throws Exception {
        return client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).timeout(Duration.ofSeconds(10)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    private HttpResponse<String> post(int port, String path) throws Exception {
        return client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).timeout(Duration.ofSeconds(10))
                .POST(HttpRequest.BodyPublishers.ofString("order")).build(), HttpResponse.BodyHandlers.ofString());
    }

    private double requests(String cluster, String code) {
        var c = meters.find("isthmus_requests").tags("destination_service", cluster, "response_code", code).counter();
        return c == null ? 0 : c.count();
    }

    @Test
    void routesByHostAndPathKeepsConnectionsAliveAndCountsRequests() throws Exception {
        var hits = new AtomicInteger();
        int a = app(200, "A", 0, hits);
        int b = app(200, "B", 0, hits);
        int port = start("""
                          - name: shop
                            domains: [ "catalog.shop", "catalog.shop:*" ]
                            routes:
                            - { match: { prefix: "/b" }, route: { cluster: b } }
                            - { match: { prefix: "/" }, route: { cluster: a } }
                          - name: shop-9090
                            domains: [ "catalog.shop:9090" ]
                            routes:
                            - { match: { prefix: "/" }, route: { cluster: b } }
                          - name: other
                            domains: [ "*" ]
                            routes:
                            - { match: { path: "/exact" }, route: { cluster: b } }""", cluster("a", a) + cluster("b", b));
        try (var s = new Socket("127.0.0.1", port)) {
            s.setSoTimeout(5000);
            var out = s.getOutputStream();
            var in = s.getInputStream();
            out.write("GET /b/x HTTP/1.1\r\nHost: catalog.shop\r\nx-isthmus-peer-identity: spiffe://forged/ns/x/sa/y\r\n\r\n".getBytes());
            String first = readResponse(in);
            assertTrue(first.startsWith("HTTP/1.1 200") && first.endsWith("B caller=null"), "routed by path, the forged caller header removed: " + first);
            out.write("GET /a HTTP/1.1\r\nHost: catalog.shop:8080\r\n\r\n".getBytes());
            assertTrue(readResponse(in).endsWith("A caller=null"), "the same connection, kept alive, routed to a");
            out.write("GET /a HTTP/1.1\r\nHost: catalog.shop:9090\r\n\r\n".getBytes());
            assertTrue(readResponse(in).endsWith("B caller=null"), "a service port's own virtual host (domain with the port) wins");
        }
        assertTrue(get(port, "/exact").body().startsWith("B"), "the wildcard host, exact path");
        var none = get(port, "/nothing");
        assertEquals(404, none.statusCode());
        assertEquals("no_route", none.headers().firstValue(HttpProxy.REASON_HEADER).orElse(""));
        assertEquals(1.0, requests("a", "200"));
        assertEquals(3.0, requests("b", "200"));
    }

    /**
     * A wildcard domain matches a host that ends with what follows its '*', with or without a port,
     * in any case, over the catch-all; a host shorter than that, only starting with it, or no longer
     * (the '*' stands for one character or more, as in Envoy) does not.
     * Requests that alternate between clusters are each counted under their own labels.
     */
    @Test
    void aWildcardDomainMatchesTheHostsSuffixWithOrWithoutAPort() throws Exception {
        var hits = new AtomicInteger();
        int a = app(200, "A", 0, hits);
        int b = app(200, "B", 0, hits);
        int port = start("""
                          - name: shop
                            domains: [ "*.shop" ]
                            routes:
                            - { match: { prefix: "/" }, route: { cluster: a } }
                          - name: other
                            domains: [ "*" ]
                            routes:
                            - { match: { prefix: "/" }, route: { cluster: b } }""", cluster("a", a) + cluster("b", b));
        try (var s = new Socket("127.0.0.1", port)) {
            s.setSoTimeout(5000);
            var out = s.getOutputStream();
            var in = s.getInputStream();
            for (String[] hostAndApp : new String[][] {{"orders.shop:8080", "A"}, {"shop", "B"}, {"Orders.SHOP", "A"}, {"orders.shopping", "B"},
                {"x.shop", "A"}, {"shop:80", "B"}, {".shop", "B"}}) {
                out.write(("GET / HTTP/1.1\r\nHost: " + hostAndApp[0] + "\r\n\r\n").getBytes());
                String answer = readResponse(in);
                assertTrue(answer.startsWith("HTTP/1.1 200") && answer.contains(hostAndApp[1] + " caller="), hostAndApp[0] + " -> " + answer);
            }
        }
        // a request is counted as its answer goes out, so the last count may trail the caller's read
        long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(5);
        while (requests("b", "200") < 4.0 && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertEquals(3.0, requests("a", "200"));
        assertEquals(4.0, requests("b", "200"));
    }

    /** Reads one response with a Content-Length body; returns status line + body. */
    static String readResponse(InputStream in) throws Exception {
        var head = new StringBuilder();
        while (!head.toString().endsWith("\r\n\r\n")) {
            int c = in.read();
            if (c < 0) {
                return head.toString();
            }
            head.append((char) c);
        }
        var m = java.util.regex.Pattern.compile("(?i)content-length: *(\\d+)").matcher(head);
        int len = m.find() ? Integer.parseInt(m.group(1)) : 0;
        return head.substring(0, head.indexOf("\r\n")) + "|" + new String(in.readNBytes(len), StandardCharsets.UTF_8);
    }

    @Test
    void aWeightedSplitSendsTheConfiguredShares() throws Exception {
        var hits = new AtomicInteger();
        int v1 = app(200, "v1", 0, hits);
        int v2 = app(200, "v2", 0, hits);
        int port = start("""
                          - name: all
                            domains: [ "*" ]
                            routes:
                            - match: { prefix: "/" }
                              route: { weighted_clusters: { clusters: [ { name: v1, weight: 90 }, { name: v2, weight: 10 } ] } }""",
                cluster("v1", v1) + cluster("v2", v2));
        int toV2 = 0;
        for (int i = 0; i < 2000; i++) {
            if (get(port, "/products").body().startsWith("v2")) {
                toV2++;
            }
        }
        assertTrue(Math.abs(toV2 - 200) <= 60, "10% +-3% to v2: " + toV2);
    }

    @Test
    void twoClustersAtTheSameAddressNeverShareAConnection() throws Exception {
        // The subsets of a service in another region share one address, its east-west gateway, and
        // differ only in their TLS SNI: a kept-alive connection of one must not carry the other's requests.
        var ports = java.util.Collections.synchronizedList(new ArrayList<String>());
        var s = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        s.createContext("/", ex -> {
            ports.add(ex.getRequestURI().getPath() + "@" + ex.getRemoteAddress().getPort());
            ex.sendResponseHeaders(200, -1);
            ex.close();
        });
        s.start();
        servers.add(s);
        int gateway = s.getAddress().getPort();
        int port = start("""
                          - name: all
                            domains: [ "*" ]
                            routes:
                            - match: { prefix: "/v1" }
                              route: { cluster: v1 }
                            - match: { prefix: "/v2" }
                              route: { cluster: v2 }""",
                cluster("v1", gateway) + cluster("v2", gateway));
        for (int i = 0; i < 5; i++) {
            assertEquals(200, get(port, "/v1").statusCode());
            assertEquals(200, get(port, "/v2").statusCode());
        }
        var v1 = ports.stream().filter(p -> p.startsWith("/v1@")).map(p -> p.substring(4)).collect(java.util.stream.Collectors.toSet());
        var v2 = ports.stream().filter(p -> p.startsWith("/v2@")).map(p -> p.substring(4)).collect(java.util.stream.Collectors.toSet());
        assertTrue(java.util.Collections.disjoint(v1, v2), "a connection carried both clusters' requests: " + ports);
        assertTrue(v1.size() < 5, "connections are still kept alive within a cluster: " + ports);
    }

    @Test
    void idempotentRequestsAreRetriedOnAnotherEndpointAndPostsAreNot() throws Exception {
        var bad = new AtomicInteger();
        var good = new AtomicInteger();
        int failing = app(503, "down", 0, bad);
        int healthy = app(200, "up", 0, good);
        int dead = dev.isthmus.proxy.Loopback.freePort();
        int port = start(everythingTo("cluster: c, retry_policy: { retry_on: \"5xx\", num_retries: 2 }"), cluster("c", failing, healthy, dead));
        for (int i = 0; i < 30; i++) {
            var res = get(port, "/catalog");
            assertEquals(200, res.statusCode(), "GET " + i + " answered by the healthy endpoint after retries: " + res.body());
        }
        assertTrue(bad.get() > 0, "the failing endpoint was really tried");
        var posts = new ArrayList<Integer>();
        for (int i = 0; i < 10; i++) {
            posts.add(post(port, "/orders").statusCode());
        }
        assertTrue(posts.contains(503), "a POST is not retried: " + posts);
        assertTrue(meters.get("isthmus_upstream_connect_retries").counter().count() > 0);
    }

    /** Nothing of a request reaches an endpoint that refuses the connection: a POST is retried then too. */
    @Test
    void aPostIsRetriedOnAnotherEndpointWhenTheConnectionIsRefused() throws Exception {
        var good = new AtomicInteger();
        int healthy = app(200, "up", 0, good);
        int dead = dev.isthmus.proxy.Loopback.freePort();
        int port = start(everythingTo("cluster: c, retry_policy: { retry_on: \"connect-failure\", num_retries: 1 }"), cluster("c", dead, healthy));
        for (int i = 0; i < 4; i++) {
            var res = post(port, "/orders");
            assertEquals(200, res.statusCode(), "POST " + i + ": " + res.body());
        }
        assertEquals(4, good.get());
        assertEquals(1.0, meters.get("isthmus_upstream_connect_retries").counter().count(), "the refused endpoint was tried once, then ejected");
    }

    @Test
    void aSlowUpstreamIsCutAtTheRouteTimeout() throws Exception {
        var hits = new AtomicInteger();
        int slow = app(200, "late", 3000, hits);
        int port = start("""
                          - name: all
                            domains: [ "*" ]
                            routes:
                            - { match: { prefix: "/" }, route: { cluster: slow, timeout: 0.3s } }""", cluster("slow", slow));
        long t0 = System.nanoTime();
        var res = get(port, "/x");
        assertEquals(504, res.statusCode());
        assertEquals("upstream_timeout", res.headers().firstValue(HttpProxy.REASON_HEADER).orElse(""));
        assertTrue((System.nanoTime() - t0) / 1_000_000 < 2500, "answered at the deadline, not when the app finished");
    }

    @Test
    void badRequestsAreRefusedAndOtherConnectionsAreUnharmed() throws Exception {
        var hits = new AtomicInteger();
        int a = app(200, "A", 0, hits);
        int port = start(everythingTo("cluster: a"), cluster("a", a));
        assertTrue(raw(port, "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
                .startsWith("HTTP/1.1 400"), "Content-Length with Transfer-Encoding (smuggling) is refused");
        assertTrue(raw(port, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + "a".repeat(20_000) + "\r\n\r\n").startsWith("HTTP/1.1 431"),
                "oversized headers");
        assertTrue(raw(port, "GARBAGE\r\n\r\n").startsWith("HTTP/1.1 400"), "a malformed request line");
        assertEquals(0, hits.get(), "none of them reached the app");
        assertEquals(200, get(port, "/fine").statusCode(), "other connections are served");
    }

    static String raw(int port, String request) throws Exception {
        try (var s = new Socket("127.0.0.1", port)) {
            s.setSoTimeout(5000);
            s.getOutputStream().write(request.getBytes(StandardCharsets.ISO_8859_1));
            return readResponse(s.getInputStream());
        }
    }

    @Test
    void theRequestBreakerAnswers503NamingItAndTheAppSeesNoMoreThanTheLimit() throws Exception {
        var hits = new AtomicInteger();
        int slow = app(200, "slow", 800, hits);
        int port = start(everythingTo("cluster: c"),
                cluster("c", slow).replace("    connect_timeout: 0.5s\n", "    connect_timeout: 0.5s\n    circuit_breakers: { thresholds: [ { max_requests: 2 } ] }\n"));
        var futures = new ArrayList<java.util.concurrent.CompletableFuture<HttpResponse<String>>>();
        for (int i = 0; i < 6; i++) {
            futures.add(client.sendAsync(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/x")).timeout(Duration.ofSeconds(10)).build(),
                    HttpResponse.BodyHandlers.ofString()));
        }
        int ok = 0;
        int refused = 0;
        for (var f : futures) {
            var res = f.get();
            if (res.statusCode() == 200) {
                ok++;
            } else {
                assertEquals(503, res.statusCode());
                assertEquals("max_requests", res.headers().firstValue(HttpProxy.OVERLOADED_HEADER).orElse(""));
                refused++;
            }
        }
        assertTrue(ok >= 2 && refused >= 1, "ok " + ok + ", refused " + refused);
        assertEquals(ok, hits.get(), "refused requests never reached the app");
    }

    /**
     * A cluster whose assignment drops all of its traffic (xDS drop_overloads at 100%): an HTTP/1.1
     * and an h2c caller get 503 {@code drop_overload}, and the app sees nothing; a 0% drop lets all
     * through.
     */
    @Test
    void aClusterThatDropsAllOfItsTrafficAnswers503AndTheAppSeesNothing() throws Exception {
        var hits = new AtomicInteger();
        int a = app(200, "A", 0, hits);
        String drop = "      policy: { drop_overloads: [ { category: isolated, drop_percentage: { numerator: %d } } ] }\n";
        int port = start(everythingTo("cluster: c"), cluster("c", a).replace("      endpoints:\n", drop.formatted(100) + "      endpoints:\n"));
        var res = get(port, "/x");
        assertEquals(503, res.statusCode());
        assertEquals("drop_overload", res.headers().firstValue(HttpProxy.REASON_HEADER).orElse(""));
        var h2 = new ProcessBuilder("curl", "-s", "--http2-prior-knowledge", "-i", "http://127.0.0.1:" + port + "/x").redirectErrorStream(true).start();
        String out = new String(h2.getInputStream().readAllBytes(), StandardCharsets.ISO_8859_1);
        assertTrue(h2.waitFor(10, java.util.concurrent.TimeUnit.SECONDS));
        assertTrue(out.startsWith("HTTP/2 503") && out.contains(HttpProxy.REASON_HEADER + ": drop_overload"), out);
        assertEquals(0, hits.get(), "the app saw nothing");

        manager.close();
        manager = null;
        int open = start(everythingTo("cluster: c"), cluster("c", a).replace("      endpoints:\n", drop.formatted(0) + "      endpoints:\n"));
        assertEquals(200, get(open, "/x").statusCode());
        assertEquals(1, hits.get());
    }

    @Test
    void aSlowlorisCallerIsCutAtTheRequestTimeoutWhileOthersAreServed() throws Exception {
        var hits = new AtomicInteger();
        int a = app(200, "A", 0, hits);
        var spec = new ProxyConfig.HttpSpec("t", List.of(new ProxyConfig.VirtualHost("all", List.of("*"), List.of(new ProxyConfig.Route("/", null,
                List.of(new ProxyConfig.WeightedCluster("a", 1)), Duration.ofSeconds(5), ProxyConfig.RetrySpec.NONE)))));
        var upstream = new HttpProxy.Upstream("a", dev.isthmus.proxy.tcp.UpstreamSelector.fixed(new InetSocketAddress("127.0.0.1", a)), null, null,
                Duration.ofSeconds(1));
        try (var proxy = HttpProxy.start("guarded", loops, new InetSocketAddress("127.0.0.1", 0), spec, n -> upstream, null, meters,
                Duration.ofMillis(500), Duration.ofSeconds(2), "test")) {
            int port = proxy.address().getPort();
            try (var slow = new Socket("127.0.0.1", port); var idle = new Socket("127.0.0.1", port)) {
                slow.setSoTimeout(5000);
                idle.setSoTimeout(5000);
                slow.getOutputStream().write("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ".getBytes());
                assertEquals(200, get(port, "/meanwhile").statusCode(), "others are served while one caller dawdles");
                long t0 = System.nanoTime();
                String answer = readResponse(slow.getInputStream());
                assertTrue(answer.startsWith("HTTP/1.1 408"), answer);
                assertTrue((System.nanoTime() - t0) / 1_000_000 < 2000, "cut at the deadline");
                assertEquals(-1, idle.getInputStream().read(), "an idle connection is closed after the idle timeout");
            }
        }
    }

    /** A WebSocket echo server (Netty's server-side handshake). */
    private int webSocketEcho() throws Exception {
        var ch = new io.netty.bootstrap.ServerBootstrap().group(loops.boss(), loops.workers()).channel(loops.serverChannelType())
                .childHandler(new io.netty.channel.ChannelInitializer<io.netty.channel.Channel>() {
                    @Override
                    protected void initChannel(io.netty.channel.Channel c) {
                        c.pipeline().addLast(new io.netty.handler.codec.http.HttpServerCodec(), new io.netty.handler.codec.http.HttpObjectAggregator(65536),
                                new io.netty.handler.codec.http.websocketx.WebSocketServerProtocolHandler("/ws"),
                                new io.netty.channel.SimpleChannelInboundHandler<io.netty.handler.codec.http.websocketx.TextWebSocketFrame>() {
                                    @Override
                                    protected void channelRead0(io.netty.channel.ChannelHandlerContext ctx,
                                            io.netty.handler.codec.http.websocketx.TextWebSocketFrame frame) {
                                        ctx.writeAndFlush(new io.netty.handler.codec.http.websocketx.TextWebSocketFrame("echo:" + frame.text()));
                                    }
                                });
                    }
                }).bind(new InetSocketAddress("127.0.0.1", 0)).sync().channel();
        return ((InetSocketAddress) ch.localAddress()).getPort();
    }

    @Test
    void aWebSocketUpgradeIsCarriedBothWays() throws Exception {
        int ws = webSocketEcho();
        int port = start(everythingTo("cluster: ws"), cluster("ws", ws));
        var received = new java.util.concurrent.LinkedBlockingQueue<String>();
        var socket = client.newWebSocketBuilder().buildAsync(URI.create("ws://127.0.0.1:" + port + "/ws"), new java.net.http.WebSocket.Listener() {
            @Override
            public java.util.concurrent.CompletionStage<?> onText(java.net.http.WebSocket webSocket, CharSequence data, boolean last) {
                received.add(data.toString());
                webSocket.request(1);
                return null;
            }
        }).get(10, java.util.concurrent.TimeUnit.SECONDS);
        for (int i = 0; i < 3; i++) {
            socket.sendText("hello " + i, true).get(5, java.util.concurrent.TimeUnit.SECONDS);
            assertEquals("echo:hello " + i, received.poll(5, java.util.concurrent.TimeUnit.SECONDS));
        }
        socket.sendClose(java.net.http.WebSocket.NORMAL_CLOSURE, "bye").get(5, java.util.concurrent.TimeUnit.SECONDS);
        assertEquals(1.0, requests("ws", "101"), "the upgrade is counted as a 101");
    }

    @Test
    void consecutive5xxEjectAnEndpointWhichComesBackAfterTheEjection() throws Exception {
        var bad = new AtomicInteger();
        var good = new AtomicInteger();
        int failing = app(500, "broken", 0, bad);
        int healthy = app(200, "fine", 0, good);
        int port = start(everythingTo("cluster: c"),
                cluster("c", failing, healthy).replace("    connect_timeout: 0.5s\n",
                        "    connect_timeout: 0.5s\n    outlier_detection: { consecutive_5xx: 3, base_ejection_time: 1s, max_ejection_percent: 50 }\n"));
        for (int i = 0; i < 20; i++) {
            get(port, "/x");
        }
        assertEquals(3, bad.get(), "after 3 answers of 500 in a row the endpoint gets no more traffic");
        assertEquals(17, good.get());
        Thread.sleep(1300);
        for (int i = 0; i < 6; i++) {
            get(port, "/x");
        }
        assertTrue(bad.get() > 3, "back in service after the ejection time");
    }

    @Test
    void anHttp2CallerIsServedByAnHttp11AppThroughTheTranslation() throws Exception {
        var hits = new AtomicInteger();
        int a = app(201, "A", 0, hits);
        int port = start(everythingTo("cluster: a"), cluster("a", a));
        var get = new ProcessBuilder("curl", "-s", "--http2-prior-knowledge", "-i", "-H", "x-isthmus-peer-identity: spiffe://forged/ns/x/sa/y",
                "http://127.0.0.1:" + port + "/products").redirectErrorStream(true).start();
        String out = new String(get.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(get.waitFor(10, java.util.concurrent.TimeUnit.SECONDS));
        assertTrue(out.startsWith("HTTP/2 201") && out.endsWith("A caller=null"), "an h2c caller, an HTTP/1.1 app, the forged caller header removed: " + out);
        // a body over HTTP/2's initial 64 KiB window: the proxy gives the window back as it gathers the body
        var post = new ProcessBuilder("curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                "--data-binary", "@-", "http://127.0.0.1:" + port + "/orders").redirectErrorStream(true).start();
        post.getOutputStream().write(new byte[300 * 1024]);
        post.getOutputStream().close();
        String posted = new String(post.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(post.waitFor(10, java.util.concurrent.TimeUnit.SECONDS));
        assertEquals("2 201", posted.strip());
        assertEquals(2, hits.get());
        assertEquals(2.0, requests("a", "201"));
    }

    /**
     * The translation to HTTP/1.1 has the HTTP/2 relay's resilience: a refused connection is retried
     * on the next endpoint (a POST too), and the route's timeout answers 504.
     */
    @Test
    void anHttp2CallerToAnHttp11AppIsRetriedAfterARefusedConnectionAndTimedOut() throws Exception {
        var hits = new AtomicInteger();
        int healthy = app(200, "up", 0, hits);
        int slow = app(200, "slow", 3000, new AtomicInteger());
        int dead = dev.isthmus.proxy.Loopback.freePort();
        int port = start("""
                          - name: all
                            domains: [ "*" ]
                            routes:
                            - { match: { prefix: "/slow" }, route: { cluster: s, timeout: 0.3s } }
                            - { match: { prefix: "/" }, route: { cluster: a, retry_policy: { retry_on: connect-failure, num_retries: 1 } } }""",
                cluster("a", dead, healthy) + cluster("s", slow));
        for (int i = 0; i < 3; i++) {
            var post = new ProcessBuilder("curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                    "--data-binary", "order", "http://127.0.0.1:" + port + "/orders").redirectErrorStream(true).start();
            String posted = new String(post.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(post.waitFor(10, java.util.concurrent.TimeUnit.SECONDS));
            assertEquals("2 200", posted.strip(), "POST " + i);
        }
        assertEquals(3, hits.get());
        assertEquals(1.0, meters.get("isthmus_upstream_connect_retries").counter().count(), "the refused endpoint was tried once");
        var timed = new ProcessBuilder("curl", "-s", "--http2-prior-knowledge", "-i", "http://127.0.0.1:" + port + "/slow").redirectErrorStream(true).start();
        String out = new String(timed.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(timed.waitFor(10, java.util.concurrent.TimeUnit.SECONDS));
        assertTrue(out.startsWith("HTTP/2 504") && out.contains("x-isthmus-reason: upstream_timeout"), out);
    }

    /** Through the translation too, a 5xx answer is retried on another endpoint for a GET, not for a POST. */
    @Test
    void anHttp2CallersGetToAnHttp11AppIsRetriedAfterA5xxAndItsPostIsNot() throws Exception {
        var bad = new AtomicInteger();
        int failing = app(503, "down", 0, bad);
        int healthy = app(200, "up", 0, new AtomicInteger());
        int port = start(everythingTo("cluster: c, retry_policy: { retry_on: \"5xx\", num_retries: 2 }"), cluster("c", failing, healthy));
        var codes = new ArrayList<String>();
        for (String method : List.of("GET", "POST")) {
            for (int i = 0; i < 6; i++) {
                var p = new ProcessBuilder("curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}", "-X", method,
                        "http://127.0.0.1:" + port + "/catalog").redirectErrorStream(true).start();
                codes.add(method + " " + new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip());
                assertTrue(p.waitFor(10, java.util.concurrent.TimeUnit.SECONDS));
            }
        }
        assertTrue(bad.get() > 0, "the failing endpoint was really tried");
        assertEquals(List.of("GET 200"), codes.subList(0, 6).stream().distinct().toList(), codes.toString());
        assertTrue(codes.contains("POST 503"), "a POST is not retried: " + codes);
    }

    @Test
    void curlSpeaksHttp11ThroughTheProxy() throws Exception {
        var hits = new AtomicInteger();
        int a = app(200, "A", 0, hits);
        int port = start(everythingTo("cluster: a"), cluster("a", a));
        var p = new ProcessBuilder("curl", "-s", "--http1.1", "-i", "http://127.0.0.1:" + port + "/products").redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(10, java.util.concurrent.TimeUnit.SECONDS));
        assertTrue(out.startsWith("HTTP/1.1 200") && out.endsWith("A caller=null"), out);
    }

    /**
     * A raw HTTP/1.1 server: on each connection it answers the first request ("connection N",
     * kept alive), then reads the next request's head and closes without an answer, as a server whose
     * idle timeout closes the connection just as a request comes. Counts the connections the proxy
     * closed while idle ({@code closedIdle}).
     */
    private int closingAfterOneAnswer(AtomicInteger closedIdle) throws Exception {
        var server = new java.net.ServerSocket(0, 50, java.net.InetAddress.getLoopbackAddress());
        var connections = new AtomicInteger();
        Thread.ofVirtual().start(() -> {
            while (!server.isClosed()) {
                try {
                    var socket = server.accept();
                    int n = connections.incrementAndGet();
                    Thread.ofVirtual().start(() -> {
                        try (socket) {
                            var in = new java.io.BufferedInputStream(socket.getInputStream());
                            readRequest(in);
                            byte[] body = ("connection " + n).getBytes(StandardCharsets.US_ASCII);
                            socket.getOutputStream().write(("HTTP/1.1 200 OK\r\nContent-Length: " + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                            socket.getOutputStream().write(body);
                            socket.getOutputStream().flush();
                            if (in.read() < 0) {
                                closedIdle.incrementAndGet(); // the proxy closed it, idle
                            } // else a second request: closed unanswered
                        } catch (java.io.IOException ignored) {
                            // reset
                        }
                    });
                } catch (java.io.IOException stopped) {
                    return;
                }
            }
        });
        closers.add(server);
        return server.getLocalPort();
    }

    private final List<java.io.Closeable> closers = new ArrayList<>();

    @AfterEach
    void closeRawServers() throws Exception {
        for (var c : closers) {
            c.close();
        }
    }

    /** Reads a request's head and its Content-Length body. */
    static void readRequest(InputStream in) throws java.io.IOException {
        String head = readHead(in);
        var m = java.util.regex.Pattern.compile("(?i)content-length:\\s*(\\d+)").matcher(head);
        if (m.find()) {
            in.readNBytes(Integer.parseInt(m.group(1)));
        }
    }

    /**
     * An upstream that answers each request with {@code head} at once and then, once {@code release}
     * opens, with {@code rest}; keeps the connection.
     */
    private int answeringInTwoParts(String head, String rest, java.util.concurrent.CountDownLatch release) throws Exception {
        var server = new java.net.ServerSocket(0, 50, java.net.InetAddress.getLoopbackAddress());
        Thread.ofVirtual().start(() -> {
            while (!server.isClosed()) {
                try {
                    var socket = server.accept();
                    Thread.ofVirtual().start(() -> {
                        try (socket) {
                            var in = new java.io.BufferedInputStream(socket.getInputStream());
                            while (true) {
                                in.mark(1);
                                if (in.read() < 0) {
                                    return; // the proxy closed it
                                }
                                in.reset();
                                readRequest(in);
                                socket.getOutputStream().write(head.getBytes(StandardCharsets.US_ASCII));
                                socket.getOutputStream().flush();
                                release.await();
                                socket.getOutputStream().write(rest.getBytes(StandardCharsets.US_ASCII));
                                socket.getOutputStream().flush();
                            }
                        } catch (java.io.IOException | InterruptedException ignored) {
                            // closed
                        }
                    });
                } catch (java.io.IOException stopped) {
                    return;
                }
            }
        });
        closers.add(server);
        return server.getLocalPort();
    }

    /** Reads up to and including the blank line that ends a head. */
    private static String readHead(InputStream in) throws java.io.IOException {
        var head = new StringBuilder();
        int c;
        while ((c = in.read()) >= 0) {
            head.append((char) c);
            if (head.length() >= 4 && head.substring(head.length() - 4).equals("\r\n\r\n")) {
                break;
            }
        }
        return head.toString();
    }

    /**
     * The proxy holds an answer's head back until the end of the read it came in, to send it with a
     * body that came in the same read: a body that comes later must not hold the head back (a
     * long poll, a server-sent event stream).
     */
    @Test
    void anAnswersHeadReachesTheCallerBeforeABodyThatComesLater() throws Exception {
        var release = new java.util.concurrent.CountDownLatch(1);
        int app = answeringInTwoParts("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-App: events\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", release);
        int port = start(everythingTo("cluster: a"), cluster("a", app));
        try (var s = new Socket("127.0.0.1", port)) {
            s.setSoTimeout(5000);
            s.getOutputStream().write("GET /events HTTP/1.1\r\nHost: a\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            var in = new java.io.BufferedInputStream(s.getInputStream());
            String head = readHead(in); // times out if the head waits for the body
            assertTrue(head.startsWith("HTTP/1.1 200") && head.toLowerCase(java.util.Locale.ROOT).contains("x-app: events"), head);
            release.countDown();
            String body = new String(in.readNBytes("5\r\nhello\r\n0\r\n\r\n".length()), StandardCharsets.US_ASCII);
            assertEquals("5\r\nhello\r\n0\r\n\r\n", body);
        }
    }

    /**
     * An answer that comes whole in one read goes on as one message: its head less the hop-by-hop
     * headers, its body, and the next answer on the same connections after it.
     */
    @Test
    void aWholeAnswerGoesOnWithItsBodyAndWithoutHopByHopHeaders() throws Exception {
        var release = new java.util.concurrent.CountDownLatch(0);
        int app = answeringInTwoParts("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive, x-private\r\nX-Private: 1\r\nX-App: whole\r\n\r\nhello", "",
                release);
        int port = start(everythingTo("cluster: a"), cluster("a", app));
        try (var s = new Socket("127.0.0.1", port)) {
            s.setSoTimeout(5000);
            var in = new java.io.BufferedInputStream(s.getInputStream());
            for (int i = 0; i < 2; i++) {
                s.getOutputStream().write("GET /whole HTTP/1.1\r\nHost: a\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
                String head = readHead(in).toLowerCase(java.util.Locale.ROOT);
                assertTrue(head.startsWith("http/1.1 200") && head.contains("x-app: whole") && head.contains("content-length: 5"), head);
                assertFalse(head.contains("keep-alive:") || head.contains("x-private") || head.contains("connection:"), head);
                assertEquals("hello", new String(in.readNBytes(5), StandardCharsets.US_ASCII));
            }
        }
    }

    /**
     * A kept-alive upstream connection that the server closes as the next request goes out: a GET is
     * sent again once on a new connection to the same endpoint (though the route retries nothing), and
     * the endpoint is not blamed; a POST is not sent again (503 upstream_reset).
     */
    @Test
    void aGetOnAKeptAliveConnectionTheServerClosedIsSentAgainOnANewOne() throws Exception {
        int app = closingAfterOneAnswer(new AtomicInteger());
        int port = start(everythingTo("cluster: a"), cluster("a", app));
        assertEquals("connection 1", get(port, "/one").body());
        var again = get(port, "/two");
        assertEquals(200, again.statusCode(), again.body());
        assertEquals("connection 2", again.body(), "sent again on a new connection");
        assertEquals(1.0, meters.get(dev.isthmus.proxy.ProxyMetrics.STALE_CONNECTION_RESENDS).counter().count());
        var post = post(port, "/orders");
        assertEquals(503, post.statusCode(), "a POST is not sent again: " + post.body());
        assertEquals("upstream_reset", post.headers().firstValue(HttpProxy.REASON_HEADER).orElse(""));
        assertEquals("connection 3", get(port, "/three").body());
    }

    /**
     * The same through the HTTP/2 → HTTP/1.1 translation: h2load sends three GETs one after the other
     * on one h2c connection (curl 7.88 cannot reuse an h2c connection); each second request on a
     * kept-alive connection, which the server closes, is sent again on a new one.
     */
    @Test
    void anHttp2CallersGetOnAKeptAliveConnectionTheServerClosedIsSentAgainOnANewOne() throws Exception {
        int app = closingAfterOneAnswer(new AtomicInteger());
        int port = start(everythingTo("cluster: a"), cluster("a", app));
        var p = new ProcessBuilder("h2load", "-n", "3", "-c", "1", "-m", "1", "http://127.0.0.1:" + port + "/").redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(10, java.util.concurrent.TimeUnit.SECONDS));
        assertTrue(out.contains("3 succeeded, 0 failed") && out.contains("status codes: 3 2xx"), out);
        assertEquals(2.0, meters.get(dev.isthmus.proxy.ProxyMetrics.STALE_CONNECTION_RESENDS).counter().count());
    }

    /** A kept-alive upstream connection unused for the idle time is closed by the proxy. */
    @Test
    void anIdleUpstreamConnectionIsClosed() throws Exception {
        long before = HttpProxy.idleNanos;
        HttpProxy.idleNanos = java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(400);
        try {
            var closedIdle = new AtomicInteger();
            int app = closingAfterOneAnswer(closedIdle);
            int port = start(everythingTo("cluster: a"), cluster("a", app));
            assertEquals("connection 1", get(port, "/one").body());
            long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(5);
            while (closedIdle.get() == 0 && System.nanoTime() < deadline) {
                Thread.sleep(50);
            }
            assertEquals(1, closedIdle.get(), "closed by the proxy after the idle time");
            assertEquals("connection 2", get(port, "/two").body());
        } finally {
            HttpProxy.idleNanos = before;
        }
    }
}

