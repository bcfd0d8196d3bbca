package dev.isthmus.controller.federation;

import dev.isthmus.controller.config.ControllerConfig;
import jakarta.enterprise.context.ApplicationScoped;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.time.Instant;
import java.util.Optional;
import java.util.function.Supplier;
import org.jboss.logging.Logger;

/**
 * This cluster drained (DESIGN.md, "Failover drills"): for a while, the other clusters send it no
 * traffic, as if it were gone, while it keeps serving its own workloads. The drain goes out in this
 * controller's heartbeats (signed, as every bus message), each member then shows this cluster as
 * {@code Draining} and leaves its gateway out of its sidecars' failover, and it ends by itself at
 * the time given, so a drill whose operator goes away does not keep a region out. It is kept on
 * disk ({@code <state-dir>/draining-until}), so a controller restarted during a drill resumes it.
 */
@ApplicationScoped
public class Drain {

    private static final Logger LOG = Logger.getLogger(Drain.class);
    /** The longest drain asked for at once. */
    public static final Duration MAX = Duration.ofHours(24);

    private final Path file;
    private final Supplier<Instant> clock;
    private volatile Instant until;

    @jakarta.inject.Inject
    public Drain(ControllerConfig config) {
        this(config.stateDir().resolve("draining-until"), Instant::now);
    }

    Drain(Path file, Supplier<Instant> clock) {
        this.file = file;
        this.clock = clock;
        Instant loaded = null;
        try {
            if (Files.exists(file)) {
                loaded = Instant.ofEpochMilli(Long.parseLong(Files.readString(file).strip()));
            }
        } catch (IOException | NumberFormatException e) {
            LOG.warnf("event=drain_state_unreadable file=%s cause=%s (not drained)", file, e.toString());
        }
        this.until = loaded;
    }

    /** Drains this cluster for {@code duration} from now (1 s to {@link #MAX}); a drain under way is replaced. */
    public synchronized Instant drain(Duration duration) {
        if (duration.compareTo(Duration.ofSeconds(1)) < 0 || duration.compareTo(MAX) > 0) {
            throw new IllegalArgumentException("a drain lasts from 1s to " + MAX.toHours() + "h, not " + duration);
        }
        Instant end = clock.get().plus(duration);
        write(Long.toString(end.toEpochMilli()));
        until = end;
        LOG.infof("event=drain_started until=%s", end);
        return end;
    }

    /** Ends the drain now; true if there was one. */
    public synchronized boolean restore() {
        boolean was = until().isPresent();
        try {
            Files.deleteIfExists(file);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        until = null;
        if (was) {
            LOG.info("event=drain_ended reason=restored");
        }
        return was;
    }

    /** When the drain under way ends; empty when none (or the last one is over). */
    public Optional<Instant> until() {
        Instant u = until;
        return u != null && u.isAfter(clock.get()) ? Optional.of(u) : Optional.empty();
    }

    private void write(String text) {
        try {
            Files.createDirectories(file.getParent());
            Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
            Files.writeString(tmp, text);
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
