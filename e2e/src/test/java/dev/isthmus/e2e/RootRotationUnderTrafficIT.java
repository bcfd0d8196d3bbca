package dev.isthmus.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.proxy.identity.SpiffeTls;
import dev.isthmus.proxy.identity.SvidClient;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.net.InetAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A root rotation in us-east while mTLS traffic flows both ways between us-east and eu-west
 * workloads (plain TLS 1.3 sockets using the bridges' certificates through proxy-core's
 * {@link SpiffeTls}, until the sidecars carry mTLS): every connection is a new full handshake (a
 * new SSL context, so no session resumption hides a certificate check), plus one long-lived
 * connection each way. Short periods: the new root is distributed for 8 s, certificates live 20 s.
 * Asserted: zero failed handshakes and zero failed requests through distribution, switch and
 * retirement; handshakes really used certificates of both the old and the new us-east root; and the
 * old root leaves eu-west's bundle at the end.
 */
class RootRotationUnderTrafficIT {

    static final String US = "us-east.acme.isthmus";
    static final String EU = "eu-west.acme.isthmus";

    @RegisterExtension
    static final LocalFederationExtension FED = new LocalFederationExtension(26000, "us-east", "eu-west").withEnvironment("trust-bridge",
            Map.of("ISTHMUS_CA_ROTATION_DISTRIBUTION_PERIOD", "8s", "ISTHMUS_CA_SVID_TTL", "20s", "ISTHMUS_CA_MAX_SVID_TTL", "20s"));

    static SvidClient identity(String region, String sa) throws Exception {
        String credential = Files.readString(FED.topology().workloadTokenFile(region)).strip();
        var client = new SvidClient("127.0.0.1:" + FED.topology().trustBridgeGrpcPort(region), "spiffe://" + region + ".acme.isthmus/ns/shop/sa/" + sa,
                credential, Duration.ZERO);
        client.start();
        Instant deadline = Instant.now().plusSeconds(30);
        while ((client.current().isEmpty() || client.current().get().bundle().size() < 2) && Instant.now().isBefore(deadline)) {
            Thread.sleep(100);
        }
        assertEquals(2, client.current().orElseThrow(() -> new AssertionError(region + ": " + client.lastError())).bundle().size(),
                region + " trusts both trust domains");
        return client;
    }

    /** An echo server for one workload: answers each line with "ok <line>"; records the peers' leaf certificates. */
    static final class Server implements AutoCloseable {
        final SSLServerSocket socket;
        final Queue<X509Certificate> peers = new ConcurrentLinkedQueue<>();
        final AtomicInteger failures = new AtomicInteger();
        final Queue<String> failureReasons = new ConcurrentLinkedQueue<>();

        Server(SvidClient identity, String acceptedDomain) throws Exception {
            var ctx = SpiffeTls.context(identity::current, id -> SpiffeTls.trustDomain(id).equals(acceptedDomain));
            socket = (SSLServerSocket) ctx.getServerSocketFactory().createServerSocket(0, 128, InetAddress.getByName("127.0.0.1"));
            socket.setNeedClientAuth(true);
            socket.setEnabledProtocols(new String[] {"TLSv1.3"});
            Thread.ofPlatform().daemon().name("echo-accept").start(() -> {
                while (!socket.isClosed()) {
                    try {
                        var s = (SSLSocket) socket.accept();
                        Thread.ofVirtual().start(() -> serve(s));
                    } catch (Exception e) {
                        // closed
                    }
                }
            });
        }

        void serve(SSLSocket s) {
            try (s) {
                s.setSoTimeout(10_000);
                s.startHandshake();
                peers.add((X509Certificate) s.getSession().getPeerCertificates()[0]);
                var in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8));
                var out = new PrintWriter(s.getOutputStream(), true, StandardCharsets.UTF_8);
                String line;
                while ((line = in.readLine()) != null) {
                    out.println("ok " + line);
                }
            } catch (Exception e) {
                failures.incrementAndGet();
                failureReasons.add(e.toString());
            }
        }

        int port() {
            return socket.getLocalPort();
        }

        @Override
        public void close() throws Exception {
            socket.close();
        }
    }

    /** Calls a server: a new context and a full handshake per connection, one request each; counts outcomes. */
    static final class Caller {
        final AtomicInteger ok = new AtomicInteger();
        final AtomicInteger failed = new AtomicInteger();
        final Queue<String> reasons = new ConcurrentLinkedQueue<>();

        void once(SvidClient identity, String expectedServer, int port, int n) {
            try {
                var ctx = SpiffeTls.context(identity::current, expectedServer::equals);
                try (var s = (SSLSocket) ctx.getSocketFactory().createSocket("127.0.0.1", port)) {
                    s.setSoTimeout(10_000);
                    s.setEnabledProtocols(new String[] {"TLSv1.3"});
                    s.startHandshake();
                    var out = new PrintWriter(s.getOutputStream(), true, StandardCharsets.UTF_8);
                    var in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8));
                    out.println("request " + n);
                    String answer = in.readLine();
                    if (!("ok request " + n).equals(answer)) {
                        throw new IllegalStateException("answer '" + answer + "' to request " + n);
                    }
                }
                ok.incrementAndGet();
            } catch (Exception e) {
                failed.incrementAndGet();
                reasons.add(Instant.now() + " " + e);
            }
        }
    }

    static String rotationPhase(HttpClient http) throws Exception {
        String body = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + FED.topology().trustBridgePort("us-east")
                + "/api/v1/trust/rotation")).build(), HttpResponse.BodyHandlers.ofString()).body();
        var m = java.util.regex.Pattern.compile("\"phase\"\\s*:\\s*\"(\\w+)\"").matcher(body);
        return m.find() ? m.group(1) : body;
    }

    static boolean signedBy(X509Certificate cert, X509Certificate root) {
        try {
            cert.verify(root.getPublicKey());
            return true;
        } catch (Exception e) {
            return false;
        }
    }

    @Test
    void aRootRotationInOneRegionFailsNoHandshakeAndNoRequestBetweenRegions() throws Exception {
        var http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(5)).build();
        var orders = identity("us-east", "orders");
        var catalog = identity("eu-west", "product-catalog");
        X509Certificate oldRoot = orders.current().orElseThrow().roots(US).get(0);
        try (var euServer = new Server(catalog, US); var usServer = new Server(orders, EU)) {
            var toEu = new Caller();
            var toUs = new Caller();
            var longLived = new Caller();
            var running = new AtomicBoolean(true);
            var threads = List.of(Thread.ofPlatform().name("us-to-eu").start(() -> {
                for (int n = 0; running.get(); n++) {
                    toEu.once(orders, catalog.current().orElseThrow().spiffeId(), euServer.port(), n);
                    sleep(20);
                }
            }), Thread.ofPlatform().name("eu-to-us").start(() -> {
                for (int n = 0; running.get(); n++) {
                    toUs.once(catalog, orders.current().orElseThrow().spiffeId(), usServer.port(), n);
                    sleep(20);
                }
            }), Thread.ofPlatform().name("long-lived").start(() -> {
                // one connection from us-east to eu-west made before the rotation, used throughout
                try {
                    var ctx = SpiffeTls.context(orders::current, id -> SpiffeTls.trustDomain(id).equals(EU));
                    try (var s = (SSLSocket) ctx.getSocketFactory().createSocket("127.0.0.1", euServer.port())) {
                        s.setSoTimeout(10_000);
                        var out = new PrintWriter(s.getOutputStream(), true, StandardCharsets.UTF_8);
                        var in = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8));
                        for (int n = 0; running.get(); n++) {
                            out.println("stream " + n);
                            if (("ok stream " + n).equals(in.readLine())) {
                                longLived.ok.incrementAndGet();
                            } else {
                                longLived.failed.incrementAndGet();
                            }
                            sleep(50);
                        }
                    }
                } catch (Exception e) {
                    longLived.failed.incrementAndGet();
                    longLived.reasons.add(e.toString());
                }
            }));
            // each call is a new mTLS handshake: on a busy machine ten take a few seconds (a fixed 2 s wait saw 11 and 10)
            Instant flowing = Instant.now().plusSeconds(30);
            while ((toEu.ok.get() <= 10 || toUs.ok.get() <= 10) && Instant.now().isBefore(flowing) && toEu.failed.get() + toUs.failed.get() == 0) {
                Thread.sleep(100);
            }
            assertTrue(toEu.ok.get() > 10 && toUs.ok.get() > 10 && toEu.failed.get() + toUs.failed.get() == 0, "traffic flows before the rotation: "
                    + toEu.ok + " / " + toUs.ok + " " + toEu.reasons + toUs.reasons);

            String admin = Files.readString(FED.topology().adminTokenFile("us-east")).strip();
            var rotate = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + FED.topology().trustBridgePort("us-east")
                    + "/api/v1/trust/rotate")).header("Authorization", "Bearer " + admin).POST(HttpRequest.BodyPublishers.noBody()).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(202, rotate.statusCode(), rotate.body());
            Instant started = Instant.now();
            var phases = new java.util.LinkedHashSet<String>();
            Instant deadline = started.plusSeconds(60);
            String phase;
            do {
                Thread.sleep(250);
                phase = rotationPhase(http);
                phases.add(phase);
            } while (!(phases.contains("Issuing") && phase.equals("Stable")) && Instant.now().isBefore(deadline));
            assertEquals(List.of("Distributing", "Issuing", "Stable"), List.copyOf(phases), "phases seen");
            Thread.sleep(3000); // traffic after the retirement
            running.set(false);
            for (var t : threads) {
                t.join(15_000);
            }

            X509Certificate newRoot = orders.current().orElseThrow().roots(US).get(0);
            assertFalse(newRoot.equals(oldRoot), "us-east has a new root");
            var usLeavesSeenInEu = List.copyOf(euServer.peers);
            assertTrue(usLeavesSeenInEu.stream().anyMatch(c -> signedBy(c, oldRoot)), "handshakes used certificates of the old root");
            assertTrue(usLeavesSeenInEu.stream().anyMatch(c -> signedBy(c, newRoot)), "handshakes used certificates of the new root");
            System.out.printf("rotation took %s; us->eu %d ok, eu->us %d ok, long-lived %d ok%n", Duration.between(started, Instant.now()),
                    toEu.ok.get(), toUs.ok.get(), longLived.ok.get());

            assertEquals(0, toEu.failed.get(), "failed us-east -> eu-west handshakes/requests: " + toEu.reasons);
            assertEquals(0, toUs.failed.get(), "failed eu-west -> us-east handshakes/requests: " + toUs.reasons);
            assertEquals(0, longLived.failed.get(), "failed requests on the long-lived connection: " + longLived.reasons);
            assertEquals(0, euServer.failures.get() + usServer.failures.get(), "server-side failures: " + euServer.failureReasons
                    + usServer.failureReasons);
            assertTrue(toEu.ok.get() > 100 && toUs.ok.get() > 100 && longLived.ok.get() > 300, "steady traffic throughout");

            Instant until = Instant.now().plusSeconds(15);
            while (catalog.current().orElseThrow().roots(US).size() != 1 && Instant.now().isBefore(until)) {
                Thread.sleep(200);
            }
            assertEquals(List.of(newRoot), catalog.current().orElseThrow().roots(US), "eu-west trusts only the new us-east root at the end");
        } finally {
            orders.close();
            catalog.close();
        }
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
