package dev.isthmus.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Any;
import com.google.protobuf.util.Durations;
import com.sun.net.httpserver.HttpServer;
import io.envoyproxy.controlplane.cache.v3.SimpleCache;
import io.envoyproxy.controlplane.cache.v3.Snapshot;
import io.envoyproxy.controlplane.server.DiscoveryServerCallbacks;
import io.envoyproxy.controlplane.server.V3DiscoveryServer;
import io.envoyproxy.envoy.config.cluster.v3.Cluster;
import io.envoyproxy.envoy.config.core.v3.Address;
import io.envoyproxy.envoy.config.core.v3.SocketAddress;
import io.envoyproxy.envoy.config.endpoint.v3.ClusterLoadAssignment;
import io.envoyproxy.envoy.config.endpoint.v3.Endpoint;
import io.envoyproxy.envoy.config.endpoint.v3.LbEndpoint;
import io.envoyproxy.envoy.config.endpoint.v3.LocalityLbEndpoints;
import io.envoyproxy.envoy.config.listener.v3.Filter;
import io.envoyproxy.envoy.config.listener.v3.FilterChain;
import io.envoyproxy.envoy.config.listener.v3.Listener;
import io.envoyproxy.envoy.config.route.v3.Route;
import io.envoyproxy.envoy.config.route.v3.RouteAction;
import io.envoyproxy.envoy.config.route.v3.RouteConfiguration;
import io.envoyproxy.envoy.config.route.v3.RouteMatch;
import io.envoyproxy.envoy.config.route.v3.VirtualHost;
import io.envoyproxy.envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager;
import io.envoyproxy.envoy.service.discovery.v3.DeltaDiscoveryRequest;
import io.envoyproxy.envoy.service.discovery.v3.DiscoveryRequest;
import io.grpc.Server;
import io.grpc.netty.NettyServerBuilder;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A real sidecar-lite process configured over ADS by an xDS server (java-control-plane's, until the
 * controller's own lands): it ACKs and serves the pushed HTTP listener; it NACKs a broken update
 * and keeps serving; restarted while the server is gone, it serves its last good config at once.
 */
class SidecarXdsIT {

    static final int BASE = 26500;

    static Address address(int port) {
        return Address.newBuilder().setSocketAddress(SocketAddress.newBuilder().setAddress("127.0.0.1").setPortValue(port)).build();
    }

    static Snapshot snapshot(String version, String cluster, int appPort, int listenPort) {
        var route = RouteConfiguration.newBuilder().setName("out").addVirtualHosts(VirtualHost.newBuilder().setName("all").addDomains("*")
                .addRoutes(Route.newBuilder().setMatch(RouteMatch.newBuilder().setPrefix("/")).setRoute(RouteAction.newBuilder().setCluster(cluster))));
        var hcm = HttpConnectionManager.newBuilder().setStatPrefix("out").setRouteConfig(route).build();
        var listener = Listener.newBuilder().setName("outbound-http").setAddress(address(listenPort)).addFilterChains(FilterChain.newBuilder()
                .addFilters(Filter.newBuilder().setName("envoy.filters.network.http_connection_manager").setTypedConfig(Any.pack(hcm)))).build();
        var c = Cluster.newBuilder().setName("catalog").setType(Cluster.DiscoveryType.STATIC).setConnectTimeout(Durations.fromSeconds(1))
                .setLoadAssignment(ClusterLoadAssignment.newBuilder().setClusterName("catalog").addEndpoints(LocalityLbEndpoints.newBuilder()
                        .addLbEndpoints(LbEndpoint.newBuilder().setEndpoint(Endpoint.newBuilder().setAddress(address(appPort)))))).build();
        return Snapshot.create(List.of(c), List.of(), List.of(listener), List.of(), List.of(), version);
    }

    static Process sidecar(Path dir, int appPort, int xdsPort) throws Exception {
        var pb = new ProcessBuilder(LocalFederationExtension.javaCommand(), "-Xmx64m", "-XX:+UseSerialGC",
                "-Xlog:class+load=info:file=" + dir.resolve("classes.log"), "-jar",
                LocalFederationExtension.home().resolve("sidecar-lite/target/sidecar-lite.jar").toString())
                .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve("sidecar.log").toFile()));
        pb.environment().putAll(java.util.Map.of("ISTHMUS_APP", "127.0.0.1:" + appPort, "ISTHMUS_INBOUND", "127.0.0.1:" + (BASE + 2),
                "ISTHMUS_ADMIN", "127.0.0.1:" + (BASE + 1), "ISTHMUS_IO_THREADS", "1", "ISTHMUS_XDS", "127.0.0.1:" + xdsPort, "ISTHMUS_STATE_DIR",
                dir.toString(), "ISTHMUS_SERVICE", "shop/orders", "ISTHMUS_CLUSTER", "us-east", "ISTHMUS_MTLS", "off"));
        return pb.start();
    }

    @Test
    void aSidecarAcksNacksAndServesItsLastGoodConfigAfterARestartWithoutTheServer() throws Exception {
        Path dir = Files.createTempDirectory(LocalFederationExtension.home().resolve("e2e/target"), "sidecar-xds-");
        var app = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        app.createContext("/", ex -> {
            byte[] b = "catalogue".getBytes(StandardCharsets.UTF_8);
            ex.sendResponseHeaders(200, b.length);
            ex.getResponseBody().write(b);
            ex.close();
        });
        app.start();
        int appPort = app.getAddress().getPort();
        int listenPort = BASE + 10;
        var cache = new SimpleCache<String>(node -> "sidecars");
        Queue<DiscoveryRequest> seen = new ConcurrentLinkedQueue<>();
        cache.setSnapshot("sidecars", snapshot("v1", "catalog", appPort, listenPort));
        Server xds = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", BASE + 5)).addService(new V3DiscoveryServer(
                new DiscoveryServerCallbacks() {
                    @Override
                    public void onV3StreamRequest(long id, DiscoveryRequest r) {
                        seen.add(r);
                    }

                    @Override
                    public void onV3StreamDeltaRequest(long id, DeltaDiscoveryRequest r) {
                    }
                }, cache).getAggregatedDiscoveryServiceImpl()).build().start();
        Process sidecar = sidecar(dir, appPort, BASE + 5);
        try {
            assertEquals("catalogue", Http.await("http://127.0.0.1:" + listenPort + "/products", Duration.ofSeconds(30), b -> b.equals("catalogue")));
            assertTrue(seen.stream().anyMatch(r -> r.getVersionInfo().equals("v1") && !r.getResponseNonce().isEmpty() && !r.hasErrorDetail()),
                    "v1 ACKed");
            // With mTLS off nothing asks for TLS until /config_dump names the provider: no BoringSSL,
            // no JDK TLS provider (about 9 MiB of a sidecar's memory).
            var tlsClasses = Files.readAllLines(dir.resolve("classes.log")).stream()
                    .filter(l -> l.contains(" io.netty.handler.ssl.OpenSsl ") || l.contains(" sun.security.ssl.")).toList();
            assertTrue(tlsClasses.isEmpty(), "a sidecar with mTLS off loaded TLS classes: " + tlsClasses);

            cache.setSnapshot("sidecars", snapshot("v2", "missing", appPort, listenPort));
            Instant deadline = Instant.now().plusSeconds(15);
            while (seen.stream().noneMatch(r -> r.hasErrorDetail() && r.getErrorDetail().getMessage().contains("no cluster named 'missing'"))
                    && Instant.now().isBefore(deadline)) {
                Thread.sleep(100);
            }
            assertTrue(seen.stream().anyMatch(r -> r.hasErrorDetail() && r.getErrorDetail().getMessage().contains("no cluster named 'missing'")),
                    "v2 NACKed with the reason");
            assertEquals(200, Http.get("http://127.0.0.1:" + listenPort + "/products").statusCode(), "v1 still served");
            String dump = Http.get("http://127.0.0.1:" + (BASE + 1) + "/config_dump").body();
            assertTrue(dump.contains("no cluster named 'missing'"), "the refusal shows in /config_dump: " + dump);
            assertTrue(dump.contains("\"name\":\"outbound-http\"") && dump.contains("\"protocol\":\"http\""), dump);

            xds.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            sidecar.destroy();
            assertTrue(sidecar.waitFor(15, TimeUnit.SECONDS));
            sidecar = sidecar(dir, appPort, BASE + 5);
            assertEquals("catalogue", Http.await("http://127.0.0.1:" + listenPort + "/products", Duration.ofSeconds(30), b -> b.equals("catalogue")),
                    "restarted with the xDS server gone, it serves its last good config");
        } finally {
            sidecar.destroy();
            sidecar.waitFor(10, TimeUnit.SECONDS);
            sidecar.destroyForcibly();
            xds.shutdownNow();
            app.stop(0);
        }
    }
}
