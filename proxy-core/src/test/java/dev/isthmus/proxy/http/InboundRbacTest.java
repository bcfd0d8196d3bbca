package dev.isthmus.proxy.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import dev.isthmus.proxy.EventLoops;
import dev.isthmus.proxy.config.xds.XdsTranslator;
import dev.isthmus.proxy.identity.SpiffeTls;
import dev.isthmus.proxy.identity.SpiffeTlsTest;
import dev.isthmus.proxy.identity.SvidClient;
import dev.isthmus.proxy.tcp.RelayManager;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * An inbound listener from xDS resources: mTLS (a DownstreamTlsContext) and an RBAC filter as
 * Isthmus's AuthorizationPolicy would be compiled to, with real mTLS clients of two trust domains.
 */
class InboundRbacTest {

    static final String EAST = "us-east.acme.isthmus";
    static final String WEST = "eu-west.acme.isthmus";

    private final EventLoops loops = EventLoops.create("rbac-test", 2);
    private final SimpleMeterRegistry meters = new SimpleMeterRegistry();
    private HttpServer app;
    private RelayManager manager;

    @AfterEach
    void stop() {
        if (manager != null) {
            manager.close();
        }
        if (app != null) {
            app.stop(0);
        }
        loops.close();
    }

    static HttpClient client(SvidClient.Svid svid) throws Exception {
        return HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).sslContext(SpiffeTls.context(() -> Optional.of(svid), id -> true))
                .connectTimeout(Duration.ofSeconds(2)).build();
    }

    @Test
    void onlyWhatThePolicyAllowsReachesTheAppWithTheCallersIdentity() throws Exception {
        var east = SpiffeTlsTest.root(EAST);
        var west = SpiffeTlsTest.root(WEST);
        Map<String, List<X509Certificate>> bundle = Map.of(EAST, List.of(east.cert()), WEST, List.of(west.cert()));
        var catalog = SpiffeTlsTest.leaf(west, "spiffe://" + WEST + "/ns/shop/sa/product-catalog", bundle);
        var orders = SpiffeTlsTest.leaf(east, "spiffe://" + EAST + "/ns/shop/sa/orders", bundle);
        var login = SpiffeTlsTest.leaf(east, "spiffe://" + EAST + "/ns/shop/sa/login", bundle);
        var westProbe = SpiffeTlsTest.leaf(west, "spiffe://" + WEST + "/ns/ops/sa/prober", bundle);

        app = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        app.createContext("/", ex -> {
            byte[] b = ("caller=" + ex.getRequestHeaders().getFirst(HttpProxy.CALLER_HEADER)).getBytes(StandardCharsets.UTF_8);
            ex.sendResponseHeaders(200, b.length);
            ex.getResponseBody().write(b);
            ex.close();
        });
        app.start();
        int port = dev.isthmus.proxy.Loopback.freePort();
        String yaml = """
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
                          http_filters:
                          - name: envoy.filters.http.rbac
                            typed_config:
                              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
                              rules:
                                action: ALLOW
                                policies:
                                  orders-read-catalog:
                                    permissions:
                                    - and_rules: { rules: [ { header: { name: ":method", string_match: { exact: GET } } }, { url_path: { path: { prefix: "/products" } } } ] }
                                    principals:
                                    - authenticated: { principal_name: { exact: "spiffe://%s/ns/shop/sa/orders" } }
                                  local-health:
                                    permissions: [ { url_path: { path: { exact: "/healthz" } } } ]
                                    principals: [ { authenticated: { principal_name: { prefix: "spiffe://%s/" } } } ]
                          - name: envoy.filters.http.router
                          route_config:
                            name: inbound
                            virtual_hosts:
                            - { name: app, domains: [ "*" ], routes: [ { match: { prefix: "/" }, route: { cluster: app } } ] }
                  clusters:
                  - name: app
                    type: STATIC
                    load_assignment:
                      cluster_name: app
                      endpoints:
                      - lb_endpoints:
                        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: %d } } }
                """.formatted(port, EAST, WEST, app.getAddress().getPort());
        var b = XdsTranslator.parseBootstrap(yaml, "inbound.yaml");
        manager = new RelayManager(loops, meters, () -> Optional.of(catalog));
        manager.apply(XdsTranslator.translate("t", b.getStaticResources().getListenersList(), b.getStaticResources().getClustersList(), List.of()));
        String base = "https://127.0.0.1:" + port;

        var ok = client(orders).send(HttpRequest.newBuilder(URI.create(base + "/products/7")).header(HttpProxy.CALLER_HEADER, "spiffe://forged/x")
                .build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, ok.statusCode());
        assertEquals("caller=spiffe://" + EAST + "/ns/shop/sa/orders", ok.body(), "the verified identity, not the forged header");

        var write = client(orders).send(HttpRequest.newBuilder(URI.create(base + "/products/7")).POST(HttpRequest.BodyPublishers.ofString("x")).build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(403, write.statusCode(), "orders may only read");
        assertEquals("rbac_denied", write.headers().firstValue(HttpProxy.REASON_HEADER).orElse(""));

        assertEquals(403, client(login).send(HttpRequest.newBuilder(URI.create(base + "/products")).build(), HttpResponse.BodyHandlers.ofString())
                .statusCode(), "another workload of the same domain is not allowed");
        assertEquals(200, client(westProbe).send(HttpRequest.newBuilder(URI.create(base + "/healthz")).build(), HttpResponse.BodyHandlers.ofString())
                .statusCode(), "the local trust domain may read /healthz");
        assertEquals(403, client(westProbe).send(HttpRequest.newBuilder(URI.create(base + "/products")).build(), HttpResponse.BodyHandlers.ofString())
                .statusCode());
        assertEquals(3.0, meters.get("isthmus_rbac_denied").counter().count());
        assertTrue(meters.find("isthmus_tls_handshakes").tags("listener", "inbound", "result", "success").counter().count() >= 4);
    }

    /** The inbound listener as the controller builds it under MeshPolicy {@code mtls: PERMISSIVE}. */
    private static String permissiveInbound(int port, int appPort, boolean permissive) {
        String tls = """
                    - transport_socket:
                        name: envoy.transport_sockets.tls
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
                          require_client_certificate: true
                """;
        String filters = """
                      filters:
                      - name: envoy.filters.network.http_connection_manager
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                          stat_prefix: inbound
                          http_filters: [ { name: envoy.filters.http.router } ]
                          route_config:
                            name: inbound
                            virtual_hosts:
                            - { name: app, domains: [ "*" ], routes: [ { match: { prefix: "/" }, route: { cluster: app } } ] }
                """;
        String chains = permissive
                ? tls + "      filter_chain_match: { transport_protocol: tls }\n" + filters
                        + "    - filter_chain_match: { transport_protocol: raw_buffer }\n" + filters.replaceFirst("      filters:", "      filters:")
                : tls + filters;
        return """
                static_resources:
                  listeners:
                  - name: inbound
                    address: { socket_address: { address: 127.0.0.1, port_value: %d } }
                %s    filter_chains:
                %s  clusters:
                  - name: app
                    type: STATIC
                    load_assignment:
                      cluster_name: app
                      endpoints:
                      - lb_endpoints:
                        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: %d } } }
                """.formatted(port, permissive ? "    listener_filters: [ { name: envoy.filters.listener.tls_inspector } ]\n" : "", chains, appPort);
    }

    @Test
    void aPermissiveListenerServesMtlsCallersWithTheirIdentityAndPlaintextCallersWithoutOne() throws Exception {
        var east = SpiffeTlsTest.root(EAST);
        Map<String, List<X509Certificate>> bundle = Map.of(EAST, List.of(east.cert()));
        var catalog = SpiffeTlsTest.leaf(east, "spiffe://" + EAST + "/ns/shop/sa/product-catalog", bundle);
        var orders = SpiffeTlsTest.leaf(east, "spiffe://" + EAST + "/ns/shop/sa/orders", bundle);
        app = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        app.createContext("/", ex -> {
            byte[] b = ("caller=" + ex.getRequestHeaders().getFirst(HttpProxy.CALLER_HEADER)).getBytes(StandardCharsets.UTF_8);
            ex.sendResponseHeaders(200, b.length);
            ex.getResponseBody().write(b);
            ex.close();
        });
        app.start();
        int port = dev.isthmus.proxy.Loopback.freePort();
        manager = new RelayManager(loops, meters, () -> Optional.of(catalog));
        var permissive = XdsTranslator.parseBootstrap(permissiveInbound(port, app.getAddress().getPort(), true), "permissive.yaml");
        var config = XdsTranslator.translate("p", permissive.getStaticResources().getListenersList(), permissive.getStaticResources().getClustersList(),
                List.of());
        assertTrue(config.listeners().get(0).plaintextToo());
        manager.apply(config);
        var plain = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(2)).build();

        var tlsCall = client(orders).send(HttpRequest.newBuilder(URI.create("https://127.0.0.1:" + port + "/")).build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals("caller=spiffe://" + EAST + "/ns/shop/sa/orders", tlsCall.body(), "mTLS callers keep their verified identity");
        var plainCall = plain.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/")).header(HttpProxy.CALLER_HEADER, "spiffe://forged/x")
                .build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, plainCall.statusCode());
        assertEquals("caller=null", plainCall.body(), "a plaintext caller has no identity, and a forged one is stripped");
        assertEquals(1.0, meters.get("isthmus_plaintext_connections").counter().count());

        // STRICT again (the MeshPolicy changed): the listener is restarted and plaintext is refused
        var strict = XdsTranslator.parseBootstrap(permissiveInbound(port, app.getAddress().getPort(), false), "strict.yaml");
        manager.apply(XdsTranslator.translate("s", strict.getStaticResources().getListenersList(), strict.getStaticResources().getClustersList(),
                List.of()));
        var fresh = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(2)).build();
        org.junit.jupiter.api.Assertions.assertThrows(java.io.IOException.class, () -> fresh.send(
                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/")).timeout(Duration.ofSeconds(5)).build(),
                HttpResponse.BodyHandlers.ofString()), "STRICT: no plaintext");
        assertEquals("caller=spiffe://" + EAST + "/ns/shop/sa/orders", client(orders).send(HttpRequest.newBuilder(URI.create("https://127.0.0.1:" + port
                + "/")).build(), HttpResponse.BodyHandlers.ofString()).body());
    }

    @Test
    void twoFilterChainsThatAreNotTlsAndPlaintextAreRefusedWithTheReason() throws Exception {
        String yaml = permissiveInbound(15999, 8080, true).replace("transport_protocol: raw_buffer", "transport_protocol: tls");
        var b = XdsTranslator.parseBootstrap(yaml, "bad.yaml");
        var e = org.junit.jupiter.api.Assertions.assertThrows(XdsTranslator.ConfigException.class, () -> XdsTranslator.translate("b",
                b.getStaticResources().getListenersList(), b.getStaticResources().getClustersList(), List.of()));
        assertTrue(e.getMessage().contains("filter_chains[1]: with two chains, the second must match transport_protocol 'raw_buffer'"), e.getMessage());
        String noInspector = permissiveInbound(15999, 8080, true).replace("    listener_filters: [ { name: envoy.filters.listener.tls_inspector } ]\n", "");
        var c = XdsTranslator.parseBootstrap(noInspector, "bad.yaml");
        var e2 = org.junit.jupiter.api.Assertions.assertThrows(XdsTranslator.ConfigException.class, () -> XdsTranslator.translate("b",
                c.getStaticResources().getListenersList(), c.getStaticResources().getClustersList(), List.of()));
        assertTrue(e2.getMessage().contains("tls_inspector"), e2.getMessage());
    }

    /** An outbound HTTP listener routing to one mTLS cluster that expects {@code expected}. */
    private static String outbound(int port, int upstream, String expected) {
        return """
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
                          http_filters: [ { name: envoy.filters.http.router } ]
                          route_config:
                            name: outbound
                            virtual_hosts:
                            - { name: catalog, domains: [ "catalog" ], routes: [ { match: { prefix: "/" }, route: { cluster: catalog } } ] }
                  clusters:
                  - name: catalog
                    type: STATIC
                    transport_socket:
                      name: envoy.transport_sockets.tls
                      typed_config:
                        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
                        common_tls_context:
                          validation_context:
                            match_typed_subject_alt_names: [ { san_type: URI, matcher: { exact: "%s" } } ]
                    load_assignment:
                      cluster_name: catalog
                      endpoints:
                      - lb_endpoints:
                        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: %d } } }
                """.formatted(port, expected, upstream);
    }

    @Test
    void aClusterWhoseExpectedIdentitiesChangeIsReplacedUnderTheRunningListener() throws Exception {
        var east = SpiffeTlsTest.root(EAST);
        Map<String, List<X509Certificate>> bundle = Map.of(EAST, List.of(east.cert()));
        var orders = SpiffeTlsTest.leaf(east, "spiffe://" + EAST + "/ns/shop/sa/orders", bundle);
        int port = dev.isthmus.proxy.Loopback.freePort();
        manager = new RelayManager(loops, meters, () -> Optional.of(orders));
        var first = XdsTranslator.parseBootstrap(outbound(port, 1, "spiffe://" + EAST + "/ns/shop/sa/catalog"), "a.yaml");
        manager.apply(XdsTranslator.translate("a", first.getStaticResources().getListenersList(), first.getStaticResources().getClustersList(), List.of()));
        try (var app = new java.net.Socket("127.0.0.1", port)) {
            app.setSoTimeout(5000);
            var out = app.getOutputStream();
            var in = new java.io.BufferedReader(new java.io.InputStreamReader(app.getInputStream(), StandardCharsets.US_ASCII));
            out.write("GET / HTTP/1.1\r\nHost: elsewhere\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            assertTrue(in.readLine().startsWith("HTTP/1.1 404"), "no route for that host: the connection is served");
            // the callee's identities change (a workload of another trust domain joins the service)
            var second = XdsTranslator.parseBootstrap(outbound(port, 1, "spiffe://" + WEST + "/ns/shop/sa/catalog"), "b.yaml");
            manager.apply(XdsTranslator.translate("b", second.getStaticResources().getListenersList(), second.getStaticResources().getClustersList(),
                    List.of()));
            String line;
            while (!(line = in.readLine()).isEmpty()) {
                // the rest of the 404's headers
            }
            // then ask again on the same connection (the first answer's body is skipped below)
            out.write("GET / HTTP/1.1\r\nHost: elsewhere\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            String again = in.readLine();
            while (again != null && !again.startsWith("HTTP/1.1")) {
                again = in.readLine();
            }
            assertTrue(again != null && again.startsWith("HTTP/1.1 404"), "the app's kept-alive connection survived the update: " + again);
        }
    }
}
