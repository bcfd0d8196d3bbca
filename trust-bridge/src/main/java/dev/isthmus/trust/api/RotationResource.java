package dev.isthmus.trust.api;

import dev.isthmus.trust.TrustBridgeConfig;
import dev.isthmus.trust.ca.TrustDomainCa;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.HeaderParam;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.HttpHeaders;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Root rotation: {@code GET /api/v1/trust/rotation} shows the phase and the roots in the bundle;
 * {@code POST /api/v1/trust/rotate} (admin credential) starts a rotation. Errors are RFC 9457
 * problem JSON.
 */
@Path("/api/v1/trust")
@Produces(MediaType.APPLICATION_JSON)
public class RotationResource {

    private final TrustDomainCa ca;
    private final TrustBridgeConfig config;

    public RotationResource(TrustDomainCa ca, TrustBridgeConfig config) {
        this.ca = ca;
        this.config = config;
    }

    @GET
    @Path("/rotation")
    public Response status() {
        var r = ca.rotation();
        var out = new LinkedHashMap<String, Object>();
        out.put("trustDomain", ca.trustDomain());
        out.put("backend", ca.backend().map(b -> b.name()).orElse("not ready"));
        out.put("phase", r.phase());
        out.put("startedAt", r.startedAt() == null ? null : r.startedAt().toString());
        out.put("switchAt", r.switchAt() == null ? null : r.switchAt().toString());
        out.put("retireAt", r.retireAt() == null ? null : r.retireAt().toString());
        out.put("bundleSequence", r.sequence());
        var roots = new ArrayList<Map<String, Object>>();
        ca.backend().ifPresent(b -> {
            boolean first = true;
            for (var c : b.roots()) {
                roots.add(Map.of("serial", c.getSerialNumber().toString(16), "notAfter", c.getNotAfter().toInstant().toString(),
                        "signing", first));
                first = false;
            }
        });
        out.put("roots", roots);
        return Response.ok(out).build();
    }

    @POST
    @Path("/rotate")
    public Response rotate(@HeaderParam(HttpHeaders.AUTHORIZATION) String authorization) throws Exception {
        byte[] admin = adminCredential();
        if (admin == null) {
            return problem(403, "no-admin-credential", "No admin credential is configured",
                    "this bridge has no admin credential (isthmus.admin.token-file); rotation over REST is off");
        }
        if (authorization == null || !authorization.regionMatches(true, 0, "Bearer ", 0, 7)) {
            return problem(401, "missing-credential", "A credential is needed", "send the admin credential as 'Authorization: Bearer <token>'");
        }
        if (!MessageDigest.isEqual(admin, authorization.substring(7).strip().getBytes(StandardCharsets.UTF_8))) {
            return problem(403, "wrong-credential", "The credential is not accepted", "the bearer token sent is not this bridge's admin credential");
        }
        try {
            ca.rotate();
        } catch (IllegalStateException e) {
            return problem(409, "rotation-refused", "The rotation cannot start", e.getMessage());
        }
        return Response.accepted(status().getEntity()).build();
    }

    private byte[] adminCredential() throws IOException {
        String secret = dev.isthmus.trust.Secrets.read(config.admin().token(), config.admin().tokenFile(), false);
        return secret == null ? null : secret.getBytes(StandardCharsets.UTF_8);
    }

    private static Response problem(int status, String kind, String title, String detail) {
        return Response.status(status).type("application/problem+json")
                .entity(Map.of("type", "https://isthmus.dev/problems/" + kind, "title", title, "status", status, "detail", detail)).build();
    }
}
