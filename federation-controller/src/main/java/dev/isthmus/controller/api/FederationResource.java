package dev.isthmus.controller.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.controller.config.ControllerConfig;
import dev.isthmus.controller.federation.PeerTracker;
import dev.isthmus.controller.membership.Membership;
import dev.isthmus.controller.membership.MembershipException;
import dev.isthmus.controller.nats.NatsConnection;
import dev.isthmus.controller.security.AdminOnly;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.io.IOException;
import java.util.List;
import org.eclipse.microprofile.openapi.annotations.Operation;
import org.eclipse.microprofile.openapi.annotations.parameters.RequestBody;

/** The federation as this controller sees it; joining and leaving it. */
@Path("/api/v1/federation")
@Produces(MediaType.APPLICATION_JSON)
public class FederationResource {

    /**
     * This cluster and every peer it knows.
     *
     * @param federation the federation's name, or null when unfederated
     * @param state Unfederated, Joining or Active
     * @param publicKey this cluster's signing key fingerprint
     * @param drainingUntil while this cluster is drained, when the drain ends; else null
     * @param isolatedUntil while this cluster's gateway refuses cross-region traffic (an isolation
     *     drill), when that ends; else null
     */
    public record FederationView(String federation, String cluster, String region, String state, String publicKey,
            boolean natsConnected, String natsServer, java.time.Instant drainingUntil, java.time.Instant isolatedUntil,
            List<PeerTracker.Peer> peers) {
    }

    private final ControllerConfig config;
    private final PeerTracker peers;
    private final NatsConnection nats;
    private final Membership membership;
    private final ObjectMapper json;
    @jakarta.inject.Inject
    dev.isthmus.controller.federation.Drain drain;
    @jakarta.inject.Inject
    dev.isthmus.controller.federation.Isolation isolation;

    public FederationResource(ControllerConfig config, PeerTracker peers, NatsConnection nats, Membership membership, ObjectMapper json) {
        this.config = config;
        this.peers = peers;
        this.nats = nats;
        this.membership = membership;
        this.json = json;
    }

    @GET
    @Operation(summary = "The federation seen from this cluster: its own identity and state, and the state of every peer")
    public FederationView get() {
        return new FederationView(membership.roster().map(r -> r.federation()).orElse(null), config.cluster().name(),
                config.cluster().region().orElse(config.cluster().name()), membership.state().display(),
                membership.identity().fingerprint(), nats.isConnected(), nats.connectedUrl().orElse(""), drain.until().orElse(null),
                isolation.until().orElse(null), peers.peers());
    }

    @POST
    @Path("/join")
    @AdminOnly
    @Consumes(MediaType.WILDCARD)
    @Operation(summary = "Join the federation a token names. Body: {\"token\": \"isthmus-join-v1....\"}. "
            + "Answers once admitted; the state is Joining until every member's registry has arrived")
    public Response join(@RequestBody String body) {
        var token = textField(body, "token", false, "{\"token\": \"<the text printed by isthmus token create>\"}");
        if (token.problem() != null) {
            return token.problem();
        }
        try {
            membership.join(token.value());
            return Response.ok(get()).build();
        } catch (MembershipException e) {
            return problem(e);
        }
    }

    @POST
    @Path("/leave")
    @AdminOnly
    @Operation(summary = "Leave the federation: the members drop this cluster's endpoints and refuse its messages; it is unfederated after")
    public Response leave() {
        try {
            membership.leave();
            return Response.ok(get()).build();
        } catch (MembershipException e) {
            return problem(e);
        }
    }

    @POST
    @Path("/drain")
    @AdminOnly
    @Consumes(MediaType.WILDCARD)
    @Operation(summary = "Drain this cluster for a while (a failover drill, maintenance): every other member sends it no traffic "
            + "until the time given or a DELETE; its own workloads keep calling each other. Body: {\"duration\": \"60s\"} (1s to 24h)")
    public Response drain(@RequestBody String body) {
        return hold(drain, body);
    }

    @jakarta.ws.rs.DELETE
    @Path("/drain")
    @AdminOnly
    @Operation(summary = "End this cluster's drain now: the other members send it traffic again")
    public Response restore() {
        drain.restore();
        return Response.ok(get()).build();
    }

    @POST
    @Path("/isolate")
    @AdminOnly
    @Consumes(MediaType.WILDCARD)
    @Operation(summary = "Isolate this cluster for a while (a failover drill): its east-west gateway refuses cross-region traffic and "
            + "closes the flows it carries, and nobody is told, so the other members must fail over from what their sidecars see; "
            + "its own workloads keep calling each other. Until the time given or a DELETE. Body: {\"duration\": \"60s\"} (1s to 24h)")
    public Response isolate(@RequestBody String body) {
        return hold(isolation, body);
    }

    @jakarta.ws.rs.DELETE
    @Path("/isolate")
    @AdminOnly
    @Operation(summary = "End this cluster's isolation now: its gateway takes cross-region traffic again")
    public Response endIsolation() {
        isolation.restore();
        return Response.ok(get()).build();
    }

    /** Starts a drain or an isolation for the body's duration; the 400 says what is wrong with the body. */
    private Response hold(dev.isthmus.controller.federation.TimedHold hold, String body) {
        var duration = textField(body, "duration", true, "{\"duration\": \"<how long, e.g. 60s or 10m>\"}");
        if (duration.problem() != null) {
            return duration.problem();
        }
        try {
            hold.start(JoinTokensResource.parseDuration(duration.value()));
        } catch (IllegalArgumentException e) {
            return Problem.badRequest("field 'duration': " + e.getMessage());
        }
        return Response.ok(get()).build();
    }

    /** A body's one text field, or the 400 that says what is wrong with the body. */
    private record Field(String value, Response problem) {
    }

    /**
     * Reads a body that must be a JSON object with the text field {@code name} ({@code shape} shows
     * it); with {@code only}, any other field is refused too.
     */
    private Field textField(String body, String name, boolean only, String shape) {
        JsonNode node;
        try {
            node = json.readTree(body == null ? "" : body);
        } catch (IOException e) {
            return new Field(null, Problem.badRequest("the body is not JSON: " + e.getMessage().lines().findFirst().orElse("")));
        }
        if (node == null || !node.isObject() || !node.hasNonNull(name) || !node.get(name).isTextual()) {
            return new Field(null, Problem.badRequest("the body must be " + shape));
        }
        var names = node.fieldNames();
        while (only && names.hasNext()) {
            String f = names.next();
            if (!f.equals(name)) {
                return new Field(null, Problem.badRequest("unknown field '" + f + "'; the only field is '" + name + "'"));
            }
        }
        return new Field(node.get(name).asText(), null);
    }

    static Response problem(MembershipException e) {
        return Response.status(e.status()).type(Problem.MEDIA_TYPE)
                .entity(new Problem("https://isthmus.dev/problems/" + e.kind(), e.title(), e.status(), e.getMessage())).build();
    }
}
