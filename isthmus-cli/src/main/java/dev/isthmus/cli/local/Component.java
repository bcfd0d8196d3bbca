package dev.isthmus.cli.local;

import java.net.URI;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * One process of the local federation, fully described before it starts: what runs, with which
 * environment, where it logs, and how to tell it is ready.
 *
 * @param region the region it belongs to
 * @param name its name within the region, e.g. {@code federation-controller} or {@code sidecar-product-catalog}
 * @param kind what sort of component it is
 * @param command the command line
 * @param environment variables added to the inherited environment
 * @param workDir its own directory under the state dir (log, pid, data)
 * @param readiness a URL that answers 200 once it is ready
 * @param url what to show the operator (the component's main URL)
 * @param ports every port it binds, for the port-in-use check
 * @param stage start order: every component of one stage is ready before the next stage starts
 */
public record Component(String region, String name, Kind kind, List<String> command, Map<String, String> environment,
        Path workDir, URI readiness, String url, List<Integer> ports, int stage) {

    public enum Kind { NATS, CONTROLLER, TRUST_BRIDGE, GATEWAY, APP, SIDECAR }

    public Component {
        command = List.copyOf(command);
        environment = Map.copyOf(environment);
        ports = List.copyOf(ports);
    }

    /** {@code region/name}, the id used by {@code isthmus logs} and the e2e fixture. */
    public String id() {
        return region + "/" + name;
    }

    public Path logFile() {
        return workDir.resolve("process.log");
    }

    public Path pidFile() {
        return workDir.resolve("pid");
    }
}
