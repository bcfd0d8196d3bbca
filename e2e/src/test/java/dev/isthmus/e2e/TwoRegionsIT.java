package dev.isthmus.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.nats.client.Nats;
import io.nats.client.Options;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Two regions of the local federation, started as `isthmus up` starts them. */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class TwoRegionsIT {

    @RegisterExtension
    static final LocalFederationExtension FED = new LocalFederationExtension(31000, "us-east", "eu-west");

    @Test
    @Order(1)
    void everyComponentOfBothRegionsIsReady() {
        var status = FED.federation().status();
        assertEquals(24, status.size());
        for (var s : status) {
            assertTrue(s.alive() && s.ready(), s.component().id() + " is not ready");
        }
    }

    @Test
    @Order(2)
    void aNatsMessagePublishedInOneRegionArrivesInTheOtherThroughTheGatewayLink() throws Exception {
        var east = Options.builder().server("nats://127.0.0.1:" + FED.topology().natsClientPort("us-east")).build();
        var west = Options.builder().server("nats://127.0.0.1:" + FED.topology().natsClientPort("eu-west")).build();
        try (var subscriber = Nats.connect(east); var publisher = Nats.connect(west)) {
            var sub = subscriber.subscribe("isthmus.acme.e2e.ping");
            subscriber.flush(Duration.ofSeconds(2));
            // Gateway interest propagates asynchronously: publish until the first message crosses.
            io.nats.client.Message received = null;
            for (int i = 0; i < 50 && received == null; i++) {
                publisher.publish("isthmus.acme.e2e.ping", ("hello from eu-west " + i).getBytes(StandardCharsets.UTF_8));
                publisher.flush(Duration.ofSeconds(2));
                received = sub.nextMessage(Duration.ofMillis(100));
            }
            assertNotNull(received, "no message crossed from eu-west to us-east");
            assertTrue(new String(received.getData(), StandardCharsets.UTF_8).startsWith("hello from eu-west"));
            assertEquals(1, FED.federation().natsGatewayLinks("us-east"));
        }
    }

    @Test
    @Order(3)
    void controllersSeeEachOtherActiveOverTheFederation() throws Exception {
        String east = "http://127.0.0.1:" + FED.topology().controllerPort("us-east") + "/api/v1/federation";
        String body = Http.await(east, Duration.ofSeconds(10), b -> b.contains("\"cluster\":\"eu-west\"") && b.contains("\"Active\""));
        assertTrue(body.contains("\"natsConnected\":true"), body);
    }

    @Test
    @Order(4)
    void aShopCallGoesSidecarToSidecarOverMtlsAndPlainTextToAnInboundIsRefused() throws Exception {
        // order-processing -> its sidecar's upstream listener -> mTLS -> product-catalog's sidecar -> product-catalog
        int orders = FED.topology().appPort("eu-west", "order-processing");
        String body = Http.await("http://127.0.0.1:" + orders + "/orders/checkout", Duration.ofSeconds(20),
                b -> b.contains("\"upstreamStatus\":200"));
        assertTrue(body.contains("\"cluster\":\"eu-west\""), body);
        assertTrue(body.contains("\"service\":\"product-catalog\""), body);
        assertTrue(body.contains("\"caller\":\"spiffe://eu-west.acme.isthmus/ns/shop/sa/order-processing\""),
                "the catalogue's sidecar passes the caller's verified identity to the app: " + body);

        // The catalogue's sidecar inbound speaks mTLS only: plain HTTP gets no answer.
        int inbound = FED.topology().sidecarInboundPort("eu-west", "product-catalog");
        try (var s = new java.net.Socket("127.0.0.1", inbound)) {
            s.setSoTimeout(5000);
            s.getOutputStream().write("GET /products HTTP/1.1\r\nHost: x\r\n\r\n".getBytes());
            byte[] answer = s.getInputStream().readNBytes(64);
            assertFalse(new String(answer).startsWith("HTTP/"), "plain HTTP must not reach the app: " + new String(answer));
        } catch (java.net.SocketException e) {
            // reset: refused as well
        }
        // order-processing's sidecar runs the outbound listener its controller serves over xDS, with the example policy's canary
        String dump = Http.get("http://127.0.0.1:" + FED.topology().sidecarAdminPort("eu-west", "order-processing") + "/config_dump").body();
        assertTrue(dump.contains("\"name\":\"outbound\"") && dump.contains("\"outbound|80|v1|product-catalog.shop.svc.cluster.local\"")
                && dump.contains("\"outbound|80|v2|product-catalog.shop.svc.cluster.local\""), dump);
        // the call went to v1 or, one time in ten (the example canary), to v2: the mTLS handshake is counted by the one that served it
        String v1 = Http.get("http://127.0.0.1:" + FED.topology().sidecarAdminPort("eu-west", "product-catalog") + "/metrics").body();
        String v2 = Http.get("http://127.0.0.1:" + FED.topology().sidecarAdminPort("eu-west", "product-catalog-v2") + "/metrics").body();
        String success = "isthmus_tls_handshakes_total{listener=\"inbound\",result=\"success\",side=\"downstream\"}";
        assertTrue(v1.contains(success) || v2.contains(success), v1 + v2);
        assertTrue(v1.contains("isthmus_tls_handshakes_total{listener=\"inbound\",result=\"failure\",side=\"downstream\"}"),
                "the plain-text attempt on v1's inbound: " + v1);
    }

    @Test
    @Order(5)
    void everySidecarHoldsAWorkloadCertificateFromItsRegionsTrustBridge() throws Exception {
        for (String region : java.util.List.of("us-east", "eu-west")) {
            int admin = FED.topology().sidecarAdminPort(region, "product-catalog");
            String dump = Http.await("http://127.0.0.1:" + admin + "/config_dump", Duration.ofSeconds(15), b -> b.contains("\"serial\""));
            assertTrue(dump.contains("\"spiffe_id\":\"spiffe://" + region + ".acme.isthmus/ns/shop/sa/product-catalog\""), dump);
            // The other region's root arrives through the controllers (signed, over NATS) and the bundle watch.
            Http.await("http://127.0.0.1:" + admin + "/config_dump", Duration.ofSeconds(30),
                    b -> b.contains("\"trust_roots\":2,\"trust_domains\":[\"eu-west.acme.isthmus\",\"us-east.acme.isthmus\"]"));
        }
        String metrics = Http.get("http://127.0.0.1:" + FED.topology().trustBridgePort("eu-west") + "/q/metrics").body();
        assertTrue(metrics.lines().anyMatch(l -> l.startsWith("isthmus_svid_issued_total") && !l.endsWith(" 0.0")), "issued counter");
    }

    @Test
    @Order(6)
    void aServiceRegisteredInOneRegionShowsInTheOthersCatalogAndLeavesWhenItsSidecarDies() throws Exception {
        String east = "http://127.0.0.1:" + FED.topology().controllerPort("us-east") + "/api/v1/services/shop/product-catalog";
        String body = Http.await(east, Duration.ofSeconds(10),
                b -> b.contains("\"instance\":\"product-catalog-eu-west-1\"") && b.contains("\"instance\":\"product-catalog-us-east-1\""));
        assertTrue(body.contains("\"region\":\"eu-west\""), body);

        FED.kill("eu-west/sidecar-product-catalog");
        Http.await(east, Duration.ofSeconds(15), b -> !b.contains("product-catalog-eu-west-1"));
        FED.restart("eu-west/sidecar-product-catalog");
        Http.await(east, Duration.ofSeconds(10), b -> b.contains("product-catalog-eu-west-1"));
    }

    @Test
    @Order(7)
    void aKilledControllerIsSeenUnreachableAndRecoversAfterRestart() throws Exception {
        String east = "http://127.0.0.1:" + FED.topology().controllerPort("us-east") + "/api/v1/federation";
        FED.kill("eu-west/federation-controller");
        assertTrue(FED.process("eu-west/federation-controller").isEmpty());
        Http.await(east, Duration.ofSeconds(8), b -> b.contains("\"Unreachable\""));
        FED.restart("eu-west/federation-controller");
        Http.await(east, Duration.ofSeconds(10), b -> b.contains("\"Active\"") && !b.contains("\"Unreachable\""));
    }

    @Test
    @Order(8)
    void whenTheLocalCatalogueIsDownCallsCrossToEuWestThroughTheGatewayWithMtlsEndToEnd() throws Exception {
        // us-east order-processing -> its sidecar (xDS from the us-east controller: local catalogue endpoints at priority 0,
        // eu-west's gateway at priority 1, SNI outbound_.80_.<subset>_.product-catalog...) -> eu-west's gateway (TLS passthrough)
        // -> eu-west product-catalog's sidecar (terminates mTLS, checks the caller) -> the app
        int orders = FED.topology().appPort("us-east", "order-processing");
        String local = Http.await("http://127.0.0.1:" + orders + "/orders/checkout", Duration.ofSeconds(20), b -> b.contains("\"upstreamStatus\":200"));
        assertTrue(local.contains("\"instance\":\"product-catalog-us-east-1\"") || local.contains("\"instance\":\"product-catalog-v2-us-east-1\""),
                "served in us-east while its catalogue runs: " + local);
        FED.kill("us-east/product-catalog");
        FED.kill("us-east/product-catalog-v2");
        try {
            String body = Http.await("http://127.0.0.1:" + orders + "/orders/checkout", Duration.ofSeconds(30),
                    b -> b.contains("\"upstreamStatus\":200") && b.contains("product-catalog-") && b.contains("-eu-west-1\""));
            assertTrue(body.contains("\"caller\":\"spiffe://us-east.acme.isthmus/ns/shop/sa/order-processing\""),
                    "the eu-west app sees the us-east caller's identity, verified at its own sidecar: " + body);
        } finally {
            FED.restart("us-east/product-catalog");
            FED.restart("us-east/product-catalog-v2");
        }
        String metrics = Http.get("http://127.0.0.1:" + FED.topology().gatewayAdminPort("eu-west") + "/metrics").body();
        // The example policy's canary routes by subset, so the SNI names the subset (v1 or v2).
        assertTrue(metrics.contains("isthmus_gateway_connections_total{sni=\"outbound_.80_.v1_.product-catalog.shop.svc.cluster.local\"}")
                || metrics.contains("isthmus_gateway_connections_total{sni=\"outbound_.80_.v2_.product-catalog.shop.svc.cluster.local\"}"),
                "the eu-west gateway carried it: " + metrics);
    }
}
