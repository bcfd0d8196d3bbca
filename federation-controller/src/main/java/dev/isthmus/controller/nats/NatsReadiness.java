package dev.isthmus.controller.nats;

import jakarta.enterprise.context.ApplicationScoped;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;

/** Ready only while connected to the regional NATS server. */
@Readiness
@ApplicationScoped
public class NatsReadiness implements HealthCheck {

    private final NatsConnection nats;

    public NatsReadiness(NatsConnection nats) {
        this.nats = nats;
    }

    @Override
    public HealthCheckResponse call() {
        return HealthCheckResponse.named("nats")
                .status(nats.isConnected())
                .withData("server", nats.connectedUrl().orElse("none"))
                .build();
    }
}
