package dev.isthmus.controller.federation;

import dev.isthmus.controller.config.ControllerConfig;
import jakarta.enterprise.context.ApplicationScoped;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.function.Supplier;

/**
 * This cluster drained (DESIGN.md, "Failover drills"): for a while, the other clusters send it no
 * traffic, as if it were gone, while it keeps serving its own workloads. The drain goes out in this
 * controller's heartbeats (signed, as every bus message), each member then shows this cluster as
 * {@code Draining} and leaves its gateway out of its sidecars' failover, and it ends by itself at
 * the time given. It is kept on disk ({@code <state-dir>/draining-until}), so a controller restarted
 * during a drill resumes it.
 */
@ApplicationScoped
public class Drain extends TimedHold {

    @jakarta.inject.Inject
    public Drain(ControllerConfig config) {
        this(config.stateDir().resolve("draining-until"), Instant::now);
    }

    Drain(Path file, Supplier<Instant> clock) {
        super("drain", file, clock);
    }

    /** Drains this cluster for {@code duration} from now (1 s to {@link #MAX}); a drain under way is replaced. */
    public Instant drain(Duration duration) {
        return start(duration);
    }
}
