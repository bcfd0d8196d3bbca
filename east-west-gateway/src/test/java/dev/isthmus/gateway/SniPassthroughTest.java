package dev.isthmus.gateway;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.proxy.EventLoops;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class SniPassthroughTest {

    private static final String EXPORTED = "outbound_.8080_._.product-catalog.shop.svc.cluster.local";

    private final EventLoops loops = EventLoops.create("gw-test", 1);
    private final SimpleMeterRegistry meters = new SimpleMeterRegistry();
    private ServerSocket endpoint;
    private SniPassthrough gateway;
    private final CompletableFuture<Integer> firstByteAtEndpoint = new CompletableFuture<>();

    @BeforeEach
    void start() throws Exception {
        endpoint = new ServerSocket(0, 50, java.net.InetAddress.getLoopbackAddress());
        Thread.ofVirtual().start(() -> {
            try (Socket s = endpoint.accept()) {
                firstByteAtEndpoint.complete(s.getInputStream().read());
            } catch (IOException e) {
                firstByteAtEndpoint.completeExceptionally(e);
            }
        });
        var routes = SniRoutes.parse(EXPORTED + "=127.0.0.1:" + endpoint.getLocalPort());
        gateway = SniPassthrough.start(loops, new InetSocketAddress("127.0.0.1", 0), () -> routes, Duration.ofSeconds(2), meters);
    }

    @AfterEach
    void stop() throws IOException {
        gateway.close();
        endpoint.close();
        loops.close();
    }

    /**
     * Starts a TLS handshake with the openssl command (which, like Envoy, sends Istio-style SNI names
     * with underscores; the JDK refuses to) and returns once it ended.
     */
    private boolean handshakeClosedByGateway(String sni) throws Exception {
        var command = new java.util.ArrayList<>(java.util.List.of("openssl", "s_client", "-connect",
                "127.0.0.1:" + gateway.address().getPort()));
        if (sni != null) {
            command.addAll(java.util.List.of("-servername", sni));
        } else {
            command.add("-noservername");
        }
        var p = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        p.getOutputStream().close();
        return p.waitFor(5, TimeUnit.SECONDS);
    }

    private double rejected(Rejection reason) {
        return meters.get("isthmus_tcp_connections_rejected").tag("reason", reason.label()).counter().count();
    }

    @Test
    void relaysTheClientHelloOfAnExportedServiceToItsEndpointWithoutTerminatingTls() throws Exception {
        CompletableFuture.runAsync(() -> {
            try {
                handshakeClosedByGateway(EXPORTED);
            } catch (Exception expected) {
                // the test endpoint does not speak TLS; only what reached it matters
            }
        });
        assertEquals(0x16, firstByteAtEndpoint.get(5, TimeUnit.SECONDS), "the endpoint must receive the TLS ClientHello itself");
    }

    @Test
    void closesConnectionsForUnknownSni() throws Exception {
        assertTrue(handshakeClosedByGateway("outbound_.8080_._.secrets.vault.svc.cluster.local"));
        assertEquals(1.0, rejected(Rejection.UNKNOWN_SNI));
        assertEquals(false, firstByteAtEndpoint.isDone());
    }

    @Test
    void closesConnectionsWithoutSni() throws Exception {
        assertTrue(handshakeClosedByGateway(null));
        assertEquals(1.0, rejected(Rejection.NO_SNI));
        assertEquals(false, firstByteAtEndpoint.isDone());
    }

    @Test
    void aClientHelloThatNeverCompletesIsClosedAfterTheReadTimeout() throws Exception {
        try (var client = new Socket("127.0.0.1", gateway.address().getPort())) {
            client.setSoTimeout(6000);
            // a TLS handshake record announcing 512 bytes, of which only 5 arrive
            client.getOutputStream().write(new byte[] {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, (byte) 0xfc, 0x03});
            long start = System.nanoTime();
            assertEquals(-1, client.getInputStream().read(), "closed by the gateway");
            long waited = (System.nanoTime() - start) / 1_000_000;
            assertTrue(waited >= 1500 && waited < 5000, "closed at the 2 s ClientHello timeout, after " + waited + " ms");
        }
        assertEquals(1.0, rejected(Rejection.CLIENT_HELLO_TIMEOUT));
        assertEquals(false, firstByteAtEndpoint.isDone());
    }

    @Test
    void aClientHelloOverTheSizeCapIsClosed() throws Exception {
        try (var client = new Socket("127.0.0.1", gateway.address().getPort())) {
            client.setSoTimeout(5000);
            // handshake records carrying one ClientHello that claims 64 KiB, past the 16 KiB cap
            var out = client.getOutputStream();
            out.write(new byte[] {0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x01, 0x00, 0x00, 0x03, 0x03});
            byte[] filler = new byte[0x4000 - 6];
            out.write(filler);
            out.flush();
            int r;
            try {
                r = client.getInputStream().read();
            } catch (java.net.SocketException reset) {
                r = -1;
            }
            assertEquals(-1, r, "closed by the gateway");
        }
        assertEquals(1.0, rejected(Rejection.CLIENT_HELLO_INVALID));
        assertEquals(false, firstByteAtEndpoint.isDone());
    }

    @Test
    void closesPlaintextConnectionsAtOnce() throws Exception {
        try (var client = new Socket("127.0.0.1", gateway.address().getPort())) {
            client.setSoTimeout(5000);
            client.getOutputStream().write("GET / HTTP/1.1\r\nHost: product-catalog\r\n\r\n".getBytes());
            assertEquals(-1, client.getInputStream().read());
        }
        assertEquals(1.0, rejected(Rejection.NOT_TLS));
        assertEquals(false, firstByteAtEndpoint.isDone());
    }

    @Test
    void rejectsMalformedRouteText() {
        var e = assertThrows(IllegalArgumentException.class, () -> SniRoutes.parse("a.example=nowhere"));
        assertEquals("route 'a.example=nowhere' is not of the form sni=host:port", e.getMessage());
    }
}
