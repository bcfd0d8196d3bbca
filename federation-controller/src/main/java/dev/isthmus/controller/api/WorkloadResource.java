package dev.isthmus.controller.api;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.controller.config.ControllerConfig;
import dev.isthmus.controller.registry.EndpointSpec;
import dev.isthmus.controller.registry.LocalRegistry;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.DELETE;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import org.eclipse.microprofile.openapi.annotations.Operation;

/**
 * Workload registration by sidecars: {@code POST} registers an instance and, repeated, is its
 * heartbeat; {@code DELETE} deregisters it. An instance that stops heartbeating is removed after the
 * registry TTL.
 */
@Path("/api/v1/workloads")
@dev.isthmus.controller.security.WorkloadOnly
public class WorkloadResource {

    private final LocalRegistry registry;
    private final ControllerConfig config;
    private final ObjectMapper json;

    public WorkloadResource(LocalRegistry registry, ControllerConfig config, ObjectMapper json) {
        this.registry = registry;
        this.config = config;
        this.json = json.copy().enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);
    }

    @POST
    @Consumes(MediaType.APPLICATION_JSON)
    @Produces(MediaType.APPLICATION_JSON)
    @Operation(summary = "Register a workload instance, or refresh its registration (heartbeat)")
    public Response register(String body) {
        EndpointSpec r;
        try {
            r = json.readValue(body, EndpointSpec.class);
        } catch (JsonProcessingException e) {
            return Problem.badRequest("the body is not a valid registration: " + e.getOriginalMessage()
                    + (e.getLocation() != null ? " (line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr() + ")" : ""));
        }
        if (r == null) {
            return Problem.badRequest("the body is empty; send a JSON registration");
        }
        String error = r.problem();
        if (error != null) {
            return Problem.badRequest(error);
        }
        var endpoint = r.toEndpoint(config);
        boolean changed = registry.register(endpoint);
        return Response.status(changed ? 201 : 200).entity(endpoint).build();
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
