package dev.isthmus.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** {@code isthmus services}: the federated catalog, one row per endpoint. */
@Command(name = "services", description = "List every service of the federation with its endpoints per cluster.")
final class ServicesCommand implements Callable<Integer> {

    @Mixin
    ControllerOptions api;

    @Override
    public Integer call() {
        try {
            var services = api.get("/api/v1/services");
            if (api.json()) {
                System.out.println(services.toPrettyString());
                return 0;
            }
            var table = new Table("SERVICE", "CLUSTER", "CLUSTER-STATE", "INSTANCE", "ADDRESS", "LOCALITY", "HEALTHY", "VERSION");
            for (var s : services) {
                var clusters = s.path("clusters");
                clusters.fieldNames().forEachRemaining(cluster -> {
                    for (var e : clusters.path(cluster)) {
                        var ep = e.path("endpoint");
                        table.row(s.path("service").asText(), cluster, e.path("clusterState").asText(), ep.path("instance").asText(),
                                ep.path("address").asText() + ":" + ep.path("port").asInt(),
                                ep.path("region").asText() + "/" + ep.path("zone").asText(), ep.path("healthy").asBoolean(),
                                ep.path("labels").path("version").asText("-"));
                    }
                });
            }
            System.out.print(table.render());
            return 0;
        } catch (ControllerOptions.CommandException e) {
            System.err.println("isthmus services: " + e.getMessage());
            return 1;
        }
    }
}
