package dev.isthmus.trust.ca;

import io.micrometer.core.instrument.MeterRegistry;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.ArrayList;
import java.util.List;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;

/**
 * Ready once the trust domain's CA backend is ready (down, with the reason, while Vault is away at
 * start). Once ready it stays up, but says {@code "state": "degraded"} with the reasons when Vault
 * cannot sign now (unreachable, sealed), a rotation step is failing, or the controller (and with it
 * the federation's bus) cannot be reached: certificates already issued keep working and the bundle
 * is still served, so taking the bridge out of service would only hurt. The same state is the gauge
 * {@code isthmus_trust_bridge_degraded} (1 when degraded).
 */
@Readiness
@ApplicationScoped
public class CaReadiness implements HealthCheck {

    private final TrustDomainCa ca;
    private final FederatedRoots federated;

    public CaReadiness(TrustDomainCa ca, FederatedRoots federated, MeterRegistry meters) {
        this.ca = ca;
        this.federated = federated;
        meters.gauge("isthmus_trust_bridge_degraded", this, h -> h.ca.backend().isPresent() && !h.problems().isEmpty() ? 1 : 0);
    }

    /** What is wrong now, empty when nothing is. */
    public List<String> problems() {
        var out = new ArrayList<String>();
        if (!ca.backendProblem().isEmpty()) {
            out.add(ca.backendProblem());
        }
        if (!ca.rotationError().isEmpty()) {
            out.add("root rotation step failing: " + ca.rotationError());
        }
        if (!federated.lastError().isEmpty()) {
            out.add("federated roots not refreshed: " + federated.lastError());
        }
        return out;
    }

    @Override
    public HealthCheckResponse call() {
        var b = HealthCheckResponse.named("ca").status(ca.backend().isPresent()).withData("trustDomain", ca.trustDomain());
        ca.backend().ifPresent(x -> b.withData("backend", x.name()));
        if (ca.backend().isEmpty()) {
            b.withData("state", "down").withData("error", ca.lastError());
        } else {
            var problems = problems();
            b.withData("state", problems.isEmpty() ? "ok" : "degraded");
            for (int i = 0; i < problems.size(); i++) {
                b.withData("problem" + (i + 1), problems.get(i));
            }
        }
        return b.build();
    }
}
