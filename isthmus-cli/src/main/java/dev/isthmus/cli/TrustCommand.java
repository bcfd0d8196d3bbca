package dev.isthmus.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.isthmus.cli.local.ControllerClient;
import dev.isthmus.cli.local.LocalFederationException;
import dev.isthmus.cli.local.Topology;
import java.net.URI;
import java.nio.file.Files;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code isthmus trust rotate|status --cluster X}: a cluster's trust bridge, its roots and their rotation. */
@Command(name = "trust", description = "Trust bridges: root rotation and status.", subcommands = {TrustCommand.Rotate.class, TrustCommand.Status.class})
final class TrustCommand implements Runnable {

    @Override
    public void run() {
        System.err.println("isthmus trust: say what to do: isthmus trust status --cluster eu-west, or isthmus trust rotate --cluster eu-west");
    }

    /** Which bridge: --bridge URL with --admin-token-file, or --cluster NAME of the local federation. */
    static final class BridgeOptions {
        @Option(names = "--cluster", description = "A cluster of the local federation (its bridge and admin credential are found in .isthmus/).")
        String cluster;

        @Option(names = "--bridge", description = "The trust bridge's HTTP URL (instead of --cluster).")
        String bridge;

        @Option(names = "--admin-token-file", description = "File holding the bridge's admin credential (with --bridge).")
        java.nio.file.Path adminTokenFile;

        @Mixin
        LocalOptions local;

        ControllerClient client() throws ControllerOptions.CommandException {
            try {
                if (bridge != null) {
                    String token = adminTokenFile != null ? Files.readString(adminTokenFile).strip() : System.getenv("ISTHMUS_ADMIN_TOKEN");
                    return new ControllerClient(URI.create(bridge), token);
                }
                if (cluster == null) {
                    throw new ControllerOptions.CommandException("name the bridge: --cluster NAME (local federation) or --bridge URL");
                }
                var federation = local.recorded();
                Topology t = federation.topology();
                if (!t.regions().contains(cluster)) {
                    throw new ControllerOptions.CommandException("the local federation has no cluster '" + cluster + "'; it has " + t.regions());
                }
                return federation.trustBridge(cluster);
            } catch (java.io.IOException e) {
                throw new ControllerOptions.CommandException("cannot read the admin credential: " + e.getMessage());
            } catch (LocalFederationException e) {
                throw new ControllerOptions.CommandException(e.getMessage());
            }
        }
    }

    static void print(JsonNode s, boolean json) {
        if (json) {
            System.out.println(s.toPrettyString());
            return;
        }
        System.out.printf("trust domain %s (%s backend): rotation %s%s%n", s.path("trustDomain").asText(), s.path("backend").asText(),
                s.path("phase").asText(), s.path("phase").asText().equals("Distributing") ? ", new root signs from " + s.path("switchAt").asText()
                        : s.path("phase").asText().equals("Issuing") ? ", old root retires at " + s.path("retireAt").asText() : "");
        var table = new Table("ROOT-SERIAL", "NOT-AFTER", "SIGNING");
        for (var r : s.path("roots")) {
            table.row(r.path("serial").asText(), r.path("notAfter").asText(), r.path("signing").asBoolean() ? "yes" : "no");
        }
        System.out.print(table.render());
    }

    /** A call to the bridge whose answer is the rotation view. */
    interface BridgeCall {
        JsonNode run(ControllerClient client) throws ControllerClient.ApiException, InterruptedException;
    }

    /** Runs one call and prints its answer; failures are printed as {@code isthmus trust <name>: why}. */
    static int call(String name, BridgeOptions bridge, String output, BridgeCall call) {
        try {
            print(call.run(bridge.client()), "json".equals(output));
            return 0;
        } catch (ControllerOptions.CommandException | ControllerClient.ApiException e) {
            System.err.println("isthmus trust " + name + ": " + e.getMessage());
            return 1;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 1;
        }
    }

    @Command(name = "status", description = "Show a trust bridge's roots and rotation phase.")
    static final class Status implements Callable<Integer> {
        @Mixin
        BridgeOptions bridge;

        @Option(names = {"-o", "--output"}, defaultValue = "table", description = "table or json.")
        String output;

        @Override
        public Integer call() {
            return TrustCommand.call("status", bridge, output, c -> c.get("/api/v1/trust/rotation"));
        }
    }

    @Command(name = "rotate", description = "Start a root rotation: the new root is distributed first, then signs; the old one retires "
            + "after the longest certificate lifetime.")
    static final class Rotate implements Callable<Integer> {
        @Mixin
        BridgeOptions bridge;

        @Option(names = {"-o", "--output"}, defaultValue = "table", description = "table or json.")
        String output;

        @Override
        public Integer call() {
            return TrustCommand.call("rotate", bridge, output, c -> c.post("/api/v1/trust/rotate", ""));
        }
    }
}
