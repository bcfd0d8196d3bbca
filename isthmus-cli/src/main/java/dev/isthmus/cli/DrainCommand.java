package dev.isthmus.cli;

import picocli.CommandLine.Command;

/**
 * {@code isthmus drain}: the controller's cluster drained for a while (every other member sends it no
 * traffic), or its drain ended. {@code isthmus drill --drain} runs it under measured traffic on the
 * local federation.
 */
@Command(name = "drain", description = {"Drain the controller's cluster for a while: the other clusters send it no traffic (a failover drill",
        "or maintenance), its own workloads keep calling each other; it ends by itself after --for, or now with --end."})
final class DrainCommand extends HoldCommand {

    @Override
    String path() {
        return "/api/v1/federation/drain";
    }

    @Override
    String name() {
        return "drain";
    }
}
