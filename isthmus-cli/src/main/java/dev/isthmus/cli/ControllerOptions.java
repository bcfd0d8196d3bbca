package dev.isthmus.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import picocli.CommandLine.Option;

/** Which controller a command talks to, and how it prints. */
final class ControllerOptions {

    @Option(names = {"-c", "--controller"}, defaultValue = "${ISTHMUS_CONTROLLER:-http://127.0.0.1:20010}",
            description = "Controller URL (default: $ISTHMUS_CONTROLLER, else the local federation's first region: ${DEFAULT-VALUE}).")
    String controller;

    @Option(names = {"-o", "--output"}, defaultValue = "table", description = "table or json (default: ${DEFAULT-VALUE}).")
    String output;

    boolean json() {
        return "json".equals(output);
    }

    /** GETs a path; throws with the problem detail or the connection failure in words. */
    JsonNode get(String path) throws CommandException {
        var uri = URI.create(controller).resolve(path);
        try {
            var res = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(3)).build()
                    .send(HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
            JsonNode body = new ObjectMapper().readTree(res.body());
            if (res.statusCode() >= 400) {
                throw new CommandException(uri + " answered " + res.statusCode() + ": "
                        + (body.has("detail") ? body.get("detail").asText() : res.body()));
            }
            return body;
        } catch (java.io.IOException e) {
            throw new CommandException("cannot reach the controller at " + controller + " (" + e
                    + "); is it running? (./isthmus status), or pass --controller URL");
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
