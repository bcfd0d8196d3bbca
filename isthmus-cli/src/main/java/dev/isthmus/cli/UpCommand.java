package dev.isthmus.cli;

import dev.isthmus.cli.local.Component;
import dev.isthmus.cli.local.LocalFederation;
import dev.isthmus.cli.local.LocalFederationException;
import dev.isthmus.cli.local.Topology;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code isthmus up}: starts the local federation and returns once every process is ready. */
@Command(name = "up", description = "Start the local federation: per region a NATS server, a federation controller, "
        + "a trust bridge, an east-west gateway and the demo shop behind sidecars.")
final class UpCommand implements Callable<Integer> {

    @Mixin
    LocalOptions local;

    @Option(names = "--regions", split = ",", description = "Regions to run (default: deploy/local/federation.properties, else us-east,eu-west,ap-south).")
    List<String> regions;

    @Option(names = "--without", split = ",", paramLabel = "REGION/DEPLOYMENT",
            description = "Shop deployments not to run, e.g. us-east/product-catalog,us-east/product-catalog-v2: callers there reach other regions.")
    List<String> without;

    @Option(names = "--base-port", description = "First port; region i uses base+100*i .. base+100*i+99 (default: deploy/local/federation.properties, else 20000).")
    Integer basePort;

    @Option(names = "--federation", description = "Federation name (default: deploy/local/federation.properties, else acme).")
    String federation;

    @Option(names = "--timeout", defaultValue = "120", description = "Seconds each stage may take to become ready (default: ${DEFAULT-VALUE}).")
    int timeoutSeconds;

    @Option(names = {"-q", "--quiet"}, description = "Print only the final table.")
    boolean quiet;

    @Override
    public Integer call() throws Exception {
        var defaults = new java.util.Properties();
        var file = local.home().resolve("deploy/local/federation.properties");
        if (java.nio.file.Files.exists(file)) {
            try (var in = java.nio.file.Files.newBufferedReader(file)) {
                defaults.load(in);
            }
        }
        if (regions == null) {
            regions = List.of(defaults.getProperty("regions", "us-east,eu-west,ap-south").split(","));
        }
        if (federation == null) {
            federation = defaults.getProperty("federation", "acme");
        }
        Topology topology;
        try {
            if (basePort == null) {
                basePort = Integer.parseInt(defaults.getProperty("base-port", "20000").strip());
            }
            topology = new Topology(federation, regions, basePort, local.home(), local.stateDir(), LocalOptions.javaCommand());
            if (without != null) {
                topology = topology.without(without);
            }
        } catch (IllegalArgumentException e) {
            System.err.println("isthmus up: " + e.getMessage() + " (check the flags and " + file + ")");
            return 2;
        }
        var federation = new LocalFederation(topology, quiet ? s -> { } : s -> System.out.println("  " + s));
        long t0 = System.nanoTime();
        try {
            federation.start(Duration.ofSeconds(timeoutSeconds));
        } catch (LocalFederationException e) {
            System.err.println("isthmus up: " + e.getMessage());
            return 1;
        }
        System.out.printf("%nlocal federation '%s' is up: %d regions in %.1f s%n%n", this.federation, regions.size(),
                (System.nanoTime() - t0) / 1e9);
        var table = new Table("REGION", "COMPONENT", "PID", "URL");
        for (var s : federation.status()) {
            Component c = s.component();
            table.row(c.region(), c.name(), s.pid().map(String::valueOf).orElse("-"), c.url());
        }
        System.out.print(table.render());
        System.out.printf("%nstate and logs: %s%nstop with: ./isthmus down%n", topology.stateDir());
        return 0;
    }
}
