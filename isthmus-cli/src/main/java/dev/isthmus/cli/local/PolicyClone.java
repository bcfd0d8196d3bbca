package dev.isthmus.cli.local;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.TimeUnit;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * A working clone of the local federation's policy repository, used with the git CLI as an operator
 * would: write a file, commit and push ({@link #commitAndPush}), then, to apply it at once, send the
 * signed push event (GitHub's {@code X-Hub-Signature-256}) to one region's controller
 * ({@link #notify}). Used by the e2e tests and {@code bench/run policy-propagation}.
 */
public final class PolicyClone {

    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();

    private final Path dir;
    private final Topology topology;

    private PolicyClone(Path dir, Topology topology) {
        this.dir = dir;
        this.topology = topology;
    }

    /** Clones the policy repository of {@code topology} into {@code dir} (which must not exist or be empty). */
    public static PolicyClone of(Topology topology, Path dir) throws IOException, InterruptedException {
        run(null, "clone", "-q", topology.policyRepo().toString(), dir.toString());
        return new PolicyClone(dir, topology);
    }

    public Path dir() {
        return dir;
    }

    /** Runs {@code git args} in the clone; returns its output. */
    public String git(String... args) throws IOException, InterruptedException {
        return run(dir, args);
    }

    private static String run(Path dir, String... args) throws IOException, InterruptedException {
        var command = new ArrayList<>(List.of("git", "-c", "user.name=isthmus", "-c", "user.email=isthmus@localhost"));
        command.addAll(List.of(args));
        var p = new ProcessBuilder(command).directory(dir == null ? null : dir.toFile()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IOException("git " + String.join(" ", args) + ": " + out);
        }
        return out;
    }

    /** Writes {@code file} (relative to the clone), commits everything and pushes to {@code main}; returns the new SHA. */
    public String commitAndPush(String file, String text, String message) throws IOException, InterruptedException {
        Files.writeString(dir.resolve(file), text);
        git("add", "-A");
        git("commit", "-q", "-m", message);
        git("push", "-q", "origin", "HEAD:main");
        return git("rev-parse", "HEAD");
    }

    /** Sends the signed push event for {@code sha} to {@code region}'s controller, which fetches at once. */
    public void notify(String region, String sha) throws IOException, InterruptedException {
        String body = "{\"ref\":\"refs/heads/main\",\"after\":\"" + sha + "\"}";
        String secret = Files.readString(topology.policyWebhookSecretFile()).strip();
        String signature;
        try {
            var mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(secret.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
            signature = "sha256=" + HexFormat.of().formatHex(mac.doFinal(body.getBytes(StandardCharsets.UTF_8)));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
        var res = HTTP.send(HttpRequest.newBuilder(URI.create("http://" + Topology.HOST + ":" + topology.controllerPort(region)
                + "/api/v1/policy/webhook")).header("X-Hub-Signature-256", signature).header("content-type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
        if (res.statusCode() != 202) {
            throw new IOException("the webhook of " + region + " answered " + res.statusCode() + ": " + res.body());
        }
    }
}
