package dev.isthmus.proxy.config.xds;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Any;
import com.google.protobuf.util.Durations;
import dev.isthmus.proxy.EventLoops;
import dev.isthmus.proxy.tcp.RelayManager;
import io.envoyproxy.controlplane.cache.v3.SimpleCache;
import io.envoyproxy.controlplane.cache.v3.Snapshot;
import io.envoyproxy.controlplane.server.DiscoveryServerCallbacks;
import io.envoyproxy.controlplane.server.V3DiscoveryServer;
import io.envoyproxy.envoy.config.cluster.v3.Cluster;
import io.envoyproxy.envoy.config.core.v3.Address;
import dev.isthmus.xds.envoy.config.core.v3.Node;
import io.envoyproxy.envoy.config.core.v3.SocketAddress;
import io.envoyproxy.envoy.config.endpoint.v3.ClusterLoadAssignment;
import io.envoyproxy.envoy.config.endpoint.v3.Endpoint;
import io.envoyproxy.envoy.config.endpoint.v3.LbEndpoint;
import io.envoyproxy.envoy.config.endpoint.v3.LocalityLbEndpoints;
import io.envoyproxy.envoy.config.listener.v3.Filter;
import io.envoyproxy.envoy.config.listener.v3.FilterChain;
import io.envoyproxy.envoy.config.listener.v3.Listener;
import io.envoyproxy.envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy;
import io.envoyproxy.envoy.service.discovery.v3.DeltaDiscoveryRequest;
import io.envoyproxy.envoy.service.discovery.v3.DiscoveryRequest;
import io.envoyproxy.envoy.service.discovery.v3.DiscoveryResponse;
import io.grpc.Server;
import io.grpc.netty.NettyServerBuilder;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The ADS client against a real xDS server (java-control-plane's V3DiscoveryServer on a SimpleCache), with real listeners. */
class AdsClientTest {

    private final EventLoops loops = EventLoops.create("ads-test", 2);
    private final SimpleMeterRegistry meters = new SimpleMeterRegistry();
    private final SimpleCache<String> cache = new SimpleCache<>(node -> "sidecars");
    private final Queue<DiscoveryRequest> seen = new ConcurrentLinkedQueue<>();
    private Server server;

    @AfterEach
    void stop() {
        if (server != null) {
            server.shutdownNow();
        }
        loops.close();
    }

    /** A server that answers each line with its tag. */
    static ServerSocket tagged(String tag) throws Exception {
        var s = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        Thread.ofVirtual().start(() -> {
            while (!s.isClosed()) {
                try {
                    Socket c = s.accept();
                    Thread.ofVirtual().start(() -> {
                        try (c; var in = new BufferedReader(new InputStreamReader(c.getInputStream())); var out = new PrintWriter(c.getOutputStream(), true)) {
                            String line;
                            while ((line = in.readLine()) != null) {
                                out.println(tag + ":" + line);
                            }
                        } catch (Exception ignored) {
                            // caller gone
                        }
                    });
                } catch (Exception e) {
                    return;
                }
            }
        });
        return s;
    }


    static Address address(int port) {
        return Address.newBuilder().setSocketAddress(SocketAddress.newBuilder().setAddress("127.0.0.1").setPortValue(port)).build();
    }

    static Listener listener(String name, int port, String cluster) {
        return Listener.newBuilder().setName(name).setAddress(address(port)).addFilterChains(FilterChain.newBuilder().addFilters(Filter.newBuilder()
                .setName("envoy.filters.network.tcp_proxy").setTypedConfig(Any.pack(TcpProxy.newBuilder().setStatPrefix(name).setCluster(cluster).build()))))
                .build();
    }

    static Cluster cluster(String name, int endpointPort) {
        return Cluster.newBuilder().setName(name).setType(Cluster.DiscoveryType.STATIC).setConnectTimeout(Durations.fromSeconds(1))
                .setLoadAssignment(ClusterLoadAssignment.newBuilder().setClusterName(name).addEndpoints(LocalityLbEndpoints.newBuilder()
                        .addLbEndpoints(LbEndpoint.newBuilder().setEndpoint(Endpoint.newBuilder().setAddress(address(endpointPort)))))).build();
    }

    void startServer() throws Exception {
        var callbacks = new DiscoveryServerCallbacks() {
            @Override
            public void onV3StreamRequest(long streamId, DiscoveryRequest request) {
                seen.add(request);
            }

            @Override
            public void onV3StreamDeltaRequest(long streamId, DeltaDiscoveryRequest request) {
            }
        };
        server = NettyServerBuilder.forAddress(new java.net.InetSocketAddress("127.0.0.1", 0))
                .addService(new V3DiscoveryServer(callbacks, cache).getAggregatedDiscoveryServiceImpl()).build().start();
    }

    static void await(String what, BooleanSupplier condition) throws InterruptedException {
        Instant deadline = Instant.now().plusSeconds(15);
        while (!condition.getAsBoolean()) {
            if (Instant.now().isAfter(deadline)) {
                throw new AssertionError(what + " did not happen within 15 s");
            }
            Thread.sleep(50);
        }
    }

    static String call(int port, String line) throws Exception {
        try (var s = new Socket("127.0.0.1", port)) {
            s.setSoTimeout(5000);
            new PrintWriter(s.getOutputStream(), true).println(line);
            return new BufferedReader(new InputStreamReader(s.getInputStream())).readLine();
        }
    }

    @Test
    void appliesAcksNacksKeepsTheLastGoodAndServesItAfterARestartWithoutTheServer() throws Exception {
        startServer();
        Path lastGood = Files.createTempDirectory("xds").resolve("last-good.pb");
        int port = dev.isthmus.proxy.Loopback.freePort();
        try (var a = tagged("A"); var b = tagged("B")) {
            cache.setSnapshot("sidecars", Snapshot.create(List.of(cluster("app", a.getLocalPort())), List.of(), List.of(listener("l1", port, "app")),
                    List.of(), List.of(), "v1"));
            var node = Node.newBuilder().setId("sidecar-1").setCluster("shop/orders").build();
            var manager = new RelayManager(loops, meters, null);
            try (var client = new AdsClient("127.0.0.1:" + server.getPort(), node, lastGood, manager, meters)) {
                client.start();
                await("v1 applied", () -> manager.address("l1").isPresent());
                assertEquals("A:hello", call(port, "hello"));
                await("v1 ACKed", () -> seen.stream().anyMatch(r -> r.getTypeUrl().equals(AdsClient.LISTENER) && r.getVersionInfo().equals("v1")
                        && !r.getResponseNonce().isEmpty() && !r.hasErrorDetail()));

                // v2 refers to a cluster that does not exist: NACKed with the reason, v1 keeps running
                cache.setSnapshot("sidecars", Snapshot.create(List.of(cluster("app", a.getLocalPort())), List.of(),
                        List.of(listener("l1", port, "missing")), List.of(), List.of(), "v2"));
                await("v2 NACKed", () -> seen.stream().anyMatch(r -> r.hasErrorDetail()
                        && r.getErrorDetail().getMessage().contains("Listener 'l1': filter_chains[0].filters[0].typed_config.cluster: no cluster named 'missing'")
                        && r.getVersionInfo().equals("v1")));
                assertEquals("A:still", call(port, "still"));
                assertTrue(client.lastError().contains("no cluster named 'missing'"), client.lastError());
                Thread.sleep(2000);
                double nacks = meters.get("isthmus_xds_rejected").counters().stream().mapToDouble(c -> c.count()).sum();
                assertTrue(nacks >= 1 && nacks <= 8, "the server resends the refused version; the client answers with growing pauses, not a busy loop: " + nacks);

                // v3 moves the cluster to B: new connections go there
                cache.setSnapshot("sidecars", Snapshot.create(List.of(cluster("app", b.getLocalPort())), List.of(), List.of(listener("l1", port, "app")),
                        List.of(), List.of(), "v3"));
                await("v3 applied", () -> {
                    try {
                        return call(port, "x").equals("B:x");
                    } catch (Exception e) {
                        return false;
                    }
                });
            } finally {
                manager.close();
            }
            assertTrue(lastGoodSets(lastGood).values().stream().anyMatch(r -> r.getVersionInfo().equals("v3")), "the last good set is on disk");

            // restart with the server gone: the last good config is served at once
            server.shutdownNow().awaitTermination();
            var restarted = new RelayManager(loops, meters, null);
            try (var client = new AdsClient("127.0.0.1:" + dev.isthmus.proxy.Loopback.freePort(), Node.newBuilder().setId("sidecar-1").build(), lastGood, restarted, meters)) {
                client.start();
                await("last good applied", () -> restarted.address("l1").isPresent());
                assertEquals("B:after-restart", call(port, "after-restart"));
            } finally {
                restarted.close();
            }
        }
    }

    /** A last-good file that is not one (cut short, written by something else) is passed over, and replaced by the server's set. */
    @Test
    void anUnreadableLastGoodFileIsPassedOverAndReplaced() throws Exception {
        startServer();
        Path lastGood = Files.createTempDirectory("xds").resolve("last-good.pb");
        Files.write(lastGood, new byte[] {0x7f, 0x0a, 0x03, 'a', 'b'}); // a length of 127 bytes, then 4
        int port = dev.isthmus.proxy.Loopback.freePort();
        try (var a = tagged("A")) {
            cache.setSnapshot("sidecars", Snapshot.create(List.of(cluster("app", a.getLocalPort())), List.of(), List.of(listener("l1", port, "app")),
                    List.of(), List.of(), "v1"));
            var manager = new RelayManager(loops, meters, null);
            try (var client = new AdsClient("127.0.0.1:" + server.getPort(), Node.newBuilder().setId("sidecar-1").build(), lastGood, manager, meters)) {
                client.start();
                await("v1 applied", () -> manager.address("l1").isPresent());
                assertEquals("A:hello", call(port, "hello"));
                await("v1 on disk", () -> {
                    try {
                        return clusterNames(lastGood).equals(java.util.Set.of("app"));
                    } catch (java.io.IOException | RuntimeException e) {
                        return false;
                    }
                });
            } finally {
                manager.close();
            }
        }
    }

    /** The sets in a last-good file, by type URL. */
    static java.util.Map<String, DiscoveryResponse> lastGoodSets(Path file) throws java.io.IOException {
        var sets = new java.util.LinkedHashMap<String, DiscoveryResponse>();
        try (var in = Files.newInputStream(file)) {
            DiscoveryResponse r;
            while ((r = DiscoveryResponse.parseDelimitedFrom(in)) != null) {
                sets.put(r.getTypeUrl(), r);
            }
        }
        return sets;
    }

    /** The names of the clusters in a last-good file. */
    static java.util.Set<String> clusterNames(Path file) throws java.io.IOException {
        var names = new java.util.TreeSet<String>();
        for (var any : lastGoodSets(file).get(AdsClient.CLUSTER).getResourcesList()) {
            names.add(any.unpack(Cluster.class).getName());
        }
        return names;
    }

    /**
     * A server removes a cluster and the listener that routes to it in one change, but its Cluster
     * response comes before its Listener response (java-control-plane answers clusters first): the
     * client neither NACKs the clusters nor breaks the listener in force. It keeps the removed
     * cluster until the Listener response no longer routes to it, and then drops it.
     */
    @Test
    void aClusterRemovedBeforeTheListenerThatRoutesToItIsHeldUntilTheListenerGoes() throws Exception {
        startServer();
        Path lastGood = Files.createTempDirectory("xds").resolve("last-good.pb");
        int port1 = dev.isthmus.proxy.Loopback.freePort();
        int port2 = dev.isthmus.proxy.Loopback.freePort();
        try (var a = tagged("A"); var b = tagged("B")) {
            var both = List.of(listener("l1", port1, "app"), listener("l2", port2, "old"));
            cache.setSnapshot("sidecars", Snapshot.create(List.of(cluster("app", a.getLocalPort()), cluster("old", b.getLocalPort())), "c1", List.of(), "e1",
                    both, "l1", List.of(), "r1", List.of(), "s1"));
            var manager = new RelayManager(loops, meters, null);
            try (var client = new AdsClient("127.0.0.1:" + server.getPort(), Node.newBuilder().setId("sidecar-1").build(), lastGood, manager, meters)) {
                client.start();
                await("the first set applied", () -> manager.address("l2").isPresent());
                assertEquals("B:one", call(port2, "one"));

                // the clusters without 'old' come while the listeners in force still route to it
                cache.setSnapshot("sidecars", Snapshot.create(List.of(cluster("app", a.getLocalPort())), "c2", List.of(), "e1", both, "l1", List.of(), "r1",
                        List.of(), "s1"));
                await("c2 ACKed", () -> seen.stream().anyMatch(r -> r.getTypeUrl().equals(AdsClient.CLUSTER) && r.getVersionInfo().equals("c2")
                        && !r.hasErrorDetail()));
                assertTrue(seen.stream().noneMatch(DiscoveryRequest::hasErrorDetail), "nothing NACKed: " + seen);
                assertEquals("B:held", call(port2, "held"), "l2 still reaches the cluster it routes to");
                assertEquals(java.util.Set.of("app", "old"), clusterNames(lastGood), "the last good set on disk is what runs: l2 and its cluster");

                // the listeners without l2 come: 'old' goes with them
                cache.setSnapshot("sidecars", Snapshot.create(List.of(cluster("app", a.getLocalPort())), "c2", List.of(), "e1",
                        List.of(listener("l1", port1, "app")), "l2", List.of(), "r1", List.of(), "s1"));
                await("l2 closed", () -> manager.address("l2").isEmpty());
                await("the set without 'old' on disk", () -> {
                    try {
                        return clusterNames(lastGood).equals(java.util.Set.of("app"));
                    } catch (java.io.IOException e) {
                        return false;
                    }
                });
                assertEquals("A:two", call(port1, "two"));
                assertTrue(seen.stream().noneMatch(DiscoveryRequest::hasErrorDetail), "nothing NACKed: " + seen);
            } finally {
                manager.close();
            }
        }
    }
}
