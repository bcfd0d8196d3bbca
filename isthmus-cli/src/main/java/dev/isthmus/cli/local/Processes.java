package dev.isthmus.cli.local;

import java.time.Duration;
import java.time.Instant;
import java.util.List;

/** Stopping a set of processes the way the local federation, the benchmarks and the e2e tests do. */
public final class Processes {

    private Processes() {
    }

    /**
     * Asks every process to stop (SIGTERM) at once, waits up to {@code grace} for all of them, kills
     * (SIGKILL) those still running, and returns once every one has exited.
     */
    public static void stop(List<ProcessHandle> processes, Duration grace) {
        processes.forEach(ProcessHandle::destroy);
        Instant deadline = Instant.now().plus(grace);
        for (ProcessHandle p : processes) {
            try {
                while (p.isAlive() && Instant.now().isBefore(deadline)) {
                    Thread.sleep(50);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (p.isAlive()) {
                p.destroyForcibly();
            }
        }
        processes.forEach(p -> p.onExit().join());
    }
}
