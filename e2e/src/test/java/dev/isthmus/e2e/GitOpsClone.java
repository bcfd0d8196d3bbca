package dev.isthmus.e2e;

import dev.isthmus.cli.local.Topology;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.TimeUnit;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * A clone of the local federation's policy repository, worked on with the git CLI as an operator
 * would: write a file, commit, push, then send the signed push event (GitHub's
 * {@code X-Hub-Signature-256}) to one region's controller.
 */
final class GitOpsClone {

    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();

    final Path dir;
    private final Topology topology;

    private GitOpsClone(Path dir, Topology topology) {
        this.dir = dir;
        this.topology = topology;
    }

    /** Clones the policy repository of {@code topology} into a new directory under e2e/target. */
    static GitOpsClone of(Topology topology) throws Exception {
        Path dir = Files.createTempDirectory(LocalFederationExtension.home().resolve("e2e/target"), "policy-clone-");
        run(null, "clone", "-q", topology.policyRepo().toString(), dir.toString());
        return new GitOpsClone(dir, topology);
    }

    String git(String... args) throws Exception {
        return run(dir, args);
    }

    private static String run(Path dir, String... args) throws Exception {
        var command = new ArrayList<>(List.of("git", "-c", "user.name=e2e", "-c", "user.email=e2e@example.com"));
        command.addAll(List.of(args));
        var p = new ProcessBuilder(command).directory(dir == null ? null : dir.toFile()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IllegalStateException("git " + String.join(" ", args) + ": " + out);
        }
        return out;
    }

    /** Writes {@code file}, commits everything, pushes, and sends the signed push event to {@code region}'s controller; returns the SHA. */
    String commitAndPush(String file, String text, String message, String region) throws Exception {
        Files.writeString(dir.resolve(file), text);
        git("add", "-A");
        git("commit", "-q", "-m", message);
        git("push", "-q", "origin", "main");
        String sha = git("rev-parse", "HEAD");
        String body = "{\"ref\":\"refs/heads/main\",\"after\":\"" + sha + "\"}";
        String secret = Files.readString(topology.policyWebhookSecretFile()).strip();
        var mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(secret.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
        String signature = "sha256=" + HexFormat.of().formatHex(mac.doFinal(body.getBytes(StandardCharsets.UTF_8)));
        var res = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + topology.controllerPort(region) + "/api/v1/policy/webhook"))
                .header("X-Hub-Signature-256", signature).header("content-type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
        if (res.statusCode() != 202) {
            throw new IllegalStateException("the webhook answered " + res.statusCode() + ": " + res.body());
        }
        return sha;
    }

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
}
