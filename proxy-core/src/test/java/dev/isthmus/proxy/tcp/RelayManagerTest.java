package dev.isthmus.proxy.tcp;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.proxy.EventLoops;
import dev.isthmus.proxy.config.xds.ProxyConfig;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class RelayManagerTest {

    private final EventLoops loops = EventLoops.create("manager-test", 1);

    @AfterEach
    void stop() {
        loops.close();
    }

    static ProxyConfig config(int listenPort, int upstreamPort) {
        var cluster = new ProxyConfig.ClusterSpec("c", ProxyConfig.LbPolicy.ROUND_ROBIN, Duration.ofSeconds(1), false, List.of(), Optional.empty(),
                List.of(new ProxyConfig.EndpointSpec(new InetSocketAddress("127.0.0.1", upstreamPort), ProxyConfig.Locality.NONE, 0, 1, true)), 140);
        return new ProxyConfig("v", List.of(new ProxyConfig.ListenerSpec("l1", new InetSocketAddress("127.0.0.1", listenPort), "c")), Map.of("c", cluster));
    }

    /** A method of UpstreamSelector left to its default in the cluster's selector would never reach the load balancer. */
    @Test
    void theClustersSelectorDeclaresEveryMethodOfUpstreamSelector() {
        var missing = new java.util.ArrayList<String>();
        for (var m : UpstreamSelector.class.getMethods()) {
            if (java.lang.reflect.Modifier.isStatic(m.getModifiers())) {
                continue;
            }
            try {
                RelayManager.ClusterSelector.class.getDeclaredMethod(m.getName(), m.getParameterTypes());
            } catch (NoSuchMethodException e) {
                missing.add(m.getName());
            }
        }
        assertEquals(List.of(), missing, "UpstreamSelector methods RelayManager.ClusterSelector does not forward");
    }

    @Test
    void aListenerThatCannotMoveKeepsRunningWhereItWas() throws Exception {
        try (var upstream = new ServerSocket(0, 10, InetAddress.getLoopbackAddress());
             var taken = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
             var manager = new RelayManager(loops, new SimpleMeterRegistry(), null)) {
            int first = dev.isthmus.proxy.Loopback.freePort();
            manager.apply(config(first, upstream.getLocalPort()));
            var e = assertThrows(IllegalStateException.class, () -> manager.apply(config(taken.getLocalPort(), upstream.getLocalPort())));
            assertTrue(e.getMessage().contains("listener could not start"), e.getMessage());
            assertEquals(first, manager.address("l1").orElseThrow().getPort(), "the old listener runs again");
            assertEquals(first, manager.config().listeners().get(0).address().getPort(), "the config in force is the old one");
            try (var client = new Socket("127.0.0.1", first)) {
                assertTrue(client.isConnected());
            }
        }
    }

    @Test
    void aClustersBreakerGaugesGoWithTheCluster() throws Exception {
        var meters = new SimpleMeterRegistry();
        try (var upstream = new ServerSocket(0, 10, InetAddress.getLoopbackAddress());
             var manager = new RelayManager(loops, meters, null)) {
            int port = dev.isthmus.proxy.Loopback.freePort();
            manager.apply(config(port, upstream.getLocalPort()));
            assertEquals(3, meters.find("isthmus_circuit_breaker_in_use").tag("cluster", "c").gauges().size(), "connections, requests, retries");
            var renamed = config(port, upstream.getLocalPort());
            var cluster = renamed.clusters().get("c");
            var d = new ProxyConfig.ClusterSpec("d", cluster.lbPolicy(), cluster.connectTimeout(), cluster.mtls(), cluster.expectedSpiffeIds(),
                    cluster.sni(), cluster.endpoints(), cluster.overprovisioningFactor());
            manager.apply(new ProxyConfig("v2", List.of(new ProxyConfig.ListenerSpec("l1", new InetSocketAddress("127.0.0.1", port), "d")),
                    Map.of("d", d)));
            assertEquals(0, meters.find("isthmus_circuit_breaker_in_use").tag("cluster", "c").gauges().size(), "the removed cluster's gauges are gone");
            assertEquals(3, meters.find("isthmus_circuit_breaker_in_use").tag("cluster", "d").gauges().size());
        }
    }

    /**
     * A TCP listener whose cluster drops all of its traffic (drop_overloads at 100%): each caller
     * connection is closed at once, counted, and never reaches the upstream; with the drop lifted by
     * the next config, connections are relayed again.
     */
    @Test
    void aClusterThatDropsAllOfItsTrafficClosesEachNewConnection() throws Exception {
        var meters = new SimpleMeterRegistry();
        try (var upstream = new ServerSocket(0, 10, InetAddress.getLoopbackAddress());
             var manager = new RelayManager(loops, meters, null)) {
            int port = dev.isthmus.proxy.Loopback.freePort();
            var open = config(port, upstream.getLocalPort());
            var c = open.clusters().get("c");
            var dropping = new ProxyConfig.ClusterSpec(c.name(), c.lbPolicy(), c.connectTimeout(), c.mtls(), c.expectedSpiffeIds(), c.sni(),
                    c.endpoints(), c.overprovisioningFactor(), c.limits(), c.outlier(), c.http2(), List.of(new ProxyConfig.DropOverload("isolated", 1.0)));
            manager.apply(new ProxyConfig("v1", open.listeners(), Map.of("c", dropping)));
            upstream.setSoTimeout(500);
            try (var client = new Socket("127.0.0.1", port)) {
                client.setSoTimeout(5000);
                assertEquals(-1, client.getInputStream().read(), "closed at once");
            }
            assertThrows(java.net.SocketTimeoutException.class, upstream::accept, "nothing reached the upstream");
            assertEquals(1.0, meters.get("isthmus_tcp_connections_rejected").tag("reason", "drop_overload").counter().count());

            manager.apply(new ProxyConfig("v2", open.listeners(), open.clusters()));
            try (var client = new Socket("127.0.0.1", port); var relayed = upstream.accept()) {
                assertTrue(relayed.isConnected(), "relayed again once the drop is lifted");
            }
        }
    }
}
