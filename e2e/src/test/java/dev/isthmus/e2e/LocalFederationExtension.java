package dev.isthmus.e2e;

import dev.isthmus.cli.local.Component;
import dev.isthmus.cli.local.LocalFederation;
import dev.isthmus.cli.local.Topology;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * Starts a local federation — the same topology and the same launcher as {@code isthmus up} — from
 * the packaged apps, before the tests of a class, and always stops it afterwards. When a test fails,
 * the end of every process's log is printed. A watchdog process kills everything the fixture started
 * if the test JVM itself dies (kill -9, a crash, a CI timeout), so no process is orphaned.
 *
 * <p>Use it as a static field with {@code @RegisterExtension}.
 */
public final class LocalFederationExtension implements BeforeAllCallback, AfterAllCallback, TestWatcher {

    private final List<String> regions;
    private final int basePort;
    private LocalFederation federation;
    private Process watchdog;
    private boolean federate = true;
    private final java.util.List<String> without = new java.util.ArrayList<>();
    private final java.util.Map<String, java.util.Map<String, String>> extraEnvironment = new java.util.LinkedHashMap<>();

    public LocalFederationExtension(int basePort, String... regions) {
        this.basePort = basePort;
        this.regions = List.of(regions);
    }

    /** Adds {@code env} to the environment of every process named {@code component} (for example {@code trust-bridge}). */
    public LocalFederationExtension withEnvironment(String component, java.util.Map<String, String> env) {
        extraEnvironment.put(component, env);
        return this;
    }

    /** Does not run these shop deployments ({@code region/deployment}). */
    public LocalFederationExtension without(String... deployments) {
        this.without.addAll(List.of(deployments));
        return this;
    }

    /** Starts the regions without joining them: each controller is unfederated until the test joins it. */
    public LocalFederationExtension unfederated() {
        this.federate = false;
        return this;
    }

    public static Path home() {
        return Path.of(System.getProperty("isthmus.home", "..")).toAbsolutePath().normalize();
    }

    public static String javaCommand() {
        return ProcessHandle.current().info().command().orElse("java");
    }

    @Override
    public void beforeAll(ExtensionContext context) throws Exception {
        Path state = Files.createTempDirectory(home().resolve("e2e/target").toAbsolutePath(), "federation-");
        var topology = new Topology("acme", regions, basePort, home(), state, javaCommand());
        for (var e : extraEnvironment.entrySet()) {
            topology = topology.withEnvironment(e.getKey(), e.getValue());
        }
        topology = topology.without(without);
        federation = new LocalFederation(topology,
                line -> System.out.println("[fixture] " + line));
        watchdog = startWatchdog(state);
        try {
            federation.start(Duration.ofSeconds(120), federate);
        } catch (Exception e) {
            stopWatchdog();
            throw e;
        }
    }

    /** A shell that waits for this JVM to go away, then kills every process that names the state dir. */
    static Process startWatchdog(Path state) throws java.io.IOException {
        var pb = new ProcessBuilder("bash", "-c",
                "while kill -0 \"$W_PID\" 2>/dev/null; do sleep 1; done; pkill -KILL -f -- \"$W_DIR\"; exit 0");
        pb.environment().put("W_PID", Long.toString(ProcessHandle.current().pid()));
        pb.environment().put("W_DIR", state.toString());
        pb.redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD);
        return pb.start();
    }

    @Override
    public void afterAll(ExtensionContext context) throws Exception {
        if (federation != null) {
            federation.stop();
        }
        stopWatchdog();
    }

    private void stopWatchdog() {
        if (watchdog != null) {
            watchdog.destroyForcibly();
        }
    }

    @Override
    public void testFailed(ExtensionContext context, Throwable cause) {
        if (federation == null) {
            return;
        }
        System.out.println("[fixture] " + context.getDisplayName() + " failed; the end of each process's log follows");
        for (Component c : federation.topology().components()) {
            System.out.println("----- " + c.id() + " (" + c.logFile() + ")");
            System.out.println(LocalFederation.tail(c.logFile(), 40));
        }
    }

    public LocalFederation federation() {
        return federation;
    }

    public Topology topology() {
        return federation.topology();
    }

    public Component component(String id) throws Exception {
        return federation.component(id);
    }

    /** kill -9 one process, as a crash would. */
    public void kill(String id) throws Exception {
        federation.kill(component(id));
    }

    public void restart(String id) throws Exception {
        federation.restart(component(id), Duration.ofSeconds(60));
    }

    public Optional<ProcessHandle> process(String id) throws Exception {
        return federation.ourProcess(component(id));
    }
}
