package dev.isthmus.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** {@code isthmus clusters}: the clusters of the federation seen from one controller. */
@Command(name = "clusters", description = "List the clusters of the federation and their state.")
final class ClustersCommand implements Callable<Integer> {

    @Mixin
    ControllerOptions api;

    @Override
    public Integer call() {
        try {
            var clusters = api.get("/api/v1/clusters");
            if (api.json()) {
                System.out.println(clusters.toPrettyString());
                return 0;
            }
            var table = new Table("NAME", "REGION", "STATE", "REGISTRY-GENERATION", "LAST-HEARTBEAT");
            for (var c : clusters) {
                table.row(c.path("name").asText(), c.path("region").asText(), c.path("state").asText(),
                        c.path("registryGeneration").asLong(), c.path("lastHeartbeat").asText("-"));
            }
            System.out.print(table.render());
            return 0;
        } catch (ControllerOptions.CommandException e) {
            System.err.println("isthmus clusters: " + e.getMessage());
            return 1;
        }
    }
}
