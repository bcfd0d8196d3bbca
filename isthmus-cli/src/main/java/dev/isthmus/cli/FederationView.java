package dev.isthmus.cli;

import com.fasterxml.jackson.databind.JsonNode;

/** Prints GET /api/v1/federation's answer. */
final class FederationView {

    private FederationView() {
    }

    static void print(JsonNode view, boolean json) {
        if (json) {
            System.out.println(view.toPrettyString());
            return;
        }
        System.out.printf("cluster %s is %s%s%n", view.path("cluster").asText(), view.path("state").asText(),
                view.hasNonNull("federation") ? " in federation " + view.path("federation").asText() : "");
        if (view.hasNonNull("drainingUntil")) {
            System.out.printf("drained (the other clusters send it no traffic) until %s%n", view.path("drainingUntil").asText());
        }
        if (view.hasNonNull("isolatedUntil")) {
            System.out.printf("isolated (its gateway refuses cross-region traffic) until %s%n", view.path("isolatedUntil").asText());
        }
        var table = new Table("PEER", "REGION", "STATE");
        for (var p : view.path("peers")) {
            table.row(p.path("cluster").asText(), p.path("region").asText(), p.path("state").asText());
        }
        System.out.print(table.render());
    }
}
