package dev.isthmus.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.cli.local.PolicyClone;
import java.net.http.HttpClient;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Global traffic policy from Git, end to end: the local federation's policy repository (a real bare
 * repository; this test works in a clone with the git CLI and pushes), the push webhook, both regions'
 * controllers, and every sidecar configured over xDS. A canary split commit is run by all sidecars
 * within 2 s and the observed split of 2,000 shop calls matches it; a bad commit is refused with
 * file:line: field errors and traffic keeps its split; with Git unreachable the last good policy stays.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class PolicyIT {

    @RegisterExtension
    static final LocalFederationExtension FED = new LocalFederationExtension(30000, "us-east", "eu-west");
    static final List<String> REGIONS = List.of("us-east", "eu-west");
    static final ObjectMapper JSON = new ObjectMapper();
    static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
    static Path work;

    static PolicyClone clone;

    /** The catalogue's canary TrafficPolicy with these weights. */
    static String canary(int v1, int v2) {
        return """
                # A canary of product-catalog v2
                apiVersion: isthmus.dev/v1alpha1
                kind: TrafficPolicy
                metadata:
                  name: product-catalog-canary
                  namespace: shop
                spec:
                  service: product-catalog
                  routes:
                  - name: default
                    destinations:
                    - subset: v1
                      weight: %d
                    - subset: v2
                      weight: %d
                    timeout: 2s
                    retries: { attempts: 2, on: [connect-failure, reset] }
                """.formatted(v1, v2);
    }

    /** Commits the catalogue's policy file in the clone, pushes, and sends the signed push event to us-east's controller; returns the SHA. */
    static String commitAndPush(String text, String message) throws Exception {
        return commitAndPush("shop/product-catalog.yaml", text, message);
    }

    /** Writes {@code file} in the clone, commits, pushes and sends the signed push event; returns the SHA. */
    static String commitAndPush(String file, String text, String message) throws Exception {
        String sha = clone.commitAndPush(file, text, message);
        clone.notify("us-east", sha);
        return sha;
    }

    static String controller(String region) {
        return "http://127.0.0.1:" + FED.topology().controllerPort(region);
    }

    static JsonNode get(String url) throws Exception {
        return JSON.readTree(Http.get(url).body());
    }

    /** Every controller runs {@code sha}, and every sidecar connected to it acknowledged what it is served. */
    static boolean everywhere(String sha) throws Exception {
        for (String region : REGIONS) {
            if (!get(controller(region) + "/api/v1/policy/status").path("sha").asText().equals(sha)) {
                return false;
            }
            int sidecars = 0;
            for (JsonNode proxy : get(controller(region) + "/api/v1/xds/status")) {
                if (proxy.path("type").asText().equals("sidecar")) {
                    sidecars++;
                    if (!proxy.path("inSync").asBoolean()) {
                        return false;
                    }
                }
            }
            if (sidecars < 4) {
                return false;
            }
        }
        return true;
    }

    /** Calls checkout {@code perRegion} times in each region; returns how many were served by a v2 catalogue. */
    static int[] split(int perRegion) throws Exception {
        int v2 = 0;
        int total = 0;
        for (String region : REGIONS) {
            String url = "http://127.0.0.1:" + FED.topology().appPort(region, "order-processing") + "/orders/checkout";
            for (int i = 0; i < perRegion; i++) {
                String body = Http.get(url).body();
                assertTrue(body.contains("\"upstreamStatus\":200"), body);
                total++;
                if (body.contains("\"instance\":\"product-catalog-v2-")) {
                    v2++;
                }
            }
        }
        return new int[] {v2, total};
    }

    @Test
    @Order(1)
    void theSeededExamplePolicyRunsEverywhere() throws Exception {
        clone = PolicyClone.of(FED.topology(), Files.createTempDirectory(LocalFederationExtension.home().resolve("e2e/target"), "policy-clone-"));
        work = clone.dir();
        String seeded = clone.git("rev-parse", "HEAD");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!everywhere(seeded)) {
            assertTrue(System.nanoTime() < deadline, "the example policy did not reach every controller and sidecar: "
                    + get(controller("eu-west") + "/api/v1/policy/status"));
            Thread.sleep(200);
        }
        var status = get(controller("us-east") + "/api/v1/policy/status");
        assertTrue(status.path("converged").asBoolean(), status.toString());
        for (String region : REGIONS) {
            // every catalogue instance registered healthy (its inbound listeners from xDS run) before traffic is measured:
            // v1 and v2 in two regions, each with its HTTP and its gRPC port
            Http.await(controller(region) + "/api/v1/services/shop/product-catalog", Duration.ofSeconds(30),
                    b -> b.split("\"healthy\":true").length - 1 == 8);
        }
    }

    @Test
    @Order(2)
    void aCanaryCommitRunsInEverySidecarWithinTwoSecondsAndSplitsTraffic() throws Exception {
        String none = commitAndPush(canary(100, 0), "no canary");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!everywhere(none)) {
            assertTrue(System.nanoTime() < deadline, "100/0 did not arrive");
            Thread.sleep(100);
        }
        assertEquals(0, split(100)[0], "no v2 while its weight is 0");

        long pushed = System.nanoTime();
        String canary = commitAndPush(canary(90, 10), "a 90/10 canary of product-catalog v2");
        while (!everywhere(canary)) {
            assertTrue(System.nanoTime() - pushed < TimeUnit.SECONDS.toNanos(20), "the canary did not arrive everywhere");
            Thread.sleep(20);
        }
        double seconds = (System.nanoTime() - pushed) / 1e9;
        System.out.printf("policy e2e: commit pushed to every sidecar of both regions in %.2f s%n", seconds);
        assertTrue(seconds <= 2.0, "every sidecar in every region ran the canary " + seconds + " s after the push (target 2 s)");

        int[] observed = split(1000);
        double share = 100.0 * observed[0] / observed[1];
        System.out.printf("policy e2e: %d of %d checkouts served by v2 (%.1f%%)%n", observed[0], observed[1], share);
        assertTrue(share >= 7 && share <= 13, "observed v2 share " + share + "% of " + observed[1] + ", committed 10% (± 3)");
    }

    @Test
    @Order(3)
    void aBadCommitIsRefusedWithItsErrorsAndTrafficKeepsItsSplit() throws Exception {
        String good = get(controller("us-east") + "/api/v1/policy/status").path("sha").asText();
        String bad = commitAndPush(canary(90, 20), "weights add up to 110");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        JsonNode status;
        do {
            assertTrue(System.nanoTime() < deadline, "the bad commit was not reported");
            Thread.sleep(100);
            status = get(controller("us-east") + "/api/v1/policy/status");
        } while (!status.path("lastRejection").path("sha").asText().equals(bad));
        assertTrue(status.path("lastRejection").path("errors").toString()
                .contains("shop/product-catalog.yaml:11: spec.routes[0].destinations: weights must sum to 100, they sum to 110"), status.toString());
        for (String region : REGIONS) {
            assertEquals(good, get(controller(region) + "/api/v1/policy/status").path("sha").asText(), region + " keeps the good policy");
        }
        int[] observed = split(150);
        assertTrue(observed[0] > 0 && observed[0] < observed[1] / 3, "still the 90/10 split: " + observed[0] + " of " + observed[1]);
    }

    @Test
    @Order(4)
    void withGitUnreachableTheLastGoodPolicyStays() throws Exception {
        String good = get(controller("us-east") + "/api/v1/policy/status").path("sha").asText();
        Path repo = FED.topology().policyRepo();
        Path away = repo.resolveSibling("policy.git.away");
        Files.move(repo, away);
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            JsonNode status;
            do {
                assertTrue(System.nanoTime() < deadline, "Git unreachable was not reported");
                Thread.sleep(200);
                status = get(controller("eu-west") + "/api/v1/policy/status");
            } while (status.path("git").path("reachable").asBoolean());
            assertEquals(good, status.path("sha").asText());
            assertTrue(status.path("git").has("unreachableSince"), status.toString());
            split(50); // every call still answered 200 through the sidecars
        } finally {
            Files.move(away, repo);
        }
    }

    @Test
    @Order(5)
    void theExampleAuthorizationPolicyLetsOnlyOrderProcessingReadTheCatalogue() throws Exception {
        // user-login's sidecar used as an HTTP proxy to the catalogue: its mTLS identity is not one the policy allows
        int userLoginOutbound = FED.topology().sidecarOutboundPort("eu-west", "user-login");
        try (var s = new java.net.Socket("127.0.0.1", userLoginOutbound)) {
            s.setSoTimeout(10_000);
            s.getOutputStream().write(("GET http://product-catalog.shop/products HTTP/1.1\r\nHost: product-catalog.shop\r\nConnection: close\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
            String answer = new String(s.getInputStream().readAllBytes(), StandardCharsets.US_ASCII);
            assertTrue(answer.startsWith("HTTP/1.1 403") && answer.toLowerCase(java.util.Locale.ROOT).contains("x-isthmus-reason: rbac_denied"), answer);
        }
        String body = Http.get("http://127.0.0.1:" + FED.topology().appPort("eu-west", "order-processing") + "/orders/checkout").body();
        assertTrue(body.contains("\"upstreamStatus\":200"), "order-processing may: " + body);
    }

    /** A plaintext GET of /healthz straight to order-processing's inbound (mTLS) port in eu-west: the answer, or what came instead. */
    static String plaintextToOrderProcessingsInbound() throws Exception {
        try (var s = new java.net.Socket("127.0.0.1", FED.topology().sidecarInboundPort("eu-west", "order-processing"))) {
            s.setSoTimeout(10_000);
            s.getOutputStream().write("GET /healthz HTTP/1.1\r\nHost: order-processing\r\nConnection: close\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            return new String(s.getInputStream().readAllBytes(), StandardCharsets.ISO_8859_1);
        } catch (java.io.IOException closed) {
            return "closed: " + closed;
        }
    }

    @Test
    @Order(6)
    void meshPolicyPermissiveLetsPlaintextCallersInAndStrictShutsThemOut() throws Exception {
        String mesh = Files.readString(work.resolve("mesh.yaml"));
        assertTrue(mesh.contains("mtls: STRICT"), mesh);
        assertFalse(plaintextToOrderProcessingsInbound().startsWith("HTTP/1.1"), "STRICT: a plaintext caller gets no answer");

        // the clone still holds the refused 90/20 of the bad-commit test: put the good canary back in the same commit
        Files.writeString(work.resolve("shop/product-catalog.yaml"), canary(90, 10));
        String permissive = commitAndPush("mesh.yaml", mesh.replace("mtls: STRICT", "mtls: PERMISSIVE"), "mTLS PERMISSIVE while a client migrates");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!everywhere(permissive)) {
            assertTrue(System.nanoTime() < deadline, "PERMISSIVE did not arrive everywhere");
            Thread.sleep(50);
        }
        // the policy status and the proxies' xDS acknowledgements are reported apart: the sidecar's new
        // listener may follow the status by a moment (the rebuild runs after the bundle is applied)
        String answer = plaintextToOrderProcessingsInbound();
        for (long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5); !answer.startsWith("HTTP/1.1 200") && System.nanoTime() < until; ) {
            Thread.sleep(100);
            answer = plaintextToOrderProcessingsInbound();
        }
        assertTrue(answer.startsWith("HTTP/1.1 200"), answer);
        // the shop's own calls keep their mTLS identities: the catalogue still serves order-processing only
        String body = Http.get("http://127.0.0.1:" + FED.topology().appPort("eu-west", "order-processing") + "/orders/checkout").body();
        assertTrue(body.contains("\"upstreamStatus\":200"), body);

        String strict = commitAndPush("mesh.yaml", mesh, "back to mTLS STRICT");
        deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!everywhere(strict)) {
            assertTrue(System.nanoTime() < deadline, "STRICT did not arrive everywhere");
            Thread.sleep(50);
        }
        answer = plaintextToOrderProcessingsInbound();
        for (long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5); answer.startsWith("HTTP/1.1") && System.nanoTime() < until; ) {
            Thread.sleep(100);
            answer = plaintextToOrderProcessingsInbound();
        }
        assertFalse(answer.startsWith("HTTP/1.1"), "STRICT again: " + answer);
    }
}
