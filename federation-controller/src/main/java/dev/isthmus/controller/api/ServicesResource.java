package dev.isthmus.controller.api;

import dev.isthmus.api.names.PeerState;
import dev.isthmus.api.names.ServiceName;
import dev.isthmus.controller.config.ControllerConfig;
import dev.isthmus.controller.federation.FederatedCatalog;
import dev.isthmus.controller.federation.PeerTracker;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.eclipse.microprofile.openapi.annotations.Operation;

/** The federated catalog: every service with its endpoints per cluster, health and locality. */
@Path("/api/v1/services")
@Produces(MediaType.APPLICATION_JSON)
public class ServicesResource {

    private final FederatedCatalog catalog;
    private final PeerTracker peers;
    private final ControllerConfig config;

    public ServicesResource(FederatedCatalog catalog, PeerTracker peers, ControllerConfig config) {
        this.catalog = catalog;
        this.peers = peers;
        this.config = config;
    }

    private List<FederatedCatalog.CatalogService> services() {
        Map<String, PeerState> states = new HashMap<>();
        peers.peers().forEach(p -> states.put(p.cluster(), p.state()));
        return catalog.services(states, config.cluster().name());
    }

    @GET
    @Operation(summary = "Every service of the federation with its endpoints per cluster")
    public List<FederatedCatalog.CatalogService> list() {
        return services();
    }

    @GET
    @Path("/{namespace}/{name}")
    @Operation(summary = "One service of the federation with its endpoints per cluster")
    public Response get(@PathParam("namespace") String namespace, @PathParam("name") String name) {
        String service;
        try {
            service = new ServiceName(namespace, name).toString();
        } catch (IllegalArgumentException e) {
            return Problem.badRequest(e.getMessage());
        }
        return services().stream().filter(s -> s.service().equals(service)).findFirst()
                .map(s -> Response.ok(s).build())
                .orElseGet(() -> Problem.response(Response.Status.NOT_FOUND, "unknown-service", "No such service",
                        "no cluster of the federation has an endpoint of " + service));
    }
}
