package dev.isthmus.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code isthmus drain}: the controller's cluster drained for a while (every other member sends it no
 * traffic), or its drain ended. Works against any controller (a Kubernetes one through a port-forward);
 * {@code isthmus drill --drain} runs it under measured traffic on the local federation.
 */
@Command(name = "drain", description = {"Drain the controller's cluster for a while: the other clusters send it no traffic (a failover drill",
        "or maintenance), its own workloads keep calling each other; it ends by itself after --for, or now with --end."})
final class DrainCommand implements Callable<Integer> {

    @Mixin
    ControllerOptions api;

    @Option(names = "--for", defaultValue = "10m", description = "How long, e.g. 90s, 10m, 2h (1s to 24h; default ${DEFAULT-VALUE}).")
    String duration;

    @Option(names = "--end", description = "End the drain now.")
    boolean end;

    @Override
    public Integer call() {
        try {
            var view = end ? api.delete("/api/v1/federation/drain")
                    : api.post("/api/v1/federation/drain", "{\"duration\":" + dev.isthmus.cli.local.ControllerClient.quote(duration) + "}");
            FederationView.print(view, api.json());
            return 0;
        } catch (ControllerOptions.CommandException e) {
            System.err.println("isthmus drain: " + e.getMessage());
            return 1;
        }
    }
}
