package dev.isthmus.controller.api;

import com.fasterxml.jackson.databind.JsonNode;
import dev.isthmus.controller.federation.TrustBundles;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import java.util.Map;
import org.eclipse.microprofile.openapi.annotations.Operation;

/** The trust bundles of the other members, for this cluster's trust bridge. */
@Path("/api/v1/trust/federated-bundles")
@Produces(MediaType.APPLICATION_JSON)
public class TrustBundlesResource {

    private final TrustBundles bundles;

    public TrustBundlesResource(TrustBundles bundles) {
        this.bundles = bundles;
    }

    @GET
    @Operation(summary = "Every other member's SPIFFE trust bundle, by trust domain (received signed over the federation's bus)")
    public Map<String, JsonNode> get() {
        return bundles.members();
    }
}
