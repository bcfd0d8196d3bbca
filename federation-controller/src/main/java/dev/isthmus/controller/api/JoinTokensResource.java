package dev.isthmus.controller.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.controller.membership.Membership;
import dev.isthmus.controller.membership.MembershipException;
import dev.isthmus.controller.security.AdminOnly;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.io.IOException;
import java.time.Duration;
import java.time.format.DateTimeParseException;
import org.eclipse.microprofile.openapi.annotations.Operation;
import org.eclipse.microprofile.openapi.annotations.parameters.RequestBody;

/** Join tokens: made on a member, used once by a new cluster to join. */
@Path("/api/v1/join-tokens")
@Produces(MediaType.APPLICATION_JSON)
@Consumes(MediaType.WILDCARD)
@AdminOnly
public class JoinTokensResource {

    private final Membership membership;
    private final ObjectMapper json;

    public JoinTokensResource(Membership membership, ObjectMapper json) {
        this.membership = membership;
        this.json = json;
    }

    @POST
    @Operation(summary = "Make a signed, expiring, one-time join token; founds the federation if this cluster is in none. "
            + "Body (optional): {\"cluster\": \"eu-west\" (only this cluster may use it), \"ttl\": \"15m\"}")
    public Response create(@RequestBody String body) {
        String cluster = null;
        Duration ttl = null;
        if (body != null && !body.isBlank()) {
            JsonNode node;
            try {
                node = json.readTree(body);
            } catch (IOException e) {
                return Problem.badRequest("the body is not JSON: " + e.getMessage().lines().findFirst().orElse(""));
            }
            if (!node.isObject()) {
                return Problem.badRequest("the body must be a JSON object such as {\"cluster\":\"eu-west\",\"ttl\":\"15m\"}");
            }
            var names = node.fieldNames();
            while (names.hasNext()) {
                String f = names.next();
                if (!f.equals("cluster") && !f.equals("ttl")) {
                    return Problem.badRequest("unknown field '" + f + "'; the fields are 'cluster' and 'ttl'");
                }
            }
            if (node.hasNonNull("cluster")) {
                cluster = node.get("cluster").asText();
            }
            if (node.hasNonNull("ttl")) {
                try {
                    ttl = parseDuration(node.get("ttl").asText());
                } catch (IllegalArgumentException e) {
                    return Problem.badRequest("field 'ttl': " + e.getMessage());
                }
            }
        }
        try {
            return Response.status(Response.Status.CREATED).entity(membership.createToken(cluster, ttl)).build();
        } catch (MembershipException e) {
            return FederationResource.problem(e);
        }
    }

    /** {@code 90s}, {@code 15m}, {@code 2h}, or an ISO-8601 duration such as {@code PT15M}. */
    static Duration parseDuration(String text) {
        String t = text.strip();
        try {
            if (t.matches("\\d+[smhd]")) {
                long n = Long.parseLong(t.substring(0, t.length() - 1));
                return switch (t.charAt(t.length() - 1)) {
                    case 's' -> Duration.ofSeconds(n);
                    case 'm' -> Duration.ofMinutes(n);
                    case 'h' -> Duration.ofHours(n);
                    default -> Duration.ofDays(n);
                };
            }
            return Duration.parse(t);
        } catch (DateTimeParseException | NumberFormatException | ArithmeticException e) {
            throw new IllegalArgumentException("'" + t + "' is not a duration; write e.g. 90s, 15m, 2h or PT15M");
        }
    }
}
