package dev.isthmus.cli;

import picocli.CommandLine.Command;

/**
 * {@code isthmus isolate}: the controller's cluster isolated for a while (its east-west gateway
 * refuses cross-region traffic, and nobody is told), or its isolation ended.
 * {@code isthmus drill --isolate} runs it under measured traffic on the local federation.
 */
@Command(name = "isolate", description = {"Isolate the controller's cluster for a while (a failover drill): its east-west gateway refuses",
        "cross-region traffic and closes the flows it carries, the other clusters are not told and must fail over from what their",
        "sidecars see; its own workloads keep calling each other. It ends by itself after --for, or now with --end."})
final class IsolateCommand extends HoldCommand {

    @Override
    String path() {
        return "/api/v1/federation/isolate";
    }

    @Override
    String name() {
        return "isolate";
    }
}
