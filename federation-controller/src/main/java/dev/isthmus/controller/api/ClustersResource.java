package dev.isthmus.controller.api;

import dev.isthmus.controller.config.ControllerConfig;
import dev.isthmus.controller.federation.FederatedCatalog;
import dev.isthmus.controller.federation.PeerTracker;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.util.ArrayList;
import java.util.List;
import org.eclipse.microprofile.openapi.annotations.Operation;

/** The clusters of the federation as this controller sees them. */
@Path("/api/v1/clusters")
@Produces(MediaType.APPLICATION_JSON)
public class ClustersResource {

    /** One cluster: its state and the registry generation held for it. */
    public record ClusterView(String name, String region, String zone, String state, String lastHeartbeat, long registryGeneration) {
    }

    private final ControllerConfig config;
    private final PeerTracker peers;
    private final FederatedCatalog catalog;

    public ClustersResource(ControllerConfig config, PeerTracker peers, FederatedCatalog catalog) {
        this.config = config;
        this.peers = peers;
        this.catalog = catalog;
    }

    @GET
    @Operation(summary = "Every cluster of the federation: this one first, then each peer with its state")
    public List<ClusterView> list() {
        var out = new ArrayList<ClusterView>();
        String self = config.cluster().name();
        out.add(new ClusterView(self, config.cluster().region().orElse(self), config.cluster().zone(), "Local", "",
                catalog.generation(self)));
        for (var p : peers.peers()) {
            out.add(new ClusterView(p.cluster(), p.region(), p.zone(), p.state().display(), p.lastHeartbeat().toString(),
                    catalog.generation(p.cluster())));
        }
        return out;
    }

    @GET
    @Path("/{name}")
    @Operation(summary = "One cluster of the federation")
    public Response get(@PathParam("name") String name) {
        return list().stream().filter(c -> c.name().equals(name)).findFirst().map(c -> Response.ok(c).build())
                .orElseGet(() -> Problem.response(Response.Status.NOT_FOUND, "unknown-cluster", "No such cluster",
                        "cluster '" + name + "' is not known to " + config.cluster().name()
                                + "; GET /api/v1/clusters lists the clusters it knows"));
    }
}
