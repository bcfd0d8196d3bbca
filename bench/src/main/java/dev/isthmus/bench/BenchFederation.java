package dev.isthmus.bench;

import dev.isthmus.cli.local.LocalFederation;
import dev.isthmus.cli.local.Topology;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * What the benchmarks share: the Isthmus checkout they run from, the JDK running them, and a local
 * federation of three regions (the processes of {@code isthmus up}) under {@code bench/target}, stopped
 * when the benchmark ends or the JVM goes.
 */
final class BenchFederation implements AutoCloseable {

    static final List<String> REGIONS = List.of("us-east", "eu-west", "ap-south");

    private final LocalFederation federation;

    private BenchFederation(LocalFederation federation) {
        this.federation = federation;
    }

    /** The Isthmus checkout ({@code $ISTHMUS_HOME}, set by bench/run; else the working directory). */
    static Path home() {
        String env = System.getenv("ISTHMUS_HOME");
        return Path.of(env != null ? env : ".").toAbsolutePath().normalize();
    }

    /** The java command of this JVM, for the processes a benchmark starts. */
    static String java() {
        return ProcessHandle.current().info().command().orElse("java");
    }

    /**
     * Starts three regions, joined through the REST join flow, in a new directory
     * {@code bench/target/<name>-...}, without the shop deployments {@code without}
     * ({@code region/deployment}); returns once every controller lists every region Active.
     */
    static BenchFederation start(String name, int basePort, List<String> without) throws Exception {
        Path work = Files.createTempDirectory(Files.createDirectories(home().resolve("bench/target")), name + "-");
        var topology = new Topology("acme", REGIONS, basePort, home(), work.resolve("federation"), java()).without(without);
        var federation = new LocalFederation(topology, line -> System.err.println("[federation] " + line));
        var started = new BenchFederation(federation);
        Runtime.getRuntime().addShutdownHook(new Thread(started::closeQuietly));
        System.err.println(name + ": starting three regions (a minute or more on 2 cores)...");
        federation.start(Duration.ofSeconds(300), true);
        federation.awaitFederated(Duration.ofSeconds(120));
        return started;
    }

    LocalFederation federation() {
        return federation;
    }

    Topology topology() {
        return federation.topology();
    }

    /** Where the federation keeps its state (the benchmark's own files go beside it). */
    Path work() {
        return topology().stateDir().getParent();
    }

    @Override
    public void close() throws InterruptedException {
        federation.stop();
    }

    private void closeQuietly() {
        try {
            close();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
