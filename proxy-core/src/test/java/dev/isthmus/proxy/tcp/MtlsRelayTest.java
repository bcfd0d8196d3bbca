package dev.isthmus.proxy.tcp;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.proxy.EventLoops;
import dev.isthmus.proxy.ProxyMetrics;
import dev.isthmus.proxy.identity.SpiffeSslContexts;
import dev.isthmus.proxy.identity.SpiffeTlsTest;
import dev.isthmus.proxy.identity.SvidClient;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Two relays as two sidecars would run them: an upstream listener (plain TCP from the app, mTLS to
 * the other sidecar, expecting its SPIFFE ID) and an inbound listener (mTLS from callers, plain TCP
 * to the app). Real sockets, real TLS 1.3 (BoringSSL when it loads).
 */
class MtlsRelayTest {

    static final String EAST = "us-east.acme.isthmus";
    static final String WEST = "eu-west.acme.isthmus";
    static final String ORDERS = "spiffe://" + EAST + "/ns/shop/sa/orders";
    static final String CATALOG = "spiffe://" + WEST + "/ns/shop/sa/product-catalog";

    private final EventLoops loops = EventLoops.create("mtls-test", 2);
    private final SimpleMeterRegistry meters = new SimpleMeterRegistry();
    private final AtomicInteger appConnections = new AtomicInteger();

    @AfterEach
    void stop() {
        loops.close();
    }

    private ServerSocket app() throws Exception {
        var server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        Thread.ofVirtual().start(() -> {
            while (!server.isClosed()) {
                try {
                    Socket s = server.accept();
                    appConnections.incrementAndGet();
                    Thread.ofVirtual().start(() -> {
                        try (s; InputStream in = s.getInputStream(); OutputStream out = s.getOutputStream()) {
                            in.transferTo(out);
                        } catch (Exception ignored) {
                            // the caller went away
                        }
                    });
                } catch (Exception e) {
                    return;
                }
            }
        });
        return server;
    }

    record Sidecars(TcpRelay inbound, TcpRelay outbound) implements AutoCloseable {
        @Override
        public void close() {
            outbound.close();
            inbound.close();
        }
    }

    private Sidecars sidecars(ServerSocket app, SvidClient.Svid caller, SvidClient.Svid callee, String expectedCallee) throws Exception {
        var inbound = TcpRelay.start("inbound", loops, new InetSocketAddress("127.0.0.1", 0), new InetSocketAddress("127.0.0.1", app.getLocalPort()),
                Duration.ofSeconds(2), meters, new TcpRelay.Tls(SpiffeSslContexts.server(() -> Optional.of(callee), id -> true), null, null));
        var outbound = TcpRelay.start("upstream-catalog", loops, new InetSocketAddress("127.0.0.1", 0), inbound.address(), Duration.ofSeconds(2),
                meters, new TcpRelay.Tls(null, SpiffeSslContexts.client(() -> Optional.of(caller), expectedCallee::equals), null));
        return new Sidecars(inbound, outbound);
    }

    private double handshakes(String listener, String side, String result) {
        var c = meters.find(ProxyMetrics.TLS_HANDSHAKES + "").tags("listener", listener, "side", side, "result", result).counter();
        return c == null ? 0 : c.count();
    }

    private static byte[] roundTrip(int port, byte[] payload) throws Exception {
        try (var s = new Socket("127.0.0.1", port)) {
            s.setSoTimeout(10_000);
            Thread.ofVirtual().start(() -> {
                try {
                    s.getOutputStream().write(payload);
                    s.shutdownOutput();
                } catch (Exception ignored) {
                    // read side reports
                }
            });
            var answer = new ByteArrayOutputStream();
            byte[] buf = new byte[64 * 1024];
            try {
                for (int n; (n = s.getInputStream().read(buf)) >= 0;) {
                    answer.write(buf, 0, n);
                }
            } catch (SocketException reset) {
                // A relay that refuses a connection closes it without reading what the caller sent
                // (reads start once the other side is in place); the kernel then ends it with a
                // reset rather than a FIN, depending on whether those bytes arrived before the close.
                // Either way the caller got no more than what was read until then.
                if (!String.valueOf(reset.getMessage()).contains("reset")) {
                    throw reset;
                }
            }
            return answer.toByteArray();
        }
    }

    @Test
    void twoSidecarsCarryBytesOverMtlsBetweenTrustDomains() throws Exception {
        var east = SpiffeTlsTest.root(EAST);
        var west = SpiffeTlsTest.root(WEST);
        Map<String, List<X509Certificate>> bundle = Map.of(EAST, List.of(east.cert()), WEST, List.of(west.cert()));
        try (var app = app(); var sc = sidecars(app, SpiffeTlsTest.leaf(east, ORDERS, bundle), SpiffeTlsTest.leaf(west, CATALOG, bundle), CATALOG)) {
            byte[] payload = new byte[1024 * 1024];
            new Random(3).nextBytes(payload);
            assertArrayEquals(payload, roundTrip(sc.outbound().address().getPort(), payload));
            assertEquals(1, handshakes("upstream-catalog", "upstream", "success"));
            assertEquals(1, handshakes("inbound", "downstream", "success"));
            System.out.println("TLS provider: " + SpiffeSslContexts.provider());
        }
    }

    /** TLS 1.3 lets the caller's sidecar send the request with its last handshake message: none of it may be lost. */
    @Test
    void aShortRequestSentAtOnceIsAnsweredWithoutAHalfClose() throws Exception {
        var east = SpiffeTlsTest.root(EAST);
        var west = SpiffeTlsTest.root(WEST);
        Map<String, List<X509Certificate>> bundle = Map.of(EAST, List.of(east.cert()), WEST, List.of(west.cert()));
        try (var app = app(); var sc = sidecars(app, SpiffeTlsTest.leaf(east, ORDERS, bundle), SpiffeTlsTest.leaf(west, CATALOG, bundle), CATALOG)) {
            for (int i = 0; i < 20; i++) {
                try (var s = new Socket("127.0.0.1", sc.outbound().address().getPort())) {
                    s.setSoTimeout(5_000);
                    s.getOutputStream().write(("ping " + i + "\n").getBytes());
                    byte[] answer = s.getInputStream().readNBytes(("ping " + i + "\n").length());
                    assertEquals("ping " + i + "\n", new String(answer));
                }
            }
        }
    }

    @Test
    void aCalleeWithAnotherIdentityThanExpectedGetsNoBytes() throws Exception {
        var east = SpiffeTlsTest.root(EAST);
        var west = SpiffeTlsTest.root(WEST);
        Map<String, List<X509Certificate>> bundle = Map.of(EAST, List.of(east.cert()), WEST, List.of(west.cert()));
        var impostor = SpiffeTlsTest.leaf(west, "spiffe://" + WEST + "/ns/shop/sa/login", bundle);
        try (var app = app(); var sc = sidecars(app, SpiffeTlsTest.leaf(east, ORDERS, bundle), impostor, CATALOG)) {
            assertEquals(0, roundTrip(sc.outbound().address().getPort(), "secret order".getBytes()).length, "closed without an answer");
            assertEquals(1, handshakes("upstream-catalog", "upstream", "failure"));
            assertEquals(0, appConnections.get(), "the app was never reached");
        }
    }

    @Test
    void plainTcpAndForeignCertificatesNeverReachTheApp() throws Exception {
        var east = SpiffeTlsTest.root(EAST);
        var west = SpiffeTlsTest.root(WEST);
        var stranger = SpiffeTlsTest.root("evil.example");
        Map<String, List<X509Certificate>> bundle = Map.of(EAST, List.of(east.cert()), WEST, List.of(west.cert()));
        // the caller's own bundle trusts the stranger's domain, but the callee's does not
        var strangerLeaf = SpiffeTlsTest.leaf(stranger, "spiffe://evil.example/ns/x/sa/y", Map.of("evil.example", List.of(stranger.cert()),
                WEST, List.of(west.cert())));
        try (var app = app(); var sc = sidecars(app, strangerLeaf, SpiffeTlsTest.leaf(west, CATALOG, bundle), CATALOG)) {
            assertEquals(0, roundTrip(sc.inbound().address().getPort(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n".getBytes()).length,
                    "plain HTTP to the mTLS inbound is closed");
            assertEquals(0, roundTrip(sc.outbound().address().getPort(), "hello".getBytes()).length, "a foreign caller is refused");
            Thread.sleep(200);
            assertTrue(handshakes("inbound", "downstream", "failure") >= 2, "both refusals counted");
            assertEquals(0, appConnections.get(), "the app was never reached");
        }
    }
}
