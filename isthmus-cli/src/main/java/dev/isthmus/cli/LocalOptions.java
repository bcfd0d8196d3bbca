package dev.isthmus.cli;

import dev.isthmus.cli.local.LocalFederation;
import dev.isthmus.cli.local.LocalFederationException;
import dev.isthmus.cli.local.Topology;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import picocli.CommandLine.Option;

/** Where the local federation lives: the Isthmus checkout (its built apps) and the state dir. */
final class LocalOptions {

    @Option(names = "--home", description = "The Isthmus checkout whose built apps run (default: $ISTHMUS_HOME or the current directory).")
    Path home;

    @Option(names = "--state-dir", description = "Where state, logs and pids live (default: <home>/.isthmus).")
    Path stateDir;

    Path home() {
        if (home != null) {
            return home.toAbsolutePath().normalize();
        }
        String env = System.getenv("ISTHMUS_HOME");
        return Path.of(env != null ? env : ".").toAbsolutePath().normalize();
    }

    Path stateDir() {
        return (stateDir != null ? stateDir : home().resolve(".isthmus")).toAbsolutePath().normalize();
    }

    static String javaCommand() {
        return ProcessHandle.current().info().command().orElse("java");
    }

    /** The federation recorded by the last {@code up} in the state dir. */
    LocalFederation recorded() throws LocalFederationException {
        Path dir = stateDir();
        try {
            List<String> regions = Arrays.asList(Files.readString(dir.resolve("regions")).strip().split(","));
            int base = Integer.parseInt(Files.readString(dir.resolve("base-port")).strip());
            Path federationFile = dir.resolve("federation");
            String federation = Files.exists(federationFile) ? Files.readString(federationFile).strip() : "acme";
            var topology = new Topology(federation, regions, base, home(), dir, javaCommand());
            Path absentFile = dir.resolve("absent");
            if (Files.exists(absentFile) && !Files.readString(absentFile).isBlank()) {
                topology = topology.without(Arrays.asList(Files.readString(absentFile).strip().split(",")));
            }
            return new LocalFederation(topology, System.out::println);
        } catch (IOException | NumberFormatException e) {
            throw new LocalFederationException("no local federation was started from " + dir + " (start one with ./isthmus up)");
        }
    }
}
