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
}
