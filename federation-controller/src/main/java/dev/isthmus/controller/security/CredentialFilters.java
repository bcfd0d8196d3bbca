package dev.isthmus.controller.security;

import dev.isthmus.controller.api.Problem;
import io.micrometer.core.instrument.MeterRegistry;
import jakarta.inject.Inject;
import jakarta.ws.rs.Priorities;
import jakarta.ws.rs.container.ContainerRequestContext;
import jakarta.ws.rs.container.ContainerRequestFilter;
import jakarta.ws.rs.core.HttpHeaders;
import jakarta.ws.rs.core.Response;
import jakarta.ws.rs.ext.Provider;

/** Checks the bearer credential on {@link AdminOnly} and {@link WorkloadOnly} endpoints. */
public final class CredentialFilters {

    private CredentialFilters() {
    }

    static String bearer(ContainerRequestContext ctx) {
        String h = ctx.getHeaderString(HttpHeaders.AUTHORIZATION);
        if (h == null || !h.regionMatches(true, 0, "Bearer ", 0, 7)) {
            return null;
        }
        return h.substring(7).strip();
    }

    static void refuse(ContainerRequestContext ctx, MeterRegistry meters, String presented, String which, String where) {
        boolean missing = presented == null;
        meters.counter("isthmus_api_unauthorized", "credential", which, "reason", missing ? "missing" : "wrong").increment();
        Response.Status status = missing ? Response.Status.UNAUTHORIZED : Response.Status.FORBIDDEN;
        Response r = Problem.response(status, missing ? "missing-credential" : "wrong-credential",
                missing ? "A credential is needed" : "The credential is not accepted",
                (missing ? "send the " + which + " credential as 'Authorization: Bearer <token>'"
                        : "the bearer token sent is not this controller's " + which + " credential")
                        + "; it is in " + where);
        ctx.abortWith(missing ? Response.fromResponse(r).header(HttpHeaders.WWW_AUTHENTICATE, "Bearer realm=\"isthmus\"").build() : r);
    }

    @Provider
    @AdminOnly
    @jakarta.annotation.Priority(Priorities.AUTHENTICATION)
    public static final class Admin implements ContainerRequestFilter {
        @Inject
        Credentials credentials;
        @Inject
        MeterRegistry meters;

        @Override
        public void filter(ContainerRequestContext ctx) {
            String presented = bearer(ctx);
            if (!credentials.isAdmin(presented)) {
                refuse(ctx, meters, presented, "admin", "the controller's admin token file (" + credentials.adminFile()
                        + "; isthmus.admin.token-file)");
            }
        }
    }

    @Provider
    @WorkloadOnly
    @jakarta.annotation.Priority(Priorities.AUTHENTICATION)
    public static final class Workload implements ContainerRequestFilter {
        @Inject
        Credentials credentials;
        @Inject
        MeterRegistry meters;

        @Override
        public void filter(ContainerRequestContext ctx) {
            String presented = bearer(ctx);
            if (!credentials.isWorkload(presented)) {
                refuse(ctx, meters, presented, "workload", "the controller's workload token file (isthmus.workload.token-file)");
            }
        }
    }
}
