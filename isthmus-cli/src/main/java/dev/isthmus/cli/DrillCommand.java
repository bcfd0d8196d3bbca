package dev.isthmus.cli;

import dev.isthmus.cli.local.FailoverDrill;
import dev.isthmus.cli.local.LocalFederationException;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code isthmus drill REGION}: a failover drill on the local federation ({@link FailoverDrill}):
 * steady shop traffic from other regions, every process of REGION killed at once, then started again;
 * or, with {@code --drain}, REGION drained through its controller, then the drain ended; or, with
 * {@code --isolate}, REGION's gateway made to refuse cross-region traffic through its controller,
 * then the isolation ended.
 */
@Command(name = "drill", description = {"Failover drill: under steady shop traffic from other regions, kill -9 every process of REGION,",
        "measure how callers move to the next region and whether any request fails, then start REGION again and measure the return.",
        "With --drain, REGION is drained through its controller instead (nothing is killed);",
        "with --isolate, its gateway refuses cross-region traffic instead, and nobody is told (nothing is killed)."})
final class DrillCommand implements Callable<Integer> {

    @Mixin
    LocalOptions local;

    @Parameters(index = "0", paramLabel = "REGION", description = "The region to take down.")
    String region;

    @Option(names = "--from", split = ",", description = "Regions whose order-processing sends the traffic (default: every other region).")
    List<String> from;

    @Option(names = "--rate", defaultValue = "40", description = "Requests per second (default ${DEFAULT-VALUE}).")
    int rate;

    @Option(names = "--outage", defaultValue = "15", description = "Seconds the region stays down (default ${DEFAULT-VALUE}).")
    int outage;

    @Option(names = "--grpc", description = "order-processing calls the catalogue over gRPC (HTTP/2 POSTs between the sidecars) instead of HTTP/1.1 GETs.")
    boolean grpc;

    @Option(names = "--drain", description = {"Drain REGION through its controller instead of killing it: the other regions send it no traffic,",
            "its processes keep running; the drain then ends (the drill a production federation runs: POST /api/v1/federation/drain)."})
    boolean drain;

    @Option(names = "--isolate", description = {"Isolate REGION through its controller instead of killing it: its east-west gateway refuses",
            "cross-region traffic and closes the flows it carries, and the other regions are not told, so their sidecars must fail over",
            "from the refused connections (POST /api/v1/federation/isolate); the isolation then ends."})
    boolean isolate;

    @Option(names = "--return-timeout", defaultValue = "120", description = "Seconds to wait for traffic to return after the restart (default ${DEFAULT-VALUE}).")
    int returnTimeout;

    @Override
    public Integer call() throws Exception {
        if (drain && isolate) {
            System.err.println("isthmus drill: --drain and --isolate are two different drills; give one");
            return 2;
        }
        try {
            var federation = local.recorded();
            var callers = from != null ? from : federation.topology().regions().stream()
                    .filter(r -> !r.equals(region) && federation.topology().runs(r, "order-processing")).toList();
            var report = FailoverDrill.run(federation, region, callers, rate, Duration.ofSeconds(outage), Duration.ofSeconds(returnTimeout), grpc,
                    isolate ? FailoverDrill.Fault.ISOLATE : drain ? FailoverDrill.Fault.DRAIN : FailoverDrill.Fault.KILL,
                    line -> System.out.println("  " + line));
            System.out.println();
            System.out.print(report.text());
            return report.failedDuring() == 0 && !Double.isNaN(report.backAfterRestartSeconds()) ? 0 : 1;
        } catch (LocalFederationException | IllegalArgumentException e) {
            System.err.println("isthmus drill: " + e.getMessage());
            return 2;
        }
    }
}
