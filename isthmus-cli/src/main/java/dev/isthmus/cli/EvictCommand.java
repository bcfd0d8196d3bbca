package dev.isthmus.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Parameters;

/** {@code isthmus evict NAME}: a member evicts another cluster. */
@Command(name = "evict", description = "Evict a cluster from the federation (it needs a new token to come back).")
final class EvictCommand implements Callable<Integer> {

    @Mixin
    ControllerOptions api;

    @Parameters(index = "0", paramLabel = "CLUSTER")
    String cluster;

    @Override
    public Integer call() {
        try {
            var c = api.delete("/api/v1/clusters/" + cluster);
            if (api.json()) {
                System.out.println(c.toPrettyString());
            } else {
                System.out.println(c.path("name").asText() + ": " + c.path("state").asText() + " (" + c.path("leftReason").asText() + ")");
            }
            return 0;
        } catch (ControllerOptions.CommandException e) {
            System.err.println("isthmus evict: " + e.getMessage());
            return 1;
        }
    }
}
