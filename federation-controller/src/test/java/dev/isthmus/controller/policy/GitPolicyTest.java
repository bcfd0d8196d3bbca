package dev.isthmus.controller.policy;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * The GitOps pipeline against a real Git repository made with the git CLI: the first commit applied,
 * a bad commit refused with its errors (file:line: field) while the policy in force stays, the push
 * webhook authenticated by HMAC-SHA256 (the poll is an hour, so only the webhook brings commits in),
 * and Git unreachable (the last good stays, the status says so).
 */
@QuarkusTest
@TestProfile(GitPolicyTest.Repo.class)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class GitPolicyTest {

    static final String SECRET = "webhook-secret-for-tests-0123456789";
    static final Path REPO = Path.of("target/policy-repo").toAbsolutePath();
    static final Path MOVED = Path.of("target/policy-repo-away").toAbsolutePath();

    public static class Repo implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            try {
                for (Path p : List.of(REPO, MOVED, Path.of("target/test-state-policy"))) {
                    delete(p);
                }
                Files.createDirectories(REPO);
                git("init", "-q", "-b", "main");
                write("shop/product-catalog.yaml", canary(90, 10));
                commit("a 90/10 canary");
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
            return Map.of("isthmus.policy.git.url", REPO.toString(), "isthmus.policy.git.poll-interval", "1h", "isthmus.policy.webhook-secret", SECRET,
                    "isthmus.state-dir", "target/test-state-policy");
        }
    }

    static void delete(Path dir) throws IOException {
        if (Files.exists(dir)) {
            try (var walk = Files.walk(dir)) {
                for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                    Files.delete(p);
                }
            }
        }
    }

    static String canary(int v1, int v2) {
        return """
                apiVersion: isthmus.dev/v1alpha1
                kind: TrafficPolicy
                metadata:
                  name: canary
                  namespace: shop
                spec:
                  service: product-catalog
                  routes:
                  - destinations:
                    - subset: v1
                      weight: %d
                    - subset: v2
                      weight: %d
                """.formatted(v1, v2);
    }

    static String git(String... args) throws Exception {
        var command = new java.util.ArrayList<>(List.of("git", "-C", REPO.toString(), "-c", "user.name=test", "-c", "user.email=test@example.com"));
        command.addAll(List.of(args));
        var p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IllegalStateException("git " + String.join(" ", args) + ": " + out);
        }
        return out;
    }

    static void write(String file, String text) throws IOException {
        Path p = REPO.resolve(file);
        Files.createDirectories(p.getParent());
        Files.writeString(p, text);
    }

    static String commit(String message) throws Exception {
        git("add", "-A");
        git("commit", "-q", "-m", message);
        return git("rev-parse", "HEAD");
    }

    static String sign(String body) throws Exception {
        var mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(SECRET.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
        return "sha256=" + HexFormat.of().formatHex(mac.doFinal(body.getBytes(StandardCharsets.UTF_8)));
    }

    static void push() throws Exception {
        String body = "{\"ref\":\"refs/heads/main\"}";
        given().header("X-Hub-Signature-256", sign(body)).contentType("application/json").body(body).post("/api/v1/policy/webhook").then().statusCode(202);
    }

    static String await(String path, java.util.function.Predicate<io.restassured.path.json.JsonPath> until) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (true) {
            var body = given().get("/api/v1/policy/status").then().statusCode(200).extract().body();
            if (until.test(body.jsonPath())) {
                return body.asString();
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("not within 10 s: " + body.asString());
            }
            Thread.sleep(100);
        }
    }

    @Test
    @Order(1)
    void theHeadCommitIsAppliedAtStart() throws Exception {
        String head = git("rev-parse", "HEAD");
        await("sha", j -> head.equals(j.getString("sha")));
        given().get("/api/v1/policy/status").then().body("resources.TrafficPolicy", equalTo(1)).body("git.reachable", equalTo(true))
                .body("git.headSha", equalTo(head)).body("clusters[0].sha", equalTo(head));
    }

    @Test
    @Order(2)
    void theWebhookRefusesUnsignedOrWronglySignedCalls() throws Exception {
        String body = "{\"ref\":\"refs/heads/main\"}";
        given().contentType("application/json").body(body).post("/api/v1/policy/webhook").then().statusCode(401)
                .body("detail", containsString("X-Hub-Signature-256"));
        given().header("X-Hub-Signature-256", sign(body + " ")).contentType("application/json").body(body).post("/api/v1/policy/webhook").then()
                .statusCode(403);
        given().header("X-Hub-Signature-256", "sha256=zz").contentType("application/json").body(body).post("/api/v1/policy/webhook").then()
                .statusCode(401).body("detail", containsString("hexadecimal"));
    }

    @Test
    @Order(3)
    void aBadCommitIsRefusedWithItsErrorsAndTheGoodPolicyStays() throws Exception {
        String good = git("rev-parse", "HEAD");
        write("shop/product-catalog.yaml", canary(95, 10));
        String bad = commit("weights add up to 105");
        push();
        String status = await("lastRejection", j -> bad.equals(j.getString("lastRejection.sha")));
        assertTrue(status.contains("shop/product-catalog.yaml:9: spec.routes[0].destinations: weights must sum to 100, they sum to 105"), status);
        given().get("/api/v1/policy/status").then().body("sha", equalTo(good));

        write("shop/product-catalog.yaml", canary(80, 20));
        String fixed = commit("an 80/20 canary");
        push();
        await("sha", j -> fixed.equals(j.getString("sha")));
    }

    @Test
    @Order(4)
    void theBranchHeadWinsEvenWhenItsCommitterClockRunsBehindItsParent() throws Exception {
        // The parent's committer time is now; its child's an hour earlier (a committer with a slow
        // clock). Ordered by commit time, the child (the branch head) would never be applied.
        write("shop/product-catalog.yaml", canary(70, 30));
        git("add", "-A");
        String earlier = java.time.Instant.now().minusSeconds(3600).getEpochSecond() + " +0000";
        var command = new java.util.ArrayList<>(List.of("git", "-C", REPO.toString(), "-c", "user.name=test", "-c", "user.email=test@example.com",
                "commit", "-q", "-m", "a 70/30 canary, from a slow clock"));
        var pb = new ProcessBuilder(command).redirectErrorStream(true);
        pb.environment().put("GIT_COMMITTER_DATE", earlier);
        pb.environment().put("GIT_AUTHOR_DATE", earlier);
        var p = pb.start();
        p.getInputStream().readAllBytes();
        assertEquals(0, p.waitFor());
        String head = git("rev-parse", "HEAD");
        push();
        await("sha", j -> head.equals(j.getString("sha")));
    }

    @Test
    @Order(5)
    void gitUnreachableKeepsTheLastGoodPolicyAndSaysSo() throws Exception {
        String good = git("rev-parse", "HEAD");
        Files.move(REPO, MOVED);
        try {
            push();
            String status = await("git.reachable", j -> !j.getBoolean("git.reachable"));
            assertTrue(status.contains("\"unreachableSince\""), status);
            given().get("/api/v1/policy/status").then().body("sha", equalTo(good));
        } finally {
            Files.move(MOVED, REPO);
        }
        push();
        await("git.reachable", j -> j.getBoolean("git.reachable"));
        assertEquals(good, given().get("/api/v1/policy/status").then().extract().jsonPath().getString("sha"));
    }
}
