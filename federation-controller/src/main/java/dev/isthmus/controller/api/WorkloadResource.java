package dev.isthmus.controller.api;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.api.names.ServiceName;
import dev.isthmus.api.registry.Endpoint;
import dev.isthmus.controller.config.ControllerConfig;
import dev.isthmus.controller.registry.WorkloadRegistry;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.DELETE;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import org.eclipse.microprofile.openapi.annotations.Operation;

/**
 * Workload registration by sidecars: {@code POST} registers an instance and, repeated, is its
 * heartbeat; {@code DELETE} deregisters it. An instance that stops heartbeating is removed after the
 * registry TTL.
 */
@Path("/api/v1/workloads")
@dev.isthmus.controller.security.WorkloadOnly
public class WorkloadResource {

    private static final Pattern INSTANCE = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,252}");
    private static final Set<String> PROTOCOLS = Set.of("http", "http2", "grpc", "tcp");

    /** The body of a registration. */
    public record Registration(String service, String instance, String address, Integer port, String protocol,
            Map<String, String> labels, String zone, Boolean healthy, Integer weight, String identity) {
    }

    private final WorkloadRegistry registry;
    private final ControllerConfig config;
    private final ObjectMapper json;

    public WorkloadResource(WorkloadRegistry registry, ControllerConfig config, ObjectMapper json) {
        this.registry = registry;
        this.config = config;
        this.json = json.copy().enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);
    }

    @POST
    @Consumes(MediaType.APPLICATION_JSON)
    @Produces(MediaType.APPLICATION_JSON)
    @Operation(summary = "Register a workload instance, or refresh its registration (heartbeat)")
    public Response register(String body) {
        Registration r;
        try {
            r = json.readValue(body, Registration.class);
        } catch (JsonProcessingException e) {
            return Problem.badRequest("the body is not a valid registration: " + e.getOriginalMessage()
                    + (e.getLocation() != null ? " (line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr() + ")" : ""));
        }
        if (r == null) {
            return Problem.badRequest("the body is empty; send a JSON registration");
        }
        String error = validate(r);
        if (error != null) {
            return Problem.badRequest(error);
        }
        String cluster = config.cluster().name();
        String region = config.cluster().region().orElse(cluster);
        var endpoint = new Endpoint(r.service(), r.instance(), cluster, r.address(), r.port(),
                r.protocol() == null ? "http" : r.protocol(), r.labels(), region,
                r.zone() == null ? config.cluster().zone() : r.zone(), r.healthy() == null || r.healthy(),
                r.weight() == null ? 1 : r.weight(), r.identity() == null ? "" : r.identity());
        boolean changed = registry.register(endpoint);
        return Response.status(changed ? 201 : 200).entity(endpoint).build();
    }

    private static String validate(Registration r) {
        if (r.service() == null) {
            return "field 'service' is required (namespace/name)";
        }
        try {
            ServiceName.parse(r.service());
        } catch (IllegalArgumentException e) {
            return "field 'service': " + e.getMessage();
        }
        if (r.instance() == null || !INSTANCE.matcher(r.instance()).matches()) {
            return "field 'instance' must be 1-253 letters, digits, '.', '_' or '-', got " + quote(r.instance());
        }
        if (r.address() == null || r.address().isBlank()) {
            return "field 'address' is required (host or IP of the sidecar's inbound listener)";
        }
        if (r.port() == null || r.port() < 1 || r.port() > 65535) {
            return "field 'port' must be 1-65535, got " + r.port();
        }
        if (r.protocol() != null && !PROTOCOLS.contains(r.protocol())) {
            return "field 'protocol' must be one of " + PROTOCOLS + ", got " + quote(r.protocol());
        }
        if (r.weight() != null && (r.weight() < 1 || r.weight() > 128)) {
            return "field 'weight' must be 1-128, got " + r.weight();
        }
        return null;
    }

    private static String quote(String s) {
        return s == null ? "nothing" : "'" + s + "'";
    }

    @DELETE
    @Path("/{instance}")
    @Operation(summary = "Deregister a workload instance")
    public Response deregister(@PathParam("instance") String instance) {
        if (registry.deregister(instance)) {
            return Response.noContent().build();
        }
        return Problem.response(Response.Status.NOT_FOUND, "unknown-workload", "No such workload",
                "no instance '" + instance + "' is registered in cluster " + config.cluster().name());
    }
}
