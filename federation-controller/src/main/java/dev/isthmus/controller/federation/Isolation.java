package dev.isthmus.controller.federation;

import dev.isthmus.controller.config.ControllerConfig;
import jakarta.enterprise.context.ApplicationScoped;
import java.nio.file.Path;
import java.time.Instant;
import java.util.function.Supplier;

/**
 * This cluster isolated (DESIGN.md, "Failover drills"): for a while its east-west gateway refuses
 * cross-region traffic, as a network cut in front of it would. Unlike a {@link Drain}, nobody is
 * told: the other members keep sending this cluster traffic and must find out from the data plane
 * (connections refused, outlier detection, retries onto the next locality), which is what the drill
 * rehearses. The controller serves its gateway every exported service with all of its traffic
 * dropped (Envoy's {@code ClusterLoadAssignment.policy.drop_overloads}, category
 * {@value #DROP_CATEGORY}); the gateway refuses new connections and closes the flows it carries.
 * Its own workloads keep calling each other. It ends by itself at the time given and is kept on disk
 * ({@code <state-dir>/isolated-until}), so a controller restarted during a drill resumes it.
 */
@ApplicationScoped
public class Isolation extends TimedHold {

    /** The drop category the gateway's assignments carry while isolated. */
    public static final String DROP_CATEGORY = "isthmus_isolated";

    @jakarta.inject.Inject
    public Isolation(ControllerConfig config) {
        this(config.stateDir().resolve("isolated-until"), Instant::now);
    }

    Isolation(Path file, Supplier<Instant> clock) {
        super("isolation", file, clock);
    }
}
