package dev.isthmus.controller.api;

import dev.isthmus.controller.config.ControllerConfig;
import dev.isthmus.controller.federation.PeerTracker;
import dev.isthmus.controller.policy.GitPolicySource;
import dev.isthmus.controller.policy.PolicyStore;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.HeaderParam;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.security.MessageDigest;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import org.eclipse.microprofile.openapi.annotations.Operation;

/** The policy in force and its convergence across the federation; the Git push webhook. */
@Path("/api/v1/policy")
@Produces(MediaType.APPLICATION_JSON)
public class PolicyResource {

    /** One cluster's policy: the SHA it runs (this cluster's own, or a peer's from its last heartbeat). */
    public record ClusterPolicy(String cluster, String sha, String state) {
    }

    /** What {@code GET /api/v1/policy/status} answers. */
    public record Status(String cluster, String sha, Long commitTime, String source, Instant appliedAt, Map<String, Integer> resources,
            PolicyStore.Rejection lastRejection, GitPolicySource.Status git, List<ClusterPolicy> clusters, boolean converged) {
    }

    private final PolicyStore store;
    private final GitPolicySource git;
    private final PeerTracker peers;
    private final ControllerConfig config;

    public PolicyResource(PolicyStore store, GitPolicySource git, PeerTracker peers, ControllerConfig config) {
        this.store = store;
        this.git = git;
        this.peers = peers;
        this.config = config;
    }

    @GET
    @Path("/status")
    @Operation(summary = "The policy this cluster runs, the last refused commit with its errors, the Git watch, and the SHA every member runs")
    public Status status() {
        var applied = store.applied();
        var clusters = new ArrayList<ClusterPolicy>();
        clusters.add(new ClusterPolicy(config.cluster().name(), store.sha(), "Local"));
        for (var p : peers.peers()) {
            if (p.state() != dev.isthmus.api.names.PeerState.LEFT) {
                clusters.add(new ClusterPolicy(p.cluster(), p.policy(), p.stateName()));
            }
        }
        boolean converged = clusters.stream().allMatch(c -> c.sha().equals(store.sha()));
        Map<String, Integer> resources = null;
        if (applied != null) {
            resources = new LinkedHashMap<>();
            resources.put("TrafficPolicy", applied.bundle().traffic().size());
            resources.put("FailoverPolicy", applied.bundle().failover().size());
            resources.put("AuthorizationPolicy", applied.bundle().authorization().size());
            resources.put("MeshPolicy", applied.bundle().mesh().size());
        }
        return new Status(config.cluster().name(), applied == null ? "" : applied.sha(), applied == null ? null : applied.commitTime(),
                applied == null ? null : applied.source(), applied == null ? null : applied.appliedAt(), resources, store.lastRejection(),
                git.status(), clusters, converged);
    }

    @POST
    @Path("/webhook")
    @Operation(summary = "A Git host's push event: authenticated by an HMAC-SHA256 of the body with the shared secret; fetches at once")
    public Response webhook(byte[] body, @HeaderParam("X-Hub-Signature-256") String github, @HeaderParam("X-Gitea-Signature") String gitea) {
        String secret;
        try {
            secret = config.policy().webhookSecret().orElse(null);
            if (secret == null && config.policy().webhookSecretFile().isPresent()) {
                secret = Files.readString(config.policy().webhookSecretFile().get()).strip();
            }
        } catch (java.io.IOException e) {
            return Problem.response(Response.Status.SERVICE_UNAVAILABLE, "webhook-secret-unreadable", "Webhook secret unreadable", e.getMessage());
        }
        if (secret == null || secret.isEmpty()) {
            return Problem.response(Response.Status.NOT_FOUND, "webhook-disabled", "Webhook disabled",
                    "no isthmus.policy.webhook-secret is configured on this controller");
        }
        if (!git.enabled()) {
            return Problem.response(Response.Status.NOT_FOUND, "no-policy-repository", "No policy repository",
                    "this controller watches no policy repository (isthmus.policy.git.url)");
        }
        String given = github != null ? github : gitea;
        if (given == null || given.isBlank()) {
            return Problem.response(Response.Status.UNAUTHORIZED, "signature-missing", "Signature missing",
                    "send the body's HMAC-SHA256 with the shared secret in X-Hub-Signature-256: sha256=<hex> (or X-Gitea-Signature: <hex>)");
        }
        String hex = given.startsWith("sha256=") ? given.substring("sha256=".length()) : given;
        byte[] expected;
        try {
            var mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(secret.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
            expected = mac.doFinal(body == null ? new byte[0] : body);
        } catch (java.security.GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
        byte[] presented;
        try {
            presented = HexFormat.of().parseHex(hex.strip().toLowerCase(java.util.Locale.ROOT));
        } catch (IllegalArgumentException e) {
            return Problem.response(Response.Status.UNAUTHORIZED, "signature-malformed", "Signature malformed",
                    "the signature is not hexadecimal: " + e.getMessage());
        }
        if (!MessageDigest.isEqual(expected, presented)) {
            return Problem.response(Response.Status.FORBIDDEN, "signature-mismatch", "Signature mismatch",
                    "the body's HMAC-SHA256 with this controller's secret is not the one sent");
        }
        git.trigger();
        return Response.accepted(Map.of("fetching", git.status().url())).build();
    }
}
