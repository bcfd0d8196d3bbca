package dev.isthmus.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Parameters;

/** {@code isthmus join TOKEN}: the controller named by --controller joins the federation the token names. */
@Command(name = "join", description = "Join the controller's cluster to a federation with a token from `isthmus token create`.")
final class JoinCommand implements Callable<Integer> {

    @Mixin
    ControllerOptions api;

    @Parameters(index = "0", paramLabel = "TOKEN", description = "The join token.")
    String token;

    @Override
    public Integer call() {
        try {
            var view = api.post("/api/v1/federation/join", "{\"token\":" + dev.isthmus.cli.local.ControllerClient.quote(token) + "}");
            FederationView.print(view, api.json());
            return 0;
        } catch (ControllerOptions.CommandException e) {
            System.err.println("isthmus join: " + e.getMessage());
            return 1;
        }
    }
}
