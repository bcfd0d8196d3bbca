package dev.isthmus.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code isthmus token create}: a join token from a member (which founds the federation if it is in none). */
@Command(name = "token", description = "Join tokens.", subcommands = TokenCommand.Create.class)
final class TokenCommand implements Runnable {

    @Override
    public void run() {
        System.err.println("isthmus token: say what to do, e.g. isthmus token create --cluster eu-west");
    }

    @Command(name = "create", description = "Make a signed, one-time join token on the controller (admin credential needed). "
            + "Prints the token; pass it to `isthmus join` on the new cluster's controller.")
    static final class Create implements Callable<Integer> {

        @Mixin
        ControllerOptions api;

        @Option(names = "--cluster", description = "Only this cluster may use the token (default: any name).")
        String cluster;

        @Option(names = "--ttl", description = "Lifetime, e.g. 15m or 2h (default: the controller's, 15m).")
        String ttl;

        @Option(names = {"-q", "--quiet"}, description = "Print only the token (for TOKEN=$(isthmus token create -q)).")
        boolean quiet;

        @Override
        public Integer call() {
            var body = new StringBuilder("{");
            if (cluster != null) {
                body.append("\"cluster\":").append(dev.isthmus.cli.local.ControllerClient.quote(cluster));
            }
            if (ttl != null) {
                body.append(body.length() > 1 ? "," : "").append("\"ttl\":").append(dev.isthmus.cli.local.ControllerClient.quote(ttl));
            }
            body.append('}');
            try {
                var t = api.post("/api/v1/join-tokens", body.toString());
                if (api.json()) {
                    System.out.println(t.toPrettyString());
                } else if (quiet) {
                    System.out.println(t.path("token").asText());
                } else {
                    var table = new Table("FEDERATION", "ISSUER", "FOR", "EXPIRES");
                    table.row(t.path("federation").asText(), t.path("issuer").asText(), t.path("cluster").asText("any"),
                            t.path("expiresAt").asText());
                    System.out.print(table.render());
                    System.out.println();
                    System.out.println(t.path("token").asText());
                }
                return 0;
            } catch (ControllerOptions.CommandException e) {
                System.err.println("isthmus token create: " + e.getMessage());
                return 1;
            }
        }
    }
}
