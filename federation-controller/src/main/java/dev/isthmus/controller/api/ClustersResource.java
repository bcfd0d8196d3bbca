package dev.isthmus.controller.api;

import dev.isthmus.controller.config.ControllerConfig;
import dev.isthmus.controller.federation.FederatedCatalog;
import dev.isthmus.controller.federation.PeerTracker;
import dev.isthmus.controller.membership.Membership;
import dev.isthmus.controller.membership.MembershipException;
import dev.isthmus.controller.security.AdminOnly;
import jakarta.ws.rs.DELETE;
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

    /**
     * One cluster: its state and the registry generation held for it.
     *
     * @param state Local for this cluster; Joining, Active, Unreachable or Left for the others
     * @param generationLag registry generations it announced that this controller does not hold yet
     */
    public record ClusterView(String name, String region, String zone, String state, String lastHeartbeat, long registryGeneration,
            long generationLag, String joinedAt, String leftReason) {
    }

    private final ControllerConfig config;
    private final PeerTracker peers;
    private final FederatedCatalog catalog;
    private final Membership membership;

    public ClustersResource(ControllerConfig config, PeerTracker peers, FederatedCatalog catalog, Membership membership) {
        this.config = config;
        this.peers = peers;
        this.catalog = catalog;
        this.membership = membership;
    }

    @GET
    @Operation(summary = "Every cluster of the federation: this one first, then each member with its state")
    public List<ClusterView> list() {
        var out = new ArrayList<ClusterView>();
        String self = config.cluster().name();
        String joined = membership.roster().flatMap(r -> r.member(self)).map(m -> java.time.Instant.ofEpochMilli(m.joinedAt()).toString())
                .orElse("");
        out.add(new ClusterView(self, config.cluster().region().orElse(self), config.cluster().zone(), "Local", "",
                catalog.generation(self), 0, joined, null));
        for (var p : peers.peers()) {
            out.add(new ClusterView(p.cluster(), p.region(), p.zone(), p.state().display(),
                    p.lastHeartbeat() == null ? "" : p.lastHeartbeat().toString(), catalog.generation(p.cluster()), p.generationLag(),
                    p.joinedAt().toString(), p.leftReason()));
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

    @DELETE
    @Path("/{name}")
    @AdminOnly
    @Operation(summary = "Evict a cluster: every member drops its endpoints and refuses its messages; it needs a new token to come back")
    public Response evict(@PathParam("name") String name) {
        try {
            membership.evict(name);
            return get(name);
        } catch (MembershipException e) {
            return FederationResource.problem(e);
        }
    }
}
