package dev.isthmus.cli.local;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

/**
 * Calls one controller's REST API, with the admin credential when one is given. A 4xx or 5xx answer
 * becomes a {@link ApiException} carrying the problem's status, type and detail.
 */
public final class ControllerClient {

    private static final ObjectMapper JSON = new ObjectMapper();

    private final URI base;
    private final String adminToken;
    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(3)).build();

    public ControllerClient(URI base, String adminToken) {
        this.base = base;
        this.adminToken = adminToken;
    }

    public URI base() {
        return base;
    }

    /** An answer of 400 or more, or no answer at all (status 0). */
    public static final class ApiException extends Exception {
        private final int status;
        private final String type;

        ApiException(int status, String type, String message) {
            super(message);
            this.status = status;
            this.type = type;
        }

        public int status() {
            return status;
        }

        /** The problem type's last segment, e.g. {@code reused-token}; empty if the body was no problem. */
        public String type() {
            return type;
        }
    }

    public JsonNode get(String path) throws ApiException, InterruptedException {
        return send(HttpRequest.newBuilder(base.resolve(path)).GET(), path);
    }

    public JsonNode post(String path, String jsonBody) throws ApiException, InterruptedException {
        return send(HttpRequest.newBuilder(base.resolve(path)).header("content-type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(jsonBody == null ? "" : jsonBody)), path);
    }

    public JsonNode delete(String path) throws ApiException, InterruptedException {
        return send(HttpRequest.newBuilder(base.resolve(path)).DELETE(), path);
    }

    private JsonNode send(HttpRequest.Builder b, String path) throws ApiException, InterruptedException {
        if (adminToken != null && !adminToken.isBlank()) {
            b.header("authorization", "Bearer " + adminToken.strip());
        }
        HttpResponse<String> res;
        try {
            res = http.send(b.timeout(Duration.ofSeconds(15)).build(), HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new ApiException(0, "", "cannot reach the controller at " + base + " (" + e
                    + "); is it running? (./isthmus status), or pass --controller URL");
        }
        JsonNode body;
        try {
            body = res.body().isEmpty() ? JSON.createObjectNode() : JSON.readTree(res.body());
        } catch (IOException e) {
            body = JSON.createObjectNode().put("detail", res.body());
        }
        if (res.statusCode() >= 400) {
            String type = body.path("type").asText("");
            throw new ApiException(res.statusCode(), type.substring(type.lastIndexOf('/') + 1),
                    base.resolve(path) + " answered " + res.statusCode() + ": " + body.path("detail").asText(res.body()));
        }
        return body;
    }

    public static String quote(String s) {
        return JSON.getNodeFactory().textNode(s).toString();
    }
}
