package dev.isthmus.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.isthmus.cli.local.ControllerClient;
import dev.isthmus.cli.local.Topology;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import picocli.CommandLine.Option;

/** Which controller a command talks to, with which credential, and how it prints. */
final class ControllerOptions {

    @Option(names = {"-c", "--controller"}, defaultValue = "${ISTHMUS_CONTROLLER:-http://127.0.0.1:20010}",
            description = "Controller URL (default: $ISTHMUS_CONTROLLER, else the local federation's first region: ${DEFAULT-VALUE}).")
    String controller;

    @Option(names = "--admin-token-file", description = "File holding the controller's admin credential (default: $ISTHMUS_ADMIN_TOKEN, "
            + "else, for a controller of the local federation, the file `isthmus up` made for it).")
    Path adminTokenFile;

    @Option(names = {"-o", "--output"}, defaultValue = "table", description = "table or json (default: ${DEFAULT-VALUE}).")
    String output;

    /** Where the local federation is, to find the admin credential of one of its controllers. */
    @picocli.CommandLine.Mixin
    LocalOptions local = new LocalOptions();

    boolean json() {
        return "json".equals(output);
    }

    /** The admin credential: the file given, else $ISTHMUS_ADMIN_TOKEN, else the local federation's file for this controller. */
    String adminToken() throws CommandException {
        try {
            if (adminTokenFile != null) {
                return Files.readString(adminTokenFile).strip();
            }
            String env = System.getenv("ISTHMUS_ADMIN_TOKEN");
            if (env != null && !env.isBlank()) {
                return env.strip();
            }
            return localAdminToken();
        } catch (IOException e) {
            throw new CommandException("cannot read the admin credential: " + e.getMessage());
        }
    }

    private String localAdminToken() throws IOException {
        Path state = local.stateDir();
        if (!Files.exists(state.resolve("regions"))) {
            return null;
        }
        List<String> regions = Arrays.asList(Files.readString(state.resolve("regions")).strip().split(","));
        int base = Integer.parseInt(Files.readString(state.resolve("base-port")).strip());
        var topology = new Topology("local", regions, base, state.getParent(), state, "java");
        int port = URI.create(controller).getPort();
        for (String region : regions) {
            if (topology.controllerPort(region) == port && Files.exists(topology.adminTokenFile(region))) {
                return Files.readString(topology.adminTokenFile(region)).strip();
            }
        }
        return null;
    }

    ControllerClient client(boolean admin) throws CommandException {
        return new ControllerClient(URI.create(controller), admin ? adminToken() : null);
    }

    /** GETs a path; throws with the problem detail or the connection failure in words. */
    JsonNode get(String path) throws CommandException {
        return call(() -> client(false).get(path));
    }

    /** POSTs with the admin credential. */
    JsonNode post(String path, String body) throws CommandException {
        return call(() -> client(true).post(path, body));
    }

    JsonNode delete(String path) throws CommandException {
        return call(() -> client(true).delete(path));
    }

    private interface Call {
        JsonNode run() throws CommandException, ControllerClient.ApiException, InterruptedException;
    }

    private static JsonNode call(Call c) throws CommandException {
        try {
            return c.run();
        } catch (ControllerClient.ApiException e) {
            String hint = e.status() == 401 ? " (pass --admin-token-file FILE or set ISTHMUS_ADMIN_TOKEN)" : "";
            throw new CommandException(e.getMessage() + hint);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CommandException("interrupted");
        }
    }

    /** A failure to report to the user, in words. */
    static final class CommandException extends Exception {
        CommandException(String message) {
            super(message);
        }
    }
}
