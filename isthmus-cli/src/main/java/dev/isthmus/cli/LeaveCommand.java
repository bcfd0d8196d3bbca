package dev.isthmus.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** {@code isthmus leave}: the controller's cluster leaves its federation. */
@Command(name = "leave", description = "Take the controller's cluster out of its federation (the others drop its endpoints).")
final class LeaveCommand implements Callable<Integer> {

    @Mixin
    ControllerOptions api;

    @Override
    public Integer call() {
        try {
            FederationView.print(api.post("/api/v1/federation/leave", ""), api.json());
            return 0;
        } catch (ControllerOptions.CommandException e) {
            System.err.println("isthmus leave: " + e.getMessage());
            return 1;
        }
    }
}
