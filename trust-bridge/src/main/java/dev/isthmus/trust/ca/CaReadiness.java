package dev.isthmus.trust.ca;

import jakarta.enterprise.context.ApplicationScoped;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;

/** Ready once the trust domain's CA backend is ready (down, with the reason, while Vault is away). */
@Readiness
@ApplicationScoped
public class CaReadiness implements HealthCheck {

    private final TrustDomainCa ca;

    public CaReadiness(TrustDomainCa ca) {
        this.ca = ca;
    }

    @Override
    public HealthCheckResponse call() {
        var b = HealthCheckResponse.named("ca").status(ca.backend().isPresent()).withData("trustDomain", ca.trustDomain());
        ca.backend().ifPresent(x -> b.withData("backend", x.name()));
        if (ca.backend().isEmpty()) {
            b.withData("error", ca.lastError());
        }
        return b.build();
    }
}
