package dev.isthmus.trust.ca;

import jakarta.enterprise.context.ApplicationScoped;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;

/** Ready once the trust domain's CA is loaded. */
@Readiness
@ApplicationScoped
public class CaReadiness implements HealthCheck {

    private final TrustDomainCa ca;

    public CaReadiness(TrustDomainCa ca) {
        this.ca = ca;
    }

    @Override
    public HealthCheckResponse call() {
        return HealthCheckResponse.named("ca").status(ca.root().isPresent()).withData("trustDomain", ca.trustDomain()).build();
    }
}
