package dev.isthmus.controller.federation;

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
 * A state of this cluster that an operator puts it in for a while (a drill, maintenance) and that
 * ends by itself at the time given, so a drill whose operator goes away does not keep a region out.
 * It is kept on disk (one file in the state directory holding the end, in epoch milliseconds), so a
 * controller restarted during a drill resumes it. {@link Drain} and {@link Isolation} are the two.
 */
public abstract class TimedHold {

    /** The longest hold asked for at once. */
    public static final Duration MAX = Duration.ofHours(24);

    private final Logger log;
    private final String what;
    private final Path file;
    private final Supplier<Instant> clock;
    private volatile Instant until;

    /** For CDI's client proxies, which delegate every call: no state, no file read. */
    protected TimedHold() {
        this.log = null;
        this.what = null;
        this.file = null;
        this.clock = null;
    }

    /** @param what the noun in messages and the prefix of log events: {@code drain}, {@code isolation} */
    protected TimedHold(String what, Path file, Supplier<Instant> clock) {
        this.log = Logger.getLogger(getClass());
        this.what = what;
        this.file = file;
        this.clock = clock;
        Instant loaded = null;
        try {
            if (Files.exists(file)) {
                loaded = Instant.ofEpochMilli(Long.parseLong(Files.readString(file).strip()));
            }
        } catch (IOException | NumberFormatException e) {
            log.warnf("event=%s_state_unreadable file=%s cause=%s (not in force)", what, file, e.toString());
        }
        this.until = loaded;
    }

    /** Starts the hold for {@code duration} from now (1 s to {@link #MAX}); one under way is replaced. */
    public synchronized Instant start(Duration duration) {
        if (duration.compareTo(Duration.ofSeconds(1)) < 0 || duration.compareTo(MAX) > 0) {
            throw new IllegalArgumentException(("aeiou".indexOf(what.charAt(0)) >= 0 ? "an " : "a ") + what + " lasts from 1s to " + MAX.toHours() + "h, not " + duration);
        }
        Instant end = clock.get().plus(duration);
        write(Long.toString(end.toEpochMilli()));
        until = end;
        log.infof("event=%s_started until=%s", what, end);
        return end;
    }

    /** Ends the hold now; true if there was one. */
    public synchronized boolean restore() {
        boolean was = until().isPresent();
        try {
            Files.deleteIfExists(file);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        until = null;
        if (was) {
            log.infof("event=%s_ended reason=restored", what);
        }
        return was;
    }

    /** When the hold under way ends; empty when none (or the last one is over). */
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
