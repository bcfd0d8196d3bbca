package dev.isthmus.gateway;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Any;
import com.google.protobuf.UInt32Value;
import dev.isthmus.proxy.EventLoops;
import dev.isthmus.proxy.config.xds.AdsClient;
import io.envoyproxy.controlplane.cache.v3.SimpleCache;
import io.envoyproxy.controlplane.cache.v3.Snapshot;
import io.envoyproxy.controlplane.server.DiscoveryServerCallbacks;
import io.envoyproxy.controlplane.server.V3DiscoveryServer;
import io.envoyproxy.envoy.config.cluster.v3.Cluster;
import io.envoyproxy.envoy.config.core.v3.Address;
import io.envoyproxy.envoy.config.core.v3.AggregatedConfigSource;
import io.envoyproxy.envoy.config.core.v3.ConfigSource;
import dev.isthmus.xds.envoy.config.core.v3.Node;
import io.envoyproxy.envoy.config.core.v3.SocketAddress;
import io.envoyproxy.envoy.config.endpoint.v3.ClusterLoadAssignment;
import io.envoyproxy.envoy.config.endpoint.v3.LbEndpoint;
import io.envoyproxy.envoy.config.endpoint.v3.LocalityLbEndpoints;
import io.envoyproxy.envoy.service.discovery.v3.DeltaDiscoveryRequest;
import io.envoyproxy.envoy.service.discovery.v3.DiscoveryRequest;
import io.grpc.Server;
import io.grpc.netty.NettyServerBuilder;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The gateway configured over ADS by a real xDS server (java-control-plane's): routes from Clusters
 * named by SNI, load balancing across a service's endpoints, retry onto another endpoint when one is
 * down, a refused set NACKed with the old routes kept, and the last good set served after a restart
 * with the server gone.
 */
class GatewayXdsTest {

    private static final String SNI = "outbound_.80_._.product-catalog.shop.svc.cluster.local";

    @TempDir
    Path state;

    private final EventLoops loops = EventLoops.create("gw-xds-test", 1);
    private final SimpleMeterRegistry meters = new SimpleMeterRegistry();
    private final SimpleCache<String> cache = new SimpleCache<>(node -> "gateways");
    private final List<String> nacks = new java.util.concurrent.CopyOnWriteArrayList<>();
    /** What a second {@code closeDropped} at once after one that closed flows closed (each time). */
    private final List<Integer> closedAgain = new java.util.concurrent.CopyOnWriteArrayList<>();
    private final AtomicReference<SniRoutes> routes = new AtomicReference<>(SniRoutes.NONE);
    private final List<ServerSocket> endpoints = new ArrayList<>();
    private final List<AtomicInteger> hits = new ArrayList<>();
    private Server xds;
    private SniPassthrough gateway;
    private AdsClient client;

    @BeforeEach
    void start() throws Exception {
        for (int i = 0; i < 2; i++) {
            var socket = new ServerSocket(0, 200, java.net.InetAddress.getLoopbackAddress());
            var count = new AtomicInteger();
            endpoints.add(socket);
            hits.add(count);
            Thread.ofVirtual().start(() -> {
                while (!socket.isClosed()) {
                    try {
                        Socket s = socket.accept();
                        Thread.ofVirtual().start(() -> {
                            try (s) {
                                if (s.getInputStream().read() == 0x16) {
                                    count.incrementAndGet();
                                }
                            } catch (IOException ignored) {
                                // the test client gives up on the handshake
                            }
                        });
                    } catch (IOException e) {
                        return;
                    }
                }
            });
        }
        xds = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0)).addService(new V3DiscoveryServer(new DiscoveryServerCallbacks() {
            @Override
            public void onV3StreamRequest(long streamId, DiscoveryRequest request) {
                if (request.hasErrorDetail()) {
                    nacks.add(request.getErrorDetail().getMessage());
                }
            }

            @Override
            public void onV3StreamDeltaRequest(long streamId, DeltaDiscoveryRequest request) {
            }
        }, cache).getAggregatedDiscoveryServiceImpl()).build().start();
        gateway = SniPassthrough.start(loops, new InetSocketAddress("127.0.0.1", 0), routes::get, Duration.ofSeconds(2), meters);
    }

    private int xdsPort;

    private AdsClient connect() {
        if (xdsPort == 0) {
            xdsPort = xds.getPort(); // kept: a terminated server no longer tells its port
        }
        var c = new AdsClient("127.0.0.1:" + xdsPort, Node.newBuilder().setId("gw").build(), state.resolve("xds-last-good.pb"), config -> {
            var next = SniRoutes.fromConfig(config, routes.get());
            routes.set(next);
            if (gateway.closeDropped(next) > 0) { // as GatewayMain does
                // and again at once, as the apply of the server's next response can come before the close
                // has run on the flow's event loop: a flow is closed, and counted, once
                closedAgain.add(gateway.closeDropped(next));
            }
        }, meters);
        c.start();
        return c;
    }

    @AfterEach
    void stop() throws IOException {
        if (client != null) {
            client.close();
        }
        gateway.close();
        xds.shutdownNow();
        for (var s : endpoints) {
            s.close();
        }
        loops.close();
    }

    private static Cluster cluster(String name) {
        return Cluster.newBuilder().setName(name).setType(Cluster.DiscoveryType.EDS).setLbPolicy(Cluster.LbPolicy.ROUND_ROBIN)
                .setEdsClusterConfig(Cluster.EdsClusterConfig.newBuilder().setEdsConfig(ConfigSource.newBuilder()
                        .setAds(AggregatedConfigSource.getDefaultInstance())))
                .setConnectTimeout(com.google.protobuf.Duration.newBuilder().setSeconds(1)).build();
    }

    private static ClusterLoadAssignment assignment(String name, int... ports) {
        var group = LocalityLbEndpoints.newBuilder();
        for (int port : ports) {
            group.addLbEndpoints(LbEndpoint.newBuilder().setLoadBalancingWeight(UInt32Value.of(1)).setEndpoint(
                    io.envoyproxy.envoy.config.endpoint.v3.Endpoint.newBuilder().setAddress(Address.newBuilder()
                            .setSocketAddress(SocketAddress.newBuilder().setAddress("127.0.0.1").setPortValue(port)))));
        }
        return ClusterLoadAssignment.newBuilder().setClusterName(name).addEndpoints(group).build();
    }

    private void serve(String version, List<Cluster> clusters, List<ClusterLoadAssignment> assignments) {
        cache.setSnapshot("gateways", Snapshot.create(clusters, assignments, List.of(), List.of(), List.of(), version));
    }

    /** A TLS ClientHello with {@code sni} through the gateway (openssl, which sends Istio's underscore names). */
    private void hello(String sni) throws Exception {
        var p = new ProcessBuilder("openssl", "s_client", "-connect", "127.0.0.1:" + gateway.address().getPort(), "-servername", sni)
                .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        p.getOutputStream().close();
        assertTrue(p.waitFor(10, TimeUnit.SECONDS));
    }

    private static void eventually(java.util.function.BooleanSupplier check, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!check.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("not within 10 s: " + what);
            }
            Thread.sleep(20);
        }
    }

    private double rejected(Rejection reason) {
        return meters.get("isthmus_tcp_connections_rejected").tag("reason", reason.label()).counter().count();
    }

    @Test
    void routesFromXdsBalanceAcrossEndpointsAndSkipADeadOne() throws Exception {
        int a = endpoints.get(0).getLocalPort();
        int b = endpoints.get(1).getLocalPort();
        serve("1", List.of(cluster(SNI)), List.of(assignment(SNI, a, b)));
        client = connect();
        eventually(() -> routes.get().lookup(SNI).isPresent(), "the route from xDS");
        for (int i = 0; i < 6; i++) {
            hello(SNI);
        }
        eventually(() -> hits.get(0).get() + hits.get(1).get() == 6, "six ClientHellos delivered");
        assertEquals(3, hits.get(0).get(), "round robin over the two endpoints");
        assertEquals(3, hits.get(1).get());

        // One endpoint goes away: every connection still reaches the other (a failed connect is retried elsewhere).
        endpoints.get(0).close();
        for (int i = 0; i < 4; i++) {
            hello(SNI);
        }
        eventually(() -> hits.get(1).get() == 7, "the live endpoint takes every new connection");
        assertEquals(0.0, rejected(Rejection.UPSTREAM_UNREACHABLE));
    }

    @Test
    void aSetWithAClusterNotNamedBySniIsRefusedAndTheRoutesInForceStay() throws Exception {
        int a = endpoints.get(0).getLocalPort();
        serve("1", List.of(cluster(SNI)), List.of(assignment(SNI, a)));
        client = connect();
        eventually(() -> routes.get().lookup(SNI).isPresent(), "the route from xDS");
        serve("2", List.of(cluster(SNI), cluster("product-catalog")), List.of(assignment(SNI, a), assignment("product-catalog", a)));
        eventually(() -> !nacks.isEmpty(), "a NACK");
        assertTrue(nacks.get(0).contains("Cluster 'product-catalog': name: the gateway routes by SNI"), nacks.get(0));
        hello(SNI);
        eventually(() -> hits.get(0).get() == 1, "the kept route still serves");

        // A service no longer exported: its SNI is refused like any unknown name.
        serve("3", List.of(), List.of());
        eventually(() -> routes.get().lookup(SNI).isEmpty(), "the route withdrawn");
        hello(SNI);
        eventually(() -> rejected(Rejection.UNKNOWN_SNI) == 1.0, "unknown_sni counted");
        assertEquals(1, hits.get(0).get());
    }

    /**
     * An isolated cluster's gateway (DESIGN.md, "Failover drills"): its controller serves every
     * service with all of its traffic dropped (drop_overloads at 100%). The flow in progress is
     * closed, a new connection is refused as {@code drop_overload}, and both are counted; once the
     * drop is gone, connections reach the endpoint again.
     */
    @Test
    void aRouteThatDropsAllOfItsTrafficClosesItsFlowsAndRefusesNewOnes() throws Exception {
        var holding = new ServerSocket(0, 50, java.net.InetAddress.getLoopbackAddress());
        endpoints.add(holding);
        var accepted = new AtomicInteger();
        var ended = new AtomicInteger();
        Thread.ofVirtual().start(() -> {
            while (!holding.isClosed()) {
                try {
                    Socket s = holding.accept();
                    accepted.incrementAndGet();
                    Thread.ofVirtual().start(() -> {
                        try (s) {
                            while (s.getInputStream().read() >= 0) {
                                // holds the flow open, as a sidecar's pooled connection stays open
                            }
                        } catch (IOException ignored) {
                            // closed under us
                        }
                        ended.incrementAndGet();
                    });
                } catch (IOException e) {
                    return;
                }
            }
        });
        int port = holding.getLocalPort();
        serve("1", List.of(cluster(SNI)), List.of(assignment(SNI, port)));
        client = connect();
        eventually(() -> routes.get().lookup(SNI).isPresent(), "the route from xDS");
        // openssl waits for a ServerHello that never comes: the flow stays open until the gateway closes it
        var flow = new ProcessBuilder("openssl", "s_client", "-connect", "127.0.0.1:" + gateway.address().getPort(), "-servername", SNI)
                .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        try {
            eventually(() -> accepted.get() == 1, "the flow reached the endpoint");
            Thread.sleep(200);
            assertTrue(flow.isAlive() && ended.get() == 0, "the flow is open");

            var isolated = assignment(SNI, port).toBuilder().setPolicy(ClusterLoadAssignment.Policy.newBuilder().addDropOverloads(
                    ClusterLoadAssignment.Policy.DropOverload.newBuilder().setCategory("isthmus_isolated").setDropPercentage(
                            io.envoyproxy.envoy.type.v3.FractionalPercent.newBuilder().setNumerator(100)))).build();
            serve("2", List.of(cluster(SNI)), List.of(isolated));
            assertTrue(flow.waitFor(10, TimeUnit.SECONDS), "the gateway closed the flow in progress");
            eventually(() -> ended.get() == 1, "and its endpoint side");
            assertEquals(1.0, meters.get("isthmus_tcp_connections_closed").tag("reason", "drop_overload").counter().count());
            assertEquals(List.of(0), closedAgain, "closed again before its close had run");
            hello(SNI);
            eventually(() -> rejected(Rejection.DROP_OVERLOAD) == 1.0, "a new connection refused as drop_overload");
            assertEquals(1, accepted.get(), "nothing more reached the endpoint");

            serve("3", List.of(cluster(SNI)), List.of(assignment(SNI, port)));
            eventually(() -> routes.get().lookup(SNI).filter(r -> r instanceof dev.isthmus.proxy.lb.ClusterLoadBalancer lb
                    && lb.spec().drops().isEmpty()).isPresent(), "the drop lifted");
            flow = new ProcessBuilder("openssl", "s_client", "-connect", "127.0.0.1:" + gateway.address().getPort(), "-servername", SNI)
                    .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
            eventually(() -> accepted.get() == 2, "connections reach the endpoint again");
        } finally {
            flow.destroyForcibly();
        }
    }

    @Test
    void restartedWithTheServerGoneItServesTheLastGoodRoutes() throws Exception {
        int a = endpoints.get(0).getLocalPort();
        serve("1", List.of(cluster(SNI)), List.of(assignment(SNI, a)));
        client = connect();
        eventually(() -> Files.exists(state.resolve("xds-last-good.pb")), "the last good set written");
        client.close();
        xds.shutdownNow();
        routes.set(SniRoutes.NONE);
        client = connect();
        eventually(() -> routes.get().lookup(SNI).isPresent(), "the route from the last good file");
        hello(SNI);
        eventually(() -> hits.get(0).get() == 1, "served from the kept config");
    }
}
