package dev.isthmus.controller.api;

import dev.isthmus.controller.config.ControllerConfig;
import dev.isthmus.controller.federation.PeerTracker;
import dev.isthmus.controller.nats.NatsConnection;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import java.util.List;
import org.eclipse.microprofile.openapi.annotations.Operation;

/** The federation as this controller sees it. */
@Path("/api/v1/federation")
@Produces(MediaType.APPLICATION_JSON)
public class FederationResource {

    /** This cluster and every peer it has heard from. */
    public record FederationView(String federation, String cluster, String region, boolean natsConnected, String natsServer,
            List<PeerTracker.Peer> peers) {
    }

    private final ControllerConfig config;
    private final PeerTracker peers;
    private final NatsConnection nats;

    public FederationResource(ControllerConfig config, PeerTracker peers, NatsConnection nats) {
        this.config = config;
        this.peers = peers;
        this.nats = nats;
    }

    @GET
    @Operation(summary = "The federation seen from this cluster: its own identity and the state of every peer")
    public FederationView get() {
        return new FederationView(config.federation(), config.cluster().name(),
                config.cluster().region().orElse(config.cluster().name()), nats.isConnected(),
                nats.connectedUrl().orElse(""), peers.peers());
    }
}
