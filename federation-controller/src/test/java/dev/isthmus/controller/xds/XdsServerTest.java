package dev.isthmus.controller.xds;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.hasItem;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.xds.google.protobuf.Struct;
import dev.isthmus.xds.google.protobuf.Value;
import dev.isthmus.proxy.config.xds.AdsClient;
import dev.isthmus.proxy.config.xds.ProxyConfig;
import dev.isthmus.xds.envoy.config.core.v3.Node;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.quarkus.test.junit.QuarkusTest;
import jakarta.inject.Inject;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/** The controller's xDS server with the proxies' real ADS client: what a gateway and a sidecar receive, updates, and NACKs. */
@QuarkusTest
class XdsServerTest {

    static final String WORKLOAD = "test-workload-credential-0123456789";

    @Inject
    XdsServer xds;

    private static Node node(String id, String type, String service, String outbound) {
        var meta = Struct.newBuilder().putFields(XdsServer.TYPE_KEY, Value.newBuilder().setStringValue(type).build());
        if (outbound != null) {
            meta.putFields(XdsServer.OUTBOUND_KEY, Value.newBuilder().setStringValue(outbound).build());
        }
        return Node.newBuilder().setId(id).setCluster(service).setMetadata(meta).build();
    }

    private static int freePort() throws java.io.IOException {
        try (var s = new java.net.ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private static void register(String instance, int port) {
        given().auth().oauth2(WORKLOAD).contentType("application/json").body("""
                {"service":"shop/ledger","instance":"%s","address":"127.0.0.1","port":%d,"protocol":"http",
                 "identity":"spiffe://test-east.acme.isthmus/ns/shop/sa/ledger"}
                """.formatted(instance, port)).post("/api/v1/workloads").then().statusCode(201);
    }

    private static ProxyConfig next(BlockingQueue<ProxyConfig> applied, java.util.function.Predicate<ProxyConfig> until) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (System.nanoTime() < deadline) {
            ProxyConfig c = applied.poll(100, TimeUnit.MILLISECONDS);
            if (c != null && until.test(c)) {
                return c;
            }
        }
        // what the server holds for each proxy (versions acknowledged, last NACK), to tell a push not made from one not taken
        throw new AssertionError("no config as expected within 10 s; the server's view: " + given().get("/api/v1/xds/status").asString());
    }

    @Test
    void aGatewayGetsOneClusterPerExportedServiceAndFollowsRegistryChanges() throws Exception {
        register("ledger-1", 18001);
        var applied = new LinkedBlockingQueue<ProxyConfig>();
        String target = "127.0.0.1:" + xds.address().getPort();
        try (var client = new AdsClient(target, node("gw-1", "gateway", "", null), null, applied::add, new SimpleMeterRegistry())) {
            client.start();
            String sni = "outbound_.80_._.ledger.shop.svc.cluster.local";
            var first = next(applied, c -> c.clusters().containsKey(sni) && c.clusters().get(sni).endpoints().size() == 1
                    && c.clusters().get(sni).endpoints().get(0).address().getPort() == 18001);
            assertTrue(first.listeners().isEmpty(), "a gateway gets no listeners: its SNI listener is its own");

            register("ledger-2", 18002);
            next(applied, c -> c.clusters().containsKey(sni) && c.clusters().get(sni).endpoints().size() == 2);
            given().get("/api/v1/xds/status").then().statusCode(200).body("id", hasItem("gw-1")).body("find { it.id == 'gw-1' }.type",
                    org.hamcrest.Matchers.equalTo("gateway"));
        } finally {
            given().auth().oauth2(WORKLOAD).delete("/api/v1/workloads/ledger-1");
            given().auth().oauth2(WORKLOAD).delete("/api/v1/workloads/ledger-2");
        }
    }

    /**
     * An isolation drill (POST /api/v1/federation/isolate): the gateway keeps its services and their
     * endpoints, with all of their traffic dropped under the isolation's category; the end of the
     * isolation lifts the drop. The REST API shows it and refuses a bad duration where it is.
     */
    @Test
    void anIsolatedClustersGatewayDropsAllOfItsTrafficUntilTheIsolationEnds() throws Exception {
        register("ledger-9", 18009);
        var applied = new LinkedBlockingQueue<ProxyConfig>();
        String target = "127.0.0.1:" + xds.address().getPort();
        String admin = "test-admin-credential-0123456789"; // the test profile's admin credential
        String sni = "outbound_.80_._.ledger.shop.svc.cluster.local";
        try (var client = new AdsClient(target, node("gw-iso", "gateway", "", null), null, applied::add, new SimpleMeterRegistry())) {
            client.start();
            next(applied, c -> c.clusters().containsKey(sni) && c.clusters().get(sni).drops().isEmpty());
            given().auth().oauth2(admin).body("{\"duration\":\"forever\"}").post("/api/v1/federation/isolate").then().statusCode(400)
                    .body("detail", org.hamcrest.Matchers.containsString("field 'duration'"));
            given().body("{\"duration\":\"60s\"}").post("/api/v1/federation/isolate").then().statusCode(401);
            given().auth().oauth2(admin).body("{\"duration\":\"60s\"}").post("/api/v1/federation/isolate").then().statusCode(200)
                    .body("isolatedUntil", org.hamcrest.Matchers.notNullValue()).body("drainingUntil", org.hamcrest.Matchers.nullValue());
            var isolated = next(applied, c -> c.clusters().containsKey(sni) && c.clusters().get(sni).dropsAll().isPresent());
            assertEquals(java.util.Optional.of(dev.isthmus.controller.federation.Isolation.DROP_CATEGORY), isolated.clusters().get(sni).dropsAll());
            assertEquals(1, isolated.clusters().get(sni).endpoints().size(), "its endpoints stay");
            given().auth().oauth2(admin).delete("/api/v1/federation/isolate").then().statusCode(200)
                    .body("isolatedUntil", org.hamcrest.Matchers.nullValue());
            next(applied, c -> c.clusters().containsKey(sni) && c.clusters().get(sni).drops().isEmpty());
        } finally {
            given().auth().oauth2(admin).delete("/api/v1/federation/isolate");
            given().auth().oauth2(WORKLOAD).delete("/api/v1/workloads/ledger-9");
        }
    }

    @Test
    void aSidecarGetsAnOutboundListenerAndARejectedPushIsReported() throws Exception {
        register("ledger-3", 18003);
        var applied = new LinkedBlockingQueue<ProxyConfig>();
        var refuseNext = new AtomicBoolean(false);
        String target = "127.0.0.1:" + xds.address().getPort();
        try (var client = new AdsClient(target, node("sc-1", "sidecar", "shop/cart", "127.0.0.1:" + freePort()), null, c -> {
            var ledger = c.clusters().get("outbound|80||ledger.shop.svc.cluster.local");
            if (ledger != null && ledger.endpoints().stream().anyMatch(e -> e.address().getPort() == 18004)) {
                refuseNext.set(false);
                throw new IllegalStateException("port 18999 is taken");
            }
            applied.add(c);
        }, new SimpleMeterRegistry())) {
            client.start();
            // Clusters and listeners come in separate responses: wait for both to know the ledger.
            var config = next(applied, c -> c.clusters().containsKey("outbound|80||ledger.shop.svc.cluster.local") && !c.listeners().isEmpty()
                    && c.listeners().get(0).http().orElseThrow().virtualHosts().stream().anyMatch(v -> v.name().startsWith("ledger.")));
            // A service that appears after the proxy connected: its cluster and its endpoints both arrive.
            given().auth().oauth2(WORKLOAD).contentType("application/json").body("""
                    {"service":"shop/audit","instance":"audit-1","address":"127.0.0.1","port":18100,"protocol":"grpc"}
                    """).post("/api/v1/workloads").then().statusCode(201);
            next(applied, c -> c.clusters().containsKey("outbound|80||audit.shop.svc.cluster.local")
                    && c.clusters().get("outbound|80||audit.shop.svc.cluster.local").endpoints().size() == 1);
            given().auth().oauth2(WORKLOAD).delete("/api/v1/workloads/audit-1");
            var vhost = config.listeners().get(0).http().orElseThrow().virtualHosts().stream()
                    .filter(v -> v.domains().contains("ledger")).findFirst();
            assertTrue(vhost.isPresent(), "the caller's own namespace lets it call 'ledger' by its short name");

            refuseNext.set(true);
            register("ledger-4", 18004);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (System.nanoTime() < deadline && refuseNext.get()) {
                Thread.sleep(50);
            }
            Thread.sleep(500);
            given().get("/api/v1/xds/status").then().statusCode(200)
                    .body("find { it.id == 'sc-1' }.lastNack.reason", containsString("port 18999 is taken"));
        } finally {
            for (String i : new String[] {"ledger-3", "ledger-4"}) {
                given().auth().oauth2(WORKLOAD).delete("/api/v1/workloads/" + i);
            }
        }
    }
}
