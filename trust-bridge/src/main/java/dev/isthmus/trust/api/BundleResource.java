package dev.isthmus.trust.api;

import dev.isthmus.trust.ca.TrustDomainCa;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.WebApplicationException;
import jakarta.ws.rs.core.Response;
import java.util.Base64;
import java.util.List;
import java.util.Map;

/** This trust domain's CA bundle, in the SPIFFE bundle format (a JWK set with x509-svid keys). */
@Path("/api/v1/trust/bundle")
public class BundleResource {

    private final TrustDomainCa ca;

    public BundleResource(TrustDomainCa ca) {
        this.ca = ca;
    }

    @GET
    @Produces("application/json")
    public Map<String, Object> bundle() throws Exception {
        var backend = ca.backend().orElseThrow(() -> new WebApplicationException("CA not ready", Response.Status.SERVICE_UNAVAILABLE));
        var keys = new java.util.ArrayList<Map<String, Object>>();
        for (var root : backend.roots()) {
            keys.add(Map.of("use", "x509-svid", "kty", "EC", "crv", "P-256",
                    "x5c", List.of(Base64.getEncoder().encodeToString(root.getEncoded()))));
        }
        return Map.of("trust_domain", ca.trustDomain(), "spiffe_sequence", ca.rotation().sequence(), "keys", keys);
    }
}
