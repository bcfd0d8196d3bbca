package dev.isthmus.controller.federation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A drain lasts the time asked, survives a restart of the controller, ends early on restore, and
 * refuses silly lengths; an isolation, the other {@link TimedHold}, alike and in its own file.
 */
class DrainTest {

    /** A clock the test moves. */
    static final class TestClock implements java.util.function.Supplier<Instant> {
        Instant now = Instant.parse("2026-11-27T10:00:00Z");

        @Override
        public Instant get() {
            return now;
        }
    }

    @Test
    void aDrainEndsByItselfAndIsResumedAfterARestart(@TempDir Path dir) {
        var clock = new TestClock();
        var drain = new Drain(dir.resolve("draining-until"), clock);
        assertTrue(drain.until().isEmpty());
        Instant end = drain.drain(Duration.ofSeconds(90));
        assertEquals(Instant.parse("2026-11-27T10:01:30Z"), end);
        clock.now = clock.now.plusSeconds(30);
        assertEquals(end, new Drain(dir.resolve("draining-until"), clock).until().orElseThrow(), "a restarted controller resumes the drain");
        clock.now = clock.now.plusSeconds(61);
        assertTrue(drain.until().isEmpty(), "over at its end");
    }

    @Test
    void restoreEndsItAtOnceAndOnDisk(@TempDir Path dir) {
        var clock = new TestClock();
        var drain = new Drain(dir.resolve("draining-until"), clock);
        drain.drain(Duration.ofMinutes(10));
        assertTrue(drain.restore());
        assertTrue(drain.until().isEmpty());
        assertFalse(Files.exists(dir.resolve("draining-until")));
        assertTrue(new Drain(dir.resolve("draining-until"), clock).until().isEmpty());
        assertFalse(drain.restore(), "nothing to restore");
    }

    @Test
    void aLengthOutsideOneSecondToADayIsRefusedAndKeepsTheDrainUnderWay(@TempDir Path dir) {
        var drain = new Drain(dir.resolve("draining-until"), new TestClock());
        Instant end = drain.drain(Duration.ofMinutes(5));
        var e = assertThrows(IllegalArgumentException.class, () -> drain.drain(Duration.ofHours(25)));
        assertTrue(e.getMessage().contains("1s to 24h"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> drain.drain(Duration.ZERO));
        assertEquals(end, drain.until().orElseThrow());
    }

    @Test
    void anIsolationIsHeldAsADrainIsAndApartFromIt(@TempDir Path dir) {
        var clock = new TestClock();
        var isolation = new Isolation(dir.resolve("isolated-until"), clock);
        var drain = new Drain(dir.resolve("draining-until"), clock);
        Instant end = isolation.start(Duration.ofSeconds(45));
        assertTrue(drain.until().isEmpty(), "isolating is not draining");
        assertEquals(end, new Isolation(dir.resolve("isolated-until"), clock).until().orElseThrow(), "a restarted controller resumes it");
        var e = assertThrows(IllegalArgumentException.class, () -> isolation.start(Duration.ofDays(2)));
        assertTrue(e.getMessage().startsWith("an isolation lasts from 1s to 24h"), e.getMessage());
        assertTrue(isolation.restore());
        assertTrue(isolation.until().isEmpty());
        assertFalse(Files.exists(dir.resolve("isolated-until")));
    }

    @Test
    void anUnreadableStateFileMeansNotDrained(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("draining-until"), "soon");
        assertTrue(new Drain(dir.resolve("draining-until"), new TestClock()).until().isEmpty());
    }
}
