package dev.isthmus.proxy.tcp;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.proxy.EventLoops;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.DataInputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class TcpRelayTest {

    private final EventLoops loops = EventLoops.create("relay-test", 2);
    private final SimpleMeterRegistry meters = new SimpleMeterRegistry();

    @AfterEach
    void stop() {
        loops.close();
    }

    /** An echo server on a real socket: the relay's upstream. */
    private static ServerSocket echoServer() throws Exception {
        var server = new ServerSocket(0, 50, java.net.InetAddress.getLoopbackAddress());
        Thread.ofVirtual().start(() -> {
            while (!server.isClosed()) {
                try {
                    Socket s = server.accept();
                    Thread.ofVirtual().start(() -> {
                        try (s; InputStream in = s.getInputStream(); OutputStream out = s.getOutputStream()) {
                            in.transferTo(out);
                        } catch (Exception ignored) {
                            // the client went away; nothing to clean up beyond the socket
                        }
                    });
                } catch (Exception e) {
                    return;
                }
            }
        });
        return server;
    }

    @Test
    void relaysBytesBothWaysIncludingLargeTransfers() throws Exception {
        try (var echo = echoServer();
             var relay = TcpRelay.start("test", loops, new InetSocketAddress("127.0.0.1", 0),
                     new InetSocketAddress("127.0.0.1", echo.getLocalPort()), Duration.ofSeconds(2), meters);
             var client = new Socket("127.0.0.1", relay.address().getPort())) {
            byte[] payload = new byte[4 * 1024 * 1024];
            new Random(7).nextBytes(payload);
            Thread.ofVirtual().start(() -> {
                try {
                    client.getOutputStream().write(payload);
                    client.shutdownOutput();
                } catch (Exception ignored) {
                    // the assertion below reports the short read
                }
            });
            byte[] back = new byte[payload.length];
            new DataInputStream(client.getInputStream()).readFully(back);
            assertTrue(java.util.Arrays.equals(payload, back), "echoed bytes differ");
            assertEquals(-1, client.getInputStream().read(), "relay must close after the upstream closes");
        }
        assertEquals(4 * 1024 * 1024, meters.get("isthmus_tcp_received_bytes").counter().count(), 0.0);
    }

    @Test
    void closesTheClientWhenTheUpstreamRefuses() throws Exception {
        int deadPort;
        try (var s = new ServerSocket(0)) {
            deadPort = s.getLocalPort();
        }
        try (var relay = TcpRelay.start("test", loops, new InetSocketAddress("127.0.0.1", 0),
                new InetSocketAddress("127.0.0.1", deadPort), Duration.ofSeconds(2), meters);
             var client = new Socket("127.0.0.1", relay.address().getPort())) {
            client.setSoTimeout(5000);
            assertEquals(-1, client.getInputStream().read());
        }
        assertEquals(1.0, meters.get("isthmus_upstream_connect_failures").counter().count(), 0.0);
    }

    @Test
    void aFailedConnectIsRetriedOnAnotherEndpointAndTheDeadOneIsEjected() throws Exception {
        int dead;
        try (var s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            dead = s.getLocalPort(); // closed again: connections are refused
        }
        try (var echo = echoServer()) {
            var spec = new dev.isthmus.proxy.config.xds.ProxyConfig.ClusterSpec("c", dev.isthmus.proxy.config.xds.ProxyConfig.LbPolicy.ROUND_ROBIN,
                    Duration.ofSeconds(1), false, java.util.List.of(), java.util.Optional.empty(), java.util.List.of(
                            new dev.isthmus.proxy.config.xds.ProxyConfig.EndpointSpec(new InetSocketAddress("127.0.0.1", dead),
                                    dev.isthmus.proxy.config.xds.ProxyConfig.Locality.NONE, 0, 1, true),
                            new dev.isthmus.proxy.config.xds.ProxyConfig.EndpointSpec(new InetSocketAddress("127.0.0.1", echo.getLocalPort()),
                                    dev.isthmus.proxy.config.xds.ProxyConfig.Locality.NONE, 0, 1, true)), 140);
            var lb = new dev.isthmus.proxy.lb.ClusterLoadBalancer(spec, new java.util.SplittableRandom(1), java.time.Clock.systemUTC(), 3,
                    Duration.ofSeconds(30));
            try (var relay = TcpRelay.start("lb", loops, new InetSocketAddress("127.0.0.1", 0), lb, "c", 3, Duration.ofSeconds(1), meters,
                    TcpRelay.Tls.NONE)) {
                for (int i = 0; i < 10; i++) {
                    try (var client = new Socket("127.0.0.1", relay.address().getPort())) {
                        client.setSoTimeout(5000);
                        client.getOutputStream().write(("hello " + i + "\n").getBytes());
                        assertEquals("hello " + i + "\n", new String(client.getInputStream().readNBytes(("hello " + i + "\n").length())));
                    }
                }
                double retries = meters.get(dev.isthmus.proxy.ProxyMetrics.UPSTREAM_RETRIES).counter().count();
                assertEquals(3.0, retries, "the dead endpoint was tried until ejected (3 failures), each time retried on the live one");
                assertTrue(lb.ejected(new InetSocketAddress("127.0.0.1", dead)));
            }
        }
    }
}
