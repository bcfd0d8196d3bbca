package dev.isthmus.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code isthmus isolate}: the controller's cluster isolated for a while (its east-west gateway
 * refuses cross-region traffic, and nobody is told), or its isolation ended. Works against any
 * controller; {@code isthmus drill --isolate} runs it under measured traffic on the local federation.
 */
@Command(name = "isolate", description = {"Isolate the controller's cluster for a while (a failover drill): its east-west gateway refuses",
        "cross-region traffic and closes the flows it carries, the other clusters are not told and must fail over from what their",
        "sidecars see; its own workloads keep calling each other. It ends by itself after --for, or now with --end."})
final class IsolateCommand implements Callable<Integer> {

    @Mixin
    ControllerOptions api;

    @Option(names = "--for", defaultValue = "10m", description = "How long, e.g. 90s, 10m, 2h (1s to 24h; default ${DEFAULT-VALUE}).")
    String duration;

    @Option(names = "--end", description = "End the isolation now.")
    boolean end;

    @Override
    public Integer call() {
        try {
            var view = end ? api.delete("/api/v1/federation/isolate")
                    : api.post("/api/v1/federation/isolate", "{\"duration\":" + dev.isthmus.cli.local.ControllerClient.quote(duration) + "}");
            FederationView.print(view, api.json());
            return 0;
        } catch (ControllerOptions.CommandException e) {
            System.err.println("isthmus isolate: " + e.getMessage());
            return 1;
        }
    }
}
