package dev.isthmus.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.isthmus.cli.local.ControllerClient;
import io.nats.client.Nats;
import io.nats.client.Options;
import io.nats.client.impl.Headers;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPairGenerator;
import java.security.Signature;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.Predicate;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Three regions start unfederated and are joined through the REST API; then the federation is put
 * through forged and replayed messages, a killed controller, a restarted NATS server, a leave and an
 * eviction. Every process is real: nats-server per region, gateway-linked, and the packaged apps.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class FederationJoinIT {

    static final List<String> REGIONS = List.of("us-east", "eu-west", "ap-south");

    @RegisterExtension
    static final LocalFederationExtension FED = new LocalFederationExtension(27000, "us-east", "eu-west", "ap-south").unfederated();

    static String usedToken;

    static ControllerClient api(String region) throws Exception {
        return FED.federation().controller(region);
    }

    /** name → state, from one controller's GET /api/v1/clusters. */
    static Map<String, String> states(String region) throws Exception {
        var out = new TreeMap<String, String>();
        for (JsonNode c : api(region).get("/api/v1/clusters")) {
            out.put(c.path("name").asText(), c.path("state").asText());
        }
        return out;
    }

    /** The catalog as "service cluster instance locality" lines, without the viewer-relative state. */
    static TreeSet<String> catalog(String region) throws Exception {
        var out = new TreeSet<String>();
        for (JsonNode s : api(region).get("/api/v1/services")) {
            s.path("clusters").fields().forEachRemaining(e -> {
                for (JsonNode ep : e.getValue()) {
                    JsonNode endpoint = ep.path("endpoint");
                    out.add(s.path("service").asText() + " " + e.getKey() + " " + endpoint.path("instance").asText() + " "
                            + endpoint.path("region").asText() + "/" + endpoint.path("zone").asText());
                }
            });
        }
        return out;
    }

    static String token(String issuer, String body) throws Exception {
        return api(issuer).post("/api/v1/join-tokens", body).path("token").asText();
    }

    static JsonNode join(String region, String token) throws Exception {
        return api(region).post("/api/v1/federation/join", "{\"token\":" + ControllerClient.quote(token) + "}");
    }

    static ControllerClient.ApiException refused(ThrowingCall call) {
        return assertThrows(ControllerClient.ApiException.class, call::run);
    }

    interface ThrowingCall {
        void run() throws Exception;
    }

    static void await(String what, Duration timeout, Check check) throws Exception {
        Instant deadline = Instant.now().plus(timeout);
        String last = "";
        while (true) {
            try {
                if (check.holds()) {
                    return;
                }
                last = "condition false";
            } catch (Exception e) {
                last = e.toString();
            }
            if (Instant.now().isAfter(deadline)) {
                throw new AssertionError(what + " did not happen within " + timeout.toMillis() + " ms (" + last + "); states: "
                        + statesOfAll());
            }
            Thread.sleep(50);
        }
    }

    interface Check {
        boolean holds() throws Exception;
    }

    static String statesOfAll() {
        var sb = new StringBuilder();
        for (String r : REGIONS) {
            try {
                sb.append(r).append("=").append(states(r)).append(' ');
            } catch (Exception e) {
                sb.append(r).append("=").append(e.getMessage()).append(' ');
            }
        }
        return sb.toString();
    }

    /** Every controller lists every other region in {@code state} and all hold the same catalog. */
    static boolean converged(List<String> regions, String state) throws Exception {
        TreeSet<String> first = null;
        for (String r : regions) {
            var s = states(r);
            for (String other : regions) {
                if (!other.equals(r) && !state.equals(s.get(other))) {
                    return false;
                }
            }
            var c = catalog(r);
            if (first == null) {
                first = c;
            } else if (!first.equals(c)) {
                return false;
            }
        }
        return true;
    }

    static double metric(String region, String name, Predicate<String> labels) throws Exception {
        String text = Http.get("http://127.0.0.1:" + FED.topology().controllerPort(region) + "/q/metrics").body();
        double sum = 0;
        for (String line : text.split("\n")) {
            if ((line.startsWith(name + "{") || line.startsWith(name + " ")) && labels.test(line)) {
                sum += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        return sum;
    }

    @Test
    @Order(1)
    void everyRegionStartsUnfederatedWithOnlyItsOwnServices() throws Exception {
        for (String r : REGIONS) {
            assertEquals("Unfederated", api(r).get("/api/v1/federation").path("state").asText(), r);
            assertEquals(Map.of(r, "Local"), states(r));
            assertTrue(catalog(r).stream().allMatch(l -> l.split(" ")[1].equals(r)), r + " " + catalog(r));
        }
    }

    @Test
    @Order(2)
    void badJoinRequestsGetAProblemThatSaysWhatIsWrong() throws Exception {
        var anonymous = new ControllerClient(URI.create("http://127.0.0.1:" + FED.topology().controllerPort("us-east")), null);
        var e = refused(() -> anonymous.post("/api/v1/join-tokens", "{}"));
        assertEquals(401, e.status());
        assertTrue(e.getMessage().contains("admin credential"), e.getMessage());

        e = refused(() -> join("eu-west", "isthmus-join-v1.bm9wZQ"));
        assertEquals(400, e.status());
        assertEquals("malformed-token", e.type());

        String forEuWest = token("us-east", "{\"cluster\":\"eu-west\"}");
        e = refused(() -> join("ap-south", forEuWest));
        assertEquals(403, e.status());
        assertTrue(e.getMessage().contains("made for cluster 'eu-west'"), e.getMessage());

        // An altered payload (a longer expiry) keeps the old signature: the issuer refuses it.
        String[] parts = forEuWest.split("\\.");
        String payload = new String(Base64.getUrlDecoder().decode(parts[1]), StandardCharsets.UTF_8);
        String altered = payload.replaceFirst("\"expiresAt\":\\d+", "\"expiresAt\":" + (Instant.now().getEpochSecond() + 86_400));
        String forged = parts[0] + "." + Base64.getUrlEncoder().withoutPadding().encodeToString(altered.getBytes(StandardCharsets.UTF_8))
                + "." + parts[2];
        e = refused(() -> join("eu-west", forged));
        assertEquals(403, e.status());
        assertEquals("foreign-token", e.type());

        String shortLived = token("us-east", "{\"ttl\":\"1s\"}");
        Thread.sleep(1_500);
        e = refused(() -> join("eu-west", shortLived));
        assertEquals(410, e.status());
        assertEquals("expired-token", e.type());

        assertEquals("Unfederated", api("eu-west").get("/api/v1/federation").path("state").asText(), "nothing was changed");
        assertEquals("Active", api("us-east").get("/api/v1/federation").path("state").asText(), "the first token founded the federation");
    }

    @Test
    @Order(3)
    void aTokenFromUsEastLetsEuWestThenApSouthJoinAndEveryoneConvergesWithinTwoSeconds() throws Exception {
        join("eu-west", token("us-east", "{\"cluster\":\"eu-west\"}"));
        usedToken = token("us-east", "{}");
        JsonNode view = join("ap-south", usedToken);
        long joined = System.nanoTime();
        assertEquals("acme", view.path("federation").asText());
        await("all three Active with one catalog", Duration.ofSeconds(2), () -> converged(REGIONS, "Active"));
        System.out.printf("[e2e] federation converged %d ms after the last join%n", (System.nanoTime() - joined) / 1_000_000);
        var c = catalog("us-east");
        assertTrue(c.contains("shop/product-catalog ap-south product-catalog-ap-south-1 ap-south/zone-a"), c.toString());
        assertTrue(c.contains("shop/product-catalog eu-west product-catalog-eu-west-1 eu-west/zone-a"), c.toString());
        for (String r : REGIONS) {
            assertEquals("Active", api(r).get("/api/v1/federation").path("state").asText(), r);
        }
    }

    @Test
    @Order(4)
    void aUsedTokenAndATakenNameAreRefused() throws Exception {
        var e = refused(() -> join("ap-south", usedToken));
        assertEquals(409, e.status());
        assertEquals("already-member", e.type());

        // A second cluster that calls itself eu-west, with its own controller on ap-south's NATS.
        Path state = Files.createTempDirectory(LocalFederationExtension.home().resolve("e2e/target"), "impostor-");
        int port = FED.topology().port("ap-south", 90);
        var pb = new ProcessBuilder(LocalFederationExtension.javaCommand(), "-Xmx128m", "-XX:TieredStopAtLevel=1",
                "-Dlocal-federation.state=" + FED.topology().stateDir(), "-jar",
                LocalFederationExtension.home().resolve("federation-controller/target/quarkus-app/quarkus-run.jar").toString());
        pb.environment().putAll(Map.of("QUARKUS_HTTP_PORT", Integer.toString(port), "QUARKUS_HTTP_HOST", "127.0.0.1",
                "ISTHMUS_CLUSTER_NAME", "eu-west", "ISTHMUS_NATS_URL", "nats://127.0.0.1:" + FED.topology().natsClientPort("ap-south"),
                "ISTHMUS_STATE_DIR", state.toString(), "ISTHMUS_ADMIN_TOKEN", "impostor-admin-credential-0123"));
        pb.redirectErrorStream(true).redirectOutput(state.resolve("process.log").toFile());
        Process impostor = pb.start();
        try {
            var client = new ControllerClient(URI.create("http://127.0.0.1:" + port), "impostor-admin-credential-0123");
            String t = token("us-east", "{}");
            await("the impostor controller answers", Duration.ofSeconds(60), () -> client.get("/q/health/ready") != null);
            e = refused(() -> client.post("/api/v1/federation/join", "{\"token\":" + ControllerClient.quote(t) + "}"));
            assertEquals(409, e.status());
            assertEquals("duplicate-cluster", e.type());
            assertTrue(e.getMessage().contains("'eu-west' is already a member"), e.getMessage());
            // The refused join did not spend the token: asked again, the answer is still the name, not reuse.
            e = refused(() -> client.post("/api/v1/federation/join", "{\"token\":" + ControllerClient.quote(t) + "}"));
            assertEquals("duplicate-cluster", e.type());
        } finally {
            impostor.destroyForcibly().waitFor();
        }
        assertTrue(converged(REGIONS, "Active"), "the federation is unchanged: " + statesOfAll());
    }

    @Test
    @Order(5)
    void aServiceRegisteredInEuWestShowsEverywhereWithItsLocalityAndLeavesWhenItStops() throws Exception {
        String credential = Files.readString(FED.topology().workloadTokenFile("eu-west")).strip();
        String body = """
                {"service":"shop/reviews","instance":"reviews-eu-west-1","address":"127.0.0.1","port":15006,"protocol":"http"}""";
        var http = java.net.http.HttpClient.newBuilder().version(java.net.http.HttpClient.Version.HTTP_1_1).build();
        var register = java.net.http.HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + FED.topology().controllerPort("eu-west")
                + "/api/v1/workloads")).header("authorization", "Bearer " + credential).header("content-type", "application/json")
                .POST(java.net.http.HttpRequest.BodyPublishers.ofString(body)).build();
        assertEquals(201, http.send(register, java.net.http.HttpResponse.BodyHandlers.ofString()).statusCode());
        String line = "shop/reviews eu-west reviews-eu-west-1 eu-west/zone-a";
        await("reviews in every catalog", Duration.ofSeconds(2), () -> catalog("us-east").contains(line) && catalog("ap-south").contains(line));
        var deregister = java.net.http.HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + FED.topology().controllerPort("eu-west")
                + "/api/v1/workloads/reviews-eu-west-1")).header("authorization", "Bearer " + credential).DELETE().build();
        assertEquals(204, http.send(deregister, java.net.http.HttpResponse.BodyHandlers.ofString()).statusCode());
        await("reviews gone everywhere", Duration.ofSeconds(2), () -> !catalog("us-east").contains(line) && !catalog("ap-south").contains(line));

        // Registered once, never refreshed: the TTL (5 s in the local federation) removes it everywhere.
        assertEquals(201, http.send(register, java.net.http.HttpResponse.BodyHandlers.ofString()).statusCode());
        await("reviews back", Duration.ofSeconds(2), () -> catalog("us-east").contains(line));
        await("reviews expired everywhere", Duration.ofSeconds(9), () -> !catalog("us-east").contains(line) && !catalog("ap-south").contains(line));
    }

    @Test
    @Order(6)
    void staticFileEndpointsOfEuWestReachEveryCatalogAndABrokenFileChangesNothing() throws Exception {
        Path file = FED.topology().staticRegistryFile("eu-west");
        Files.createDirectories(file.getParent());
        Files.writeString(file, """
                endpoints:
                  - {service: shop/billing, instance: billing-vm-1, address: 10.0.0.12, port: 8443, zone: zone-b}
                  - {service: shop/billing, instance: billing-vm-2, address: 10.0.0.13, port: 8443, zone: zone-b}
                """);
        String vm1 = "shop/billing eu-west billing-vm-1 eu-west/zone-b";
        String vm2 = "shop/billing eu-west billing-vm-2 eu-west/zone-b";
        await("static endpoints everywhere", Duration.ofSeconds(4),
                () -> catalog("us-east").containsAll(List.of(vm1, vm2)) && catalog("ap-south").containsAll(List.of(vm1, vm2)));

        double errors0 = metric("eu-west", "isthmus_registry_static_file_errors_total", l -> true);
        Files.writeString(file, "endpoints:\n  - {service: shop/billing, instance: billing-vm-1, address: 10.0.0.12, port: 0}\n");
        await("the broken file counted", Duration.ofSeconds(4),
                () -> metric("eu-west", "isthmus_registry_static_file_errors_total", l -> true) > errors0);
        assertTrue(catalog("us-east").containsAll(List.of(vm1, vm2)), "the last good file's endpoints stay");

        Files.writeString(file, "endpoints:\n  - {service: shop/billing, instance: billing-vm-1, address: 10.0.0.12, port: 8443, zone: zone-b}\n");
        await("billing-vm-2 gone everywhere", Duration.ofSeconds(4),
                () -> !catalog("us-east").contains(vm2) && !catalog("ap-south").contains(vm2) && catalog("us-east").contains(vm1));
        Files.delete(file);
        await("static endpoints gone", Duration.ofSeconds(4), () -> !catalog("us-east").contains(vm1));
    }

    @Test
    @Order(7)
    void forgedAndReplayedRegistryMessagesChangeNothingAndAreCounted() throws Exception {
        var before = catalog("us-east");
        Predicate<String> registry = l -> l.contains("subject=\"registry\"");
        double unsigned0 = metric("us-east", "isthmus_federation_messages_rejected_total", registry.and(l -> l.contains("reason=\"unsigned\"")));
        double forged0 = metric("us-east", "isthmus_federation_messages_rejected_total", registry.and(l -> l.contains("reason=\"bad_signature\"")));
        Predicate<String> replayed = l -> l.contains("subject=\"registry-delta\"") && l.contains("reason=\"replay\"");
        double replay0 = metric("us-east", "isthmus_federation_messages_rejected_total", replayed);
        String subject = "isthmus.acme.registry.eu-west";
        String fake = """
                {"cluster":"eu-west","generation":99999999999999,"hash":"00","endpoints":[{"service":"shop/payments","instance":"rogue-1",
                "address":"10.6.6.6","port":443,"cluster":"eu-west","region":"eu-west","zone":"zone-a","protocol":"http","labels":{},
                "healthy":true,"identity":""}]}""";
        try (var rogue = Nats.connect(Options.builder().server("nats://127.0.0.1:" + FED.topology().natsClientPort("us-east")).build())) {
            // Record a real, signed registry change of eu-west (a delta): the static file gets an endpoint.
            var sub = rogue.subscribe("isthmus.acme.registry-delta.eu-west");
            rogue.flush(Duration.ofSeconds(2));
            Path file = FED.topology().staticRegistryFile("eu-west");
            Files.writeString(file, "endpoints:\n  - {service: shop/ledger, instance: ledger-1, address: 10.0.0.40, port: 7000}\n");
            var captured = sub.nextMessage(Duration.ofSeconds(8));
            assertNotNull(captured, "no registry delta of eu-west seen in 8 s");
            assertNotNull(captured.getHeaders().getFirst("Isthmus-Signature"), "registry messages carry a signature");
            await("ledger-1 reached us-east", Duration.ofSeconds(4), () -> catalog("us-east").stream().anyMatch(l -> l.contains("ledger-1")));
            Files.delete(file);
            await("ledger-1 gone again", Duration.ofSeconds(4), () -> catalog("us-east").equals(before));

            rogue.publish(subject, fake.getBytes(StandardCharsets.UTF_8));

            var key = KeyPairGenerator.getInstance("Ed25519").generateKeyPair();
            long seq = System.currentTimeMillis() * 1000 + 999;
            var signer = Signature.getInstance("Ed25519");
            signer.initSign(key.getPrivate());
            signer.update((subject + "\neu-west\n" + seq + "\n").getBytes(StandardCharsets.UTF_8));
            signer.update(fake.getBytes(StandardCharsets.UTF_8));
            var headers = new Headers().put("Isthmus-Sender", "eu-west").put("Isthmus-Seq", Long.toString(seq))
                    .put("Isthmus-Signature", Base64.getEncoder().encodeToString(signer.sign()));
            rogue.publish(subject, headers, fake.getBytes(StandardCharsets.UTF_8));

            rogue.publish(captured.getSubject(), captured.getHeaders(), captured.getData());
            rogue.flush(Duration.ofSeconds(2));
        }
        await("all three rejections counted", Duration.ofSeconds(3), () ->
                metric("us-east", "isthmus_federation_messages_rejected_total", registry.and(l -> l.contains("reason=\"unsigned\""))) > unsigned0
                && metric("us-east", "isthmus_federation_messages_rejected_total", registry.and(l -> l.contains("reason=\"bad_signature\""))) > forged0
                && metric("us-east", "isthmus_federation_messages_rejected_total", replayed) > replay0);
        Thread.sleep(500);
        assertEquals(before, catalog("us-east"), "a forged registry changed nothing, and the replayed delta did not bring ledger-1 back");
        assertFalse(catalog("ap-south").toString().contains("rogue-1"));
    }

    @Test
    @Order(8)
    void aKilledControllerIsUnreachableWithinFiveSecondsKeepsItsEndpointsAndServesItsLastStateOnRestart() throws Exception {
        FED.kill("ap-south/federation-controller");
        long killed = System.nanoTime();
        await("ap-south Unreachable on us-east and eu-west", Duration.ofSeconds(5),
                () -> "Unreachable".equals(states("us-east").get("ap-south")) && "Unreachable".equals(states("eu-west").get("ap-south")));
        System.out.printf("[e2e] ap-south seen Unreachable %d ms after kill -9%n", (System.nanoTime() - killed) / 1_000_000);
        JsonNode pc = api("us-east").get("/api/v1/services/shop/product-catalog");
        assertEquals("Unreachable", pc.path("clusters").path("ap-south").path(0).path("clusterState").asText(),
                "ap-south's endpoints are kept, marked Unreachable (lowest priority): " + pc);

        FED.restart("ap-south/federation-controller");
        var restored = catalog("ap-south");
        assertTrue(restored.contains("shop/product-catalog us-east product-catalog-us-east-1 us-east/zone-a"),
                "a restarted controller serves its last known state at once: " + restored);
        await("converged after restart", Duration.ofSeconds(10), () -> converged(REGIONS, "Active"));
    }

    @Test
    @Order(9)
    void aRestartedNatsServerIsRejoinedWithNoManualStep() throws Exception {
        FED.kill("eu-west/nats-server");
        await("eu-west Unreachable from us-east", Duration.ofSeconds(6), () -> "Unreachable".equals(states("us-east").get("eu-west")));
        FED.restart("eu-west/nats-server");
        await("converged after the NATS restart", Duration.ofSeconds(20), () -> converged(REGIONS, "Active"));
        assertTrue(api("eu-west").get("/api/v1/federation").path("natsConnected").asBoolean());
    }

    @Test
    @Order(10)
    void aClusterThatLeavesIsDroppedEverywhereAndTheTokenItUsedStaysSpent() throws Exception {
        api("ap-south").post("/api/v1/federation/leave", "");
        await("ap-south Left everywhere and its endpoints gone", Duration.ofSeconds(3), () ->
                "Left".equals(states("us-east").get("ap-south")) && "Left".equals(states("eu-west").get("ap-south"))
                        && catalog("us-east").stream().noneMatch(l -> l.contains(" ap-south "))
                        && catalog("eu-west").stream().noneMatch(l -> l.contains(" ap-south ")));
        assertEquals("Unfederated", api("ap-south").get("/api/v1/federation").path("state").asText());

        var e = refused(() -> join("ap-south", usedToken));
        assertEquals(409, e.status());
        assertEquals("reused-token", e.type());
        assertTrue(e.getMessage().contains("already used by cluster 'ap-south'"), e.getMessage());

        join("ap-south", token("eu-west", "{\"cluster\":\"ap-south\"}"));
        await("ap-south back, admitted by eu-west", Duration.ofSeconds(3), () -> converged(REGIONS, "Active"));
    }

    @Test
    @Order(11)
    void anEvictedClusterIsDroppedEverywhereAndBecomesUnfederated() throws Exception {
        var evicted = api("us-east").delete("/api/v1/clusters/eu-west");
        assertEquals("Left", evicted.path("state").asText());
        await("eu-west evicted", Duration.ofSeconds(3), () -> "Left".equals(states("ap-south").get("eu-west"))
                && "Unfederated".equals(api("eu-west").get("/api/v1/federation").path("state").asText())
                && catalog("ap-south").stream().noneMatch(l -> l.contains(" eu-west ")));
        var e = refused(() -> api("us-east").delete("/api/v1/clusters/eu-west"));
        assertEquals(409, e.status());
        await("eu-west's trust roots withdrawn", Duration.ofSeconds(3),
                () -> !api("us-east").get("/api/v1/trust/federated-bundles").has("eu-west.acme.isthmus")
                        && api("us-east").get("/api/v1/trust/federated-bundles").has("ap-south.acme.isthmus"));
    }
}
